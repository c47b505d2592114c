import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import type { SecretBox } from '../../crypto/secret-box';
import { createSubscription, deleteSubscription, getSubscription, listSubscriptions, updateSubscription } from '../../outbox/subscriptions';
import { requireTenant } from '../auth';
import { ProblemError } from '../errors';
import { problemResponse, problemResponses } from '../schemas';

export interface SubscriptionRoutesOptions {
  pool: pg.Pool;
  secretBox: SecretBox;
}

const eventType = z.string().regex(/^(\*|[a-z]+(\.[a-z-]+)+)$/, 'an event type such as operation.succeeded, or *');
const webhookUrl = z.string().url().max(2048).refine((u) => /^https?:\/\//.test(u), 'http or https');
const subscription = z.object({
  id: z.string().uuid(),
  url: z.string(),
  eventTypes: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  disabledReason: z.string().nullable(),
  createdAt: z.string(),
});
const idParams = z.object({ id: z.string().uuid() });
const errors = problemResponses(400, 401, 429, 503);

const notFound = () =>
  new ProblemError({ status: 404, type: 'subscription-not-found', title: 'Subscription not found', detail: 'no such subscription for this tenant' });

/**
 * Per-tenant webhook subscriptions (registered inside the authenticated /v1
 * scope). The signing secret is generated here, shown once in the 201 answer,
 * and stored sealed (AES-256-GCM): the relay needs it back to sign, so it
 * cannot be hashed. Another tenant's subscription answers 404.
 */
export const subscriptionRoutes: FastifyPluginAsyncZod<SubscriptionRoutesOptions> = async (app, options) => {
  app.post(
    '/v1/subscriptions',
    {
      schema: {
        summary: 'Subscribe a URL to events (the signing secret is shown once)',
        tags: ['subscriptions'],
        body: z.object({ url: webhookUrl, eventTypes: z.array(eventType).min(1).max(50).default(['*']) }).strict(),
        response: { 201: subscription.extend({ secret: z.string() }), ...errors },
      },
    },
    async (request, reply) => {
      const created = await createSubscription(options.pool, options.secretBox, { tenantId: requireTenant(request), ...request.body });
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/v1/subscriptions',
    { schema: { summary: 'List subscriptions', tags: ['subscriptions'], response: { 200: z.object({ data: z.array(subscription) }), ...errors } } },
    async (request) => ({ data: await listSubscriptions(options.pool, requireTenant(request)) }),
  );

  app.get(
    '/v1/subscriptions/:id',
    { schema: { summary: 'Get a subscription', tags: ['subscriptions'], params: idParams, response: { 200: subscription, 404: problemResponse, ...errors } } },
    async (request) => {
      const found = await getSubscription(options.pool, requireTenant(request), request.params.id);
      if (!found) throw notFound();
      return found;
    },
  );

  app.patch(
    '/v1/subscriptions/:id',
    {
      schema: {
        summary: 'Change a subscription’s URL or event types, or disable / re-enable it',
        description: 'Re-enabling (status "active") resumes its pending deliveries; dead letters need POST /v1/dead-letters/replay.',
        tags: ['subscriptions'],
        params: idParams,
        body: z
          .object({ url: webhookUrl.optional(), eventTypes: z.array(eventType).min(1).max(50).optional(), status: z.enum(['active', 'disabled']).optional() })
          .strict()
          .refine((b) => Object.keys(b).length > 0, 'change at least one of url, eventTypes, status'),
        response: { 200: subscription, 404: problemResponse, ...errors },
      },
    },
    async (request) => {
      const updated = await updateSubscription(options.pool, requireTenant(request), request.params.id, request.body);
      if (!updated) throw notFound();
      return updated;
    },
  );

  app.delete(
    '/v1/subscriptions/:id',
    { schema: { summary: 'Delete a subscription and its undelivered deliveries', tags: ['subscriptions'], params: idParams, response: { 204: z.null(), 404: problemResponse, ...errors } } },
    async (request, reply) => {
      if (!(await deleteSubscription(options.pool, requireTenant(request), request.params.id))) throw notFound();
      return reply.code(204).send(null);
    },
  );
};
