/**
 * POST /v1/webhooks/gemini: completion events of background interactions
 * (generate-report). Public (no Bearer key): the caller is authenticated by
 * its Standard Webhooks signature over the raw body.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { FastifyPluginAsync } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import type { Config } from '../../config';
import { AppError } from '../../errors';
import { countWebhook } from '../../integrations/gemini/interaction-ledger';
import { handleOnce } from '../../outbox/inbox';
import {
  geminiWebhookSecretFromConfig,
  GeminiWebhookVerificationError,
  INTERACTION_EVENT_TYPES,
  verifyGeminiWebhook,
} from '../../integrations/gemini/webhooks';
import { interactionEndedSignal } from '../../../workflows/definitions';
import { problems } from '../problems';
import { problemResponses } from '../schemas';

export interface GeminiWebhookRoutesOptions {
  pool: pg.Pool;
  temporal: Client;
  /** GEMINI_WEBHOOK_SECRET (default the offline server's development secret, none in production: see geminiWebhookSecretFromConfig). */
  config: Pick<Config, 'GEMINI_WEBHOOK_SECRET' | 'NODE_ENV'>;
}

/** Inbox consumer name of these deliveries (the inbox table's `consumer`). */
export const GEMINI_WEBHOOK_CONSUMER = 'gemini-webhooks';

/** Thrown inside the inbox transaction when a signed event names an interaction the ledger does not hold; answered 404 and not recorded. */
class UnknownInteractionError extends AppError<{ interactionId: string }> {
  override readonly name = 'UnknownInteractionError';
  constructor(interactionId: string) {
    super(`no submitted interaction ${interactionId}`, { context: { interactionId } });
  }
}

export const geminiWebhookRoutes: FastifyPluginAsync<GeminiWebhookRoutesOptions> = async (app, options) => {
  const secret = geminiWebhookSecretFromConfig(options.config);
  // The signature covers the exact bytes: keep the body raw in this plugin only.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post('/v1/webhooks/gemini', {
    schema: {
      description: 'Gemini interaction webhooks (Standard Webhooks signature, GEMINI_WEBHOOK_SECRET). Each event id is handled once; the report workflow is woken and confirms by polling.',
      tags: ['webhooks'],
      security: [],
      response: {
        200: z.object({ received: z.literal(true), duplicate: z.boolean().optional(), ignored: z.string().optional() }),
        ...problemResponses(401, 404, 503),
      },
    },
  }, async (request, reply) => {
    if (!secret) {
      throw problems.invalidSignature('GEMINI_WEBHOOK_SECRET is not set; Gemini webhooks are refused and reports complete by polling');
    }
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let verified: ReturnType<typeof verifyGeminiWebhook>;
    try {
      verified = verifyGeminiWebhook(secret, raw, request.headers);
    } catch (error) {
      if (!(error instanceof GeminiWebhookVerificationError)) throw error;
      request.log.warn({ err: error.message }, 'gemini webhook refused');
      throw problems.invalidSignature(error.message);
    }
    const { webhookId, event } = verified;
    if (!(INTERACTION_EVENT_TYPES as readonly string[]).includes(event.type)) {
      // Acknowledged so Gemini stops redelivering an event we do not act on.
      return reply.code(200).send({ received: true, ignored: event.type });
    }
    let outcome: Awaited<ReturnType<typeof handleOnce<{ workflowId: string; operationId: string }>>>;
    try {
      // Inbox row, ledger counter and signal in one transaction: if the signal
      // fails (Temporal down) nothing is recorded and Gemini's redelivery tries
      // again; if the process dies after the signal but before COMMIT, the
      // redelivery signals again, which the workflow tolerates (it only wakes).
      outcome = await handleOnce(options.pool, { consumer: GEMINI_WEBHOOK_CONSUMER, eventId: webhookId }, async (tx) => {
        const owner = await countWebhook(tx, event.data.id);
        if (!owner) throw new UnknownInteractionError(event.data.id);
        try {
          await options.temporal.workflow.getHandle(owner.workflowId).signal(interactionEndedSignal, {
            interactionId: event.data.id, eventType: event.type, webhookId,
          });
        } catch (error) {
          // The workflow already finished (its own poll saw the end): nothing to wake.
          if (!(error instanceof WorkflowNotFoundError)) throw error;
        }
        return owner;
      });
    } catch (error) {
      if (!(error instanceof UnknownInteractionError)) throw error;
      // Not recorded in the inbox: the id may not be in the ledger yet (the
      // event raced the submission's UPDATE), so a redelivery may succeed. The
      // workflow's polling completes the report either way.
      throw problems.unknownInteraction(error.message);
    }
    if (!outcome.duplicate) {
      request.log.info({ webhookId, interactionId: event.data.id, correlationId: outcome.result.operationId, workflowId: outcome.result.workflowId }, 'gemini webhook accepted');
    }
    return reply.code(200).send({ received: true, duplicate: outcome.duplicate });
  });
};
