import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { listDeadLetters, replayDeadLetters } from '../../outbox/dead-letters';
import { requireTenant } from '../auth';
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
        summary: 'List dead-lettered deliveries',
        tags: ['subscriptions'],
        querystring: z.object({
          subscriptionId: z.string().uuid().optional(),
          eventId: z.string().max(512).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
        response: { 200: z.object({ data: z.array(deadLetter) }), ...errors },
      },
    },
    async (request) => ({ data: await listDeadLetters(options.pool, { tenantId: requireTenant(request), ...request.query }) }),
  );

  app.post(
    '/v1/dead-letters/replay',
    {
      schema: {
        summary: 'Replay dead-lettered deliveries (same webhook-id); no filter replays all of this tenant’s',
        description: 'Each replayed delivery gets a fresh attempt budget; a subscription disabled by 410 Gone is re-enabled.',
        tags: ['subscriptions'],
        body: z.object({ subscriptionId: z.string().uuid().optional(), eventId: z.string().max(512).optional() }).strict(),
        response: { 200: z.object({ replayed: z.number() }), ...errors },
      },
    },
    async (request) => ({ replayed: await replayDeadLetters(options.pool, { tenantId: requireTenant(request), ...request.body }) }),
  );
};
