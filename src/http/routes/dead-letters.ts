import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { listDeadLetters, MAX_DEAD_LETTERS_PER_CALL, replayDeadLetters } from '../../outbox/dead-letters';
import { InvalidCursorError } from '../../outbox/page';
import { requireTenant } from '../auth';
import { problems } from '../problems';
import { problemResponses } from '../schemas';

export interface DeadLetterRoutesOptions {
  pool: pg.Pool;
}

const deadLetter = z.object({
  eventId: z.string(),
  subscriptionId: z.string(),
  tenantId: z.string(),
  eventType: z.string(),
  attempts: z.number(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
});
const errors = problemResponses(400, 401, 429, 503);

/**
 * The tenant's dead-lettered deliveries (registered inside the authenticated
 * /v1 scope): list them, and replay them with their original `webhook-id`, so
 * a consumer that did apply one after all drops the repeat in its inbox. The
 * CLI (`onceflow outbox dead-letters|replay`) calls the same functions.
 */
export const deadLetterRoutes: FastifyPluginAsyncZod<DeadLetterRoutesOptions> = async (app, options) => {
  app.get(
    '/v1/dead-letters',
    {
      schema: {
        summary: 'List dead-lettered deliveries, oldest first, a page at a time',
        tags: ['subscriptions'],
        querystring: z.object({
          subscriptionId: z.string().uuid().optional(),
          eventId: z.string().max(512).optional(),
          limit: z.coerce.number().int().min(1).max(MAX_DEAD_LETTERS_PER_CALL).default(100),
          cursor: z.string().max(2048).optional(),
        }),
        response: { 200: z.object({ data: z.array(deadLetter), nextCursor: z.string().nullable() }), ...errors },
      },
    },
    async (request) => {
      try {
        return await listDeadLetters(options.pool, { tenantId: requireTenant(request), ...request.query });
      } catch (error) {
        if (error instanceof InvalidCursorError) throw problems.invalidCursor(error);
        throw error;
      }
    },
  );

  app.post(
    '/v1/dead-letters/replay',
    {
      schema: {
        summary: 'Replay dead-lettered deliveries (same webhook-id), oldest first, at most `limit` per call; no filter replays this tenant’s',
        description:
          'Each replayed delivery gets a fresh attempt budget; a subscription paused by 410 Gone is re-enabled. `more: true` means matching dead letters are left: call again.',
        tags: ['subscriptions'],
        body: z
          .object({
            subscriptionId: z.string().uuid().optional(),
            eventId: z.string().max(512).optional(),
            limit: z.number().int().min(1).max(MAX_DEAD_LETTERS_PER_CALL).default(100),
          })
          .strict(),
        response: { 200: z.object({ replayed: z.number(), more: z.boolean() }), ...errors },
      },
    },
    async (request) => replayDeadLetters(options.pool, { tenantId: requireTenant(request), ...request.body }),
  );
};
