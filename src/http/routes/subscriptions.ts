import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import type { SecretBox } from '../../crypto/secret-box';
import { BlockedAddressError, type AddressPolicy } from '../../outbox/address-policy';
import { InvalidCursorError } from '../../outbox/page';
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  SubscriptionLimitError,
  updateSubscription,
} from '../../outbox/subscriptions';
import { requireTenant } from '../auth';
import { problems } from '../problems';
import { problemResponse, problemResponses } from '../schemas';

export interface SubscriptionRoutesOptions {
  pool: pg.Pool;
  secretBox: SecretBox;
  /** Refuses URLs aimed inside the deployment (WEBHOOK_ALLOWED_HOSTS lets an operator's own through). */
  addressPolicy: AddressPolicy;
  /** ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT. */
  maxPerTenant: number;
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
  droppedEvents: z
    .object({ count: z.number().int(), firstEventAt: z.string().nullable(), lastEventAt: z.string().nullable() })
    .describe(
      'Events never delivered because the subscription stayed paused by its subscriber’s 410 Gone past the operator’s retention (OUTBOX_PAUSED_RETENTION_DAYS, default 7 days): how many, and the creation time of the oldest and newest of them (null while none). Resuming delivers the events still kept.',
    ),
});
const idParams = z.object({ id: z.string().uuid() });
const errors = problemResponses(400, 401, 429, 503);

/** The URL check as a problem (400 subscription-url-not-allowed). */
async function checkUrl(policy: AddressPolicy, url: string): Promise<void> {
  try {
    await policy.checkUrl(url);
  } catch (error) {
    if (!(error instanceof BlockedAddressError)) throw error;
    throw problems.subscriptionUrlNotAllowed(error.rule, error);
  }
}

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
        description: 'A URL whose host is or resolves to a loopback, link-local, private, CGNAT, unspecified or multicast address is refused (400 subscription-url-not-allowed). A tenant has at most a configured number of subscriptions (409 subscription-limit-reached).',
        tags: ['subscriptions'],
        body: z.object({ url: webhookUrl, eventTypes: z.array(eventType).min(1).max(50).default(['*']) }).strict(),
        response: { 201: subscription.extend({ secret: z.string() }), 409: problemResponse, ...errors },
      },
    },
    async (request, reply) => {
      await checkUrl(options.addressPolicy, request.body.url);
      try {
        const created = await createSubscription(options.pool, options.secretBox, { tenantId: requireTenant(request), ...request.body, maxPerTenant: options.maxPerTenant });
        return reply.code(201).send(created);
      } catch (error) {
        if (!(error instanceof SubscriptionLimitError)) throw error;
        throw problems.subscriptionLimitReached(error.limit);
      }
    },
  );

  app.get(
    '/v1/subscriptions',
    {
      schema: {
        summary: 'List subscriptions, oldest first, a page at a time',
        tags: ['subscriptions'],
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(50), cursor: z.string().max(1024).optional() }),
        response: { 200: z.object({ data: z.array(subscription), nextCursor: z.string().nullable() }), ...errors },
      },
    },
    async (request) => {
      try {
        return await listSubscriptions(options.pool, requireTenant(request), request.query);
      } catch (error) {
        if (error instanceof InvalidCursorError) throw problems.invalidCursor(error);
        throw error;
      }
    },
  );

  app.get(
    '/v1/subscriptions/:id',
    { schema: { summary: 'Get a subscription', tags: ['subscriptions'], params: idParams, response: { 200: subscription, 404: problemResponse, ...errors } } },
    async (request) => {
      const found = await getSubscription(options.pool, requireTenant(request), request.params.id);
      if (!found) throw problems.subscriptionNotFound();
      return found;
    },
  );

  app.patch(
    '/v1/subscriptions/:id',
    {
      schema: {
        summary: 'Change a subscription’s URL or event types, or disable / re-enable it',
        description:
          'Re-enabling (status "active") resumes its pending deliveries, including every event recorded while a 410 Gone had paused it; dead letters need POST /v1/dead-letters/replay. A new URL is checked like one at create.',
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
      if (request.body.url !== undefined) await checkUrl(options.addressPolicy, request.body.url);
      const updated = await updateSubscription(options.pool, requireTenant(request), request.params.id, request.body);
      if (!updated) throw problems.subscriptionNotFound();
      return updated;
    },
  );

  app.delete(
    '/v1/subscriptions/:id',
    { schema: { summary: 'Delete a subscription and its undelivered deliveries', tags: ['subscriptions'], params: idParams, response: { 204: z.null(), 404: problemResponse, ...errors } } },
    async (request, reply) => {
      if (!(await deleteSubscription(options.pool, requireTenant(request), request.params.id))) throw problems.subscriptionNotFound();
      return reply.code(204).send(null);
    },
  );
};
