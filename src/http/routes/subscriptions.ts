import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import type { SecretBox } from '../../crypto/secret-box';
import { listDeadLetters, replayDeadLetters } from '../../outbox/dead-letters';
import { createSubscription, deleteSubscription, listSubscriptions } from '../../outbox/subscriptions';
import { ProblemError } from '../errors';
import { problemSchema } from '../schemas';

export interface SubscriptionRoutesOptions {
  pool: pg.Pool;
  secretBox: SecretBox;
}

const eventType = z.string().regex(/^(\*|[a-z]+(\.[a-z-]+)+)$/, 'an event type such as operation.succeeded, or *');
const subscription = z.object({
  id: z.string().uuid(),
  url: z.string(),
  eventTypes: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  disabledReason: z.string().nullable(),
  createdAt: z.string(),
});
const deadLetter = z.object({
  eventId: z.string(), subscriptionId: z.string(), tenantId: z.string(), eventType: z.string(),
  attempts: z.number(), lastError: z.string().nullable(), createdAt: z.string(),
});

/** Per-tenant webhook subscriptions and dead letters; registered inside the authenticated /v1 scope. */
export const subscriptionRoutes: FastifyPluginAsyncZod<SubscriptionRoutesOptions> = async (app, options) => {
  app.post(
    '/v1/subscriptions',
    {
      schema: {
        summary: 'Subscribe a URL to events (the signing secret is shown once)',
        tags: ['subscriptions'],
        body: z.object({
          url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'http or https'),
          eventTypes: z.array(eventType).min(1).default(['*']),
        }).strict(),
        response: { 201: subscription.extend({ secret: z.string() }), 400: problemSchema, 401: problemSchema },
      },
    },
    async (request, reply) => {
      const created = await createSubscription(options.pool, options.secretBox, { tenantId: request.tenantId!, ...request.body });
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/v1/subscriptions',
    { schema: { summary: 'List subscriptions', tags: ['subscriptions'], response: { 200: z.object({ data: z.array(subscription) }) } } },
    async (request) => ({ data: await listSubscriptions(options.pool, request.tenantId!) }),
  );

  app.delete(
    '/v1/subscriptions/:id',
    { schema: { summary: 'Delete a subscription', tags: ['subscriptions'], params: z.object({ id: z.string().uuid() }), response: { 204: z.null(), 404: problemSchema } } },
    async (request, reply) => {
      if (!(await deleteSubscription(options.pool, request.tenantId!, request.params.id))) {
        throw new ProblemError({ status: 404, type: 'subscription-not-found', title: 'Subscription not found', detail: 'no such subscription for this tenant' });
      }
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/dead-letters',
    {
      schema: {
        summary: 'List dead-lettered deliveries',
        tags: ['subscriptions'],
        querystring: z.object({ subscriptionId: z.string().uuid().optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
        response: { 200: z.object({ data: z.array(deadLetter) }) },
      },
    },
    async (request) => ({ data: await listDeadLetters(options.pool, { tenantId: request.tenantId!, ...request.query }) }),
  );

  app.post(
    '/v1/dead-letters/replay',
    {
      schema: {
        summary: 'Replay dead-lettered deliveries (same webhook-id)',
        tags: ['subscriptions'],
        body: z.object({ subscriptionId: z.string().uuid().optional(), eventId: z.string().optional() }).strict(),
        response: { 200: z.object({ replayed: z.number() }) },
      },
    },
    async (request) => ({ replayed: await replayDeadLetters(options.pool, { tenantId: request.tenantId!, ...request.body }) }),
  );
};
