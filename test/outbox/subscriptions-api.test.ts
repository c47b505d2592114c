import { randomUUID } from 'node:crypto';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent } from '../../src/outbox/enqueue';
import { type OutboxRelay } from '../../src/outbox/relay';
import { callApi, createApiTenant, type TestApi } from '../helpers/api';
import { startTestRelay } from '../helpers/relay';
import { startTestStack } from '../helpers/stack';
import { until } from '../helpers/until';

interface SubscriptionBody {
  id: string;
  url: string;
  eventTypes: string[];
  status: 'active' | 'disabled';
  disabledReason: string | null;
  secret?: string;
}

describe('the subscriptions and dead-letters API', () => {
  let pool: Pool;
  let api: TestApi;
  const consumers: ExampleConsumer[] = [];
  const relays: OutboxRelay[] = [];
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, api, close } = await startTestStack({ api: {} }));
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(consumers.splice(0).map((c) => c.close()));
  });
  afterAll(() => close());

  const call = (apiKey: string, method: string, path: string, body?: unknown) => callApi(api.baseUrl, apiKey, method, path, body);

  function startRelay(options: { maxAttempts?: number } = {}): void {
    const relay = startTestRelay({ pool, deadLetterAfterMs: 0, ...options });
    relays.push(relay);
  }

  async function emit(tenantId: string): Promise<string> {
    const aggregateId = randomUUID();
    const eventId = `${aggregateId}:operation.succeeded`;
    await withTransaction(pool, (tx) =>
      enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } }),
    );
    return eventId;
  }

  it('creates, reads, changes and deletes a subscription per tenant; the secret is shown once and stored sealed', async () => {
    const a = await createApiTenant(pool, 'subs-a');
    const b = await createApiTenant(pool, 'subs-b');
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://example.test/hooks', eventTypes: ['operation.succeeded'] });
    expect(created.status).toBe(201);
    const subscription = created.body as SubscriptionBody;
    expect(subscription).toMatchObject({ url: 'https://example.test/hooks', eventTypes: ['operation.succeeded'], status: 'active', disabledReason: null });
    expect(subscription.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{20,}$/);

    const { rows } = await pool.query<{ secret_sealed: string }>('SELECT secret_sealed FROM subscriptions WHERE subscription_id = $1', [subscription.id]);
    expect(rows[0]!.secret_sealed).not.toContain(subscription.secret!.slice('whsec_'.length));
    expect(secretBoxFromConfig({}).open(rows[0]!.secret_sealed)).toBe(subscription.secret);

    const fetched = await call(a.apiKey, 'GET', `/v1/subscriptions/${subscription.id}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body).not.toHaveProperty('secret');
    const listed = await call(a.apiKey, 'GET', '/v1/subscriptions');
    expect((listed.body as { data: SubscriptionBody[] }).data.map((s) => s.id)).toEqual([subscription.id]);
    expect((listed.body as { data: SubscriptionBody[] }).data[0]).not.toHaveProperty('secret');

    // Another tenant cannot see, change or delete it: 404, not 403.
    expect((await call(b.apiKey, 'GET', `/v1/subscriptions/${subscription.id}`)).status).toBe(404);
    expect((await call(b.apiKey, 'PATCH', `/v1/subscriptions/${subscription.id}`, { status: 'disabled' })).status).toBe(404);
    expect((await call(b.apiKey, 'DELETE', `/v1/subscriptions/${subscription.id}`)).status).toBe(404);
    expect(((await call(b.apiKey, 'GET', '/v1/subscriptions')).body as { data: unknown[] }).data).toEqual([]);

    const paused = await call(a.apiKey, 'PATCH', `/v1/subscriptions/${subscription.id}`, { status: 'disabled', eventTypes: ['*'] });
    expect(paused.body).toMatchObject({ status: 'disabled', disabledReason: 'disabled through the API', eventTypes: ['*'] });
    const resumed = await call(a.apiKey, 'PATCH', `/v1/subscriptions/${subscription.id}`, { status: 'active' });
    expect(resumed.body).toMatchObject({ status: 'active', disabledReason: null });

    expect((await call(a.apiKey, 'DELETE', `/v1/subscriptions/${subscription.id}`)).status).toBe(204);
    expect((await call(a.apiKey, 'GET', `/v1/subscriptions/${subscription.id}`)).status).toBe(404);
  });

  it('refuses malformed subscriptions with a problem body', async () => {
    const a = await createApiTenant(pool, 'subs-bad');
    for (const body of [{ url: 'ftp://example.test/x' }, { url: 'not a url' }, { url: 'https://example.test', eventTypes: [] }, { url: 'https://example.test', secret: 'mine' }]) {
      const answer = await call(a.apiKey, 'POST', '/v1/subscriptions', body);
      expect([answer.status, answer.contentType]).toEqual([400, expect.stringMatching(/^application\/problem\+json/)]);
    }
    const created = (await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://example.test/x' })).body as SubscriptionBody;
    expect((await call(a.apiKey, 'PATCH', `/v1/subscriptions/${created.id}`, {})).status).toBe(400);
  });

  it('delivers to a subscription made through the API, signed with the secret the API returned', async () => {
    const a = await createApiTenant(pool, 'subs-e2e');
    const created = (await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://placeholder.test/x' })).body as SubscriptionBody;
    const consumer = await startExampleConsumer({ pool, secret: created.secret!, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    await call(a.apiKey, 'PATCH', `/v1/subscriptions/${created.id}`, { url: consumer.url });
    const eventId = await emit(a.tenantId);
    startRelay();
    await until(() => consumer.received.length === 1, 'delivered');
    expect(consumer.received).toEqual([{ webhookId: eventId, eventType: 'operation.succeeded', duplicate: false }]);
  });

  it('lists a tenant’s dead letters and replays them through the API with the same webhook-id; a 410-disabled subscription comes back', async () => {
    const a = await createApiTenant(pool, 'subs-dead');
    const b = await createApiTenant(pool, 'subs-dead-other');
    const created = (await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://placeholder.test/x' })).body as SubscriptionBody;
    const consumer = await startExampleConsumer({ pool, secret: created.secret!, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    await call(a.apiKey, 'PATCH', `/v1/subscriptions/${created.id}`, { url: consumer.url });
    consumer.failNext(410);
    const eventId = await emit(a.tenantId);
    startRelay({ maxAttempts: 1 });
    await until(async () => ((await call(a.apiKey, 'GET', '/v1/dead-letters')).body as { data: unknown[] }).data.length === 1, 'dead-lettered');

    const dead = (await call(a.apiKey, 'GET', `/v1/dead-letters?subscriptionId=${created.id}`)).body as { data: unknown[] };
    expect(dead.data).toEqual([expect.objectContaining({ eventId, subscriptionId: created.id, lastError: 'status 410: subscription paused' })]);
    expect((await call(a.apiKey, 'GET', `/v1/subscriptions/${created.id}`)).body).toMatchObject({ status: 'disabled' });
    // Tenant-scoped: the other tenant neither sees nor replays it.
    expect(((await call(b.apiKey, 'GET', '/v1/dead-letters')).body as { data: unknown[] }).data).toEqual([]);
    expect((await call(b.apiKey, 'POST', '/v1/dead-letters/replay', {})).body).toEqual({ replayed: 0, more: false });

    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { eventId })).body).toEqual({ replayed: 1, more: false });
    await until(() => consumer.received.length === 1, 'replayed delivery arrived');
    expect(consumer.received[0]!.webhookId).toBe(eventId);
    expect((await call(a.apiKey, 'GET', `/v1/subscriptions/${created.id}`)).body).toMatchObject({ status: 'active' });
  });

  it('documents every subscription and dead-letter route in the OpenAPI document', async () => {
    const document = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(document.paths['/v1/subscriptions'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(document.paths['/v1/subscriptions/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch']);
    expect(Object.keys(document.paths['/v1/dead-letters'] ?? {})).toEqual(['get']);
    expect(Object.keys(document.paths['/v1/dead-letters/replay'] ?? {})).toEqual(['post']);
  });
});
