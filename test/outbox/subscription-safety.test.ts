import { randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { createPruneOutbox } from '../../activities/prune-outbox';
import { withTransaction } from '../../src/db/transaction';
import { AddressPolicy } from '../../src/outbox/address-policy';
import { enqueueEvent } from '../../src/outbox/enqueue';
import type { OutboxRelay } from '../../src/outbox/relay';
import type { Pool } from '../../src/db/pool';
import { callApi, createApiTenant, type TestApi } from '../helpers/api';
import { startTestRelay } from '../helpers/relay';
import { startTestStack } from '../helpers/stack';
import { until } from '../helpers/until';

/**
 * Attacks a hostile tenant would try on outgoing webhooks, over real HTTP
 * against the real API and relay, in a database of this file's own (so no
 * other file's relay delivers, or refuses, these deliveries).
 */
describe('subscriptions a hostile tenant cannot abuse', () => {
  let pool: Pool;
  let databaseUrl: string;
  let api: TestApi;
  let close = async () => {};
  const consumers: ExampleConsumer[] = [];
  const relays: OutboxRelay[] = [];
  /** What the staged DNS answers for `rebind.test` right now. */
  let rebindAnswer = '93.184.216.34';
  const resolveHost = async (host: string): Promise<LookupAddress[]> => {
    if (host === 'rebind.test') return [{ address: rebindAnswer, family: 4 }];
    if (host === 'private.test') return [{ address: '10.1.2.3', family: 4 }];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };

  beforeAll(async () => {
    ({ pool, databaseUrl, api, close } = await startTestStack({
      ownDatabase: 'subsafety',
      // No allowlist: the API as a production deployment runs it.
      api: { resolveHost, config: { ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT: 3, WEBHOOK_ALLOWED_HOSTS: [] } },
    }));
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(consumers.splice(0).map((c) => c.close()));
  });
  afterAll(() => close());

  const call = (apiKey: string, method: string, path: string, body?: unknown) => callApi(api.baseUrl, apiKey, method, path, body);

  async function emit(tenantId: string, aggregateId = randomUUID(), n = 0): Promise<string> {
    const eventId = `${aggregateId}:event-${n}`;
    await withTransaction(pool, (tx) => enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { n } }));
    return eventId;
  }

  it('refuses URLs aimed inside the deployment at create and update, naming the rule and not the address', async () => {
    const a = await createApiTenant(pool, 'ssrf');
    const cases: [string, string][] = [
      ['http://127.0.0.1:7233/', 'loopback'],
      ['http://[::1]/x', 'loopback'],
      ['http://169.254.169.254/latest/meta-data/', 'link-local'],
      ['http://[fe80::1]/x', 'link-local'],
      ['http://10.0.0.8:9090/', 'private'],
      ['http://192.168.1.10/', 'private'],
      ['http://[fd12::1]/', 'private'],
      ['http://100.64.0.1/', 'cgnat'],
      ['http://0.0.0.0:5432/', 'unspecified'],
      ['http://224.0.0.1/', 'multicast'],
      ['http://[::ffff:127.0.0.1]/', 'loopback'],
      ['http://[::ffff:a9fe:a9fe]/', 'link-local'],
      ['https://private.test/hook', 'private'],
    ];
    for (const [url, rule] of cases) {
      const answer = await call(a.apiKey, 'POST', '/v1/subscriptions', { url });
      expect([url, answer.status, answer.body.type, answer.body.rule]).toEqual([url, 400, 'https://onceflow.dev/problems/subscription-url-not-allowed', rule]);
      expect(JSON.stringify(answer.body)).not.toContain('10.1.2.3');
    }
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://rebind.test/hook' });
    expect(created.status).toBe(201);
    const moved = await call(a.apiKey, 'PATCH', `/v1/subscriptions/${created.body.id as string}`, { url: 'http://169.254.169.254/' });
    expect([moved.status, moved.body.rule]).toEqual([400, 'link-local']);
    expect((await call(a.apiKey, 'GET', `/v1/subscriptions/${created.body.id as string}`)).body.url).toBe('https://rebind.test/hook');
  });

  it('does not deliver to a name that resolved to a public address at create time and to 127.0.0.1 at delivery (DNS rebinding); the tenant sees a category, not the address', async () => {
    const a = await createApiTenant(pool, 'rebind');
    rebindAnswer = '93.184.216.34';
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'http://rebind.test/webhooks' });
    expect(created.status).toBe(201);
    const consumer = await startExampleConsumer({ pool: pool, secret: created.body.secret as string, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    // The same name, now on the consumer's loopback port (the URL keeps the name; the port is the consumer's).
    const port = new URL(consumer.url).port;
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [`http://rebind.test:${port}/webhooks`, created.body.id]);
    rebindAnswer = '127.0.0.1';
    const eventId = await emit(a.tenantId);
    // The relay's connections go through the same staged DNS; only loopback by IP is allowlisted, not the name.
    relays.push(startTestRelay({ pool: pool, connectionString: databaseUrl, addressPolicy: new AddressPolicy({ resolve: resolveHost, allowedHosts: ['127.0.0.1'] }), maxAttempts: 1, deadLetterAfterMs: 0 }));
    await until(async () => ((await call(a.apiKey, 'GET', '/v1/dead-letters')).body.data as unknown[]).length === 1, 'refused and dead-lettered');
    expect(consumer.received).toEqual([]);
    const [dead] = (await call(a.apiKey, 'GET', '/v1/dead-letters')).body.data as { eventId: string; lastError: string }[];
    expect(dead).toEqual(expect.objectContaining({ eventId, lastError: 'refused by policy: loopback' }));
    expect(dead!.lastError).not.toMatch(/127\.0\.0\.1|rebind|:\d+/);
    await Promise.all(relays.splice(0).map((r) => r.stop()));

    // Control: the same staged DNS with the name allowlisted by the operator delivers, so the refusal above was the policy's.
    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { eventId })).body).toEqual({ replayed: 1, more: false });
    relays.push(startTestRelay({ pool: pool, connectionString: databaseUrl, addressPolicy: new AddressPolicy({ resolve: resolveHost, allowedHosts: ['rebind.test'] }) }));
    await until(() => consumer.received.length === 1, 'delivered once allowlisted');
    expect(consumer.received[0]!.webhookId).toBe(eventId);
  });

  it('caps subscriptions per tenant with a 409 problem, and pages the list with a cursor', async () => {
    const a = await createApiTenant(pool, 'cap');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: `https://consumer-${i}.example.test/hook` });
      expect(created.status).toBe(201);
      ids.push(created.body.id as string);
    }
    const refused = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://one-more.example.test/hook' });
    expect([refused.status, refused.body.type, refused.body.limit]).toEqual([409, 'https://onceflow.dev/problems/subscription-limit-reached', 3]);
    // Another tenant is not affected by this one's cap.
    const b = await createApiTenant(pool, 'cap-other');
    expect((await call(b.apiKey, 'POST', '/v1/subscriptions', { url: 'https://b.example.test/hook' })).status).toBe(201);

    const first = await call(a.apiKey, 'GET', '/v1/subscriptions?limit=2');
    expect((first.body.data as { id: string }[]).map((s) => s.id)).toEqual(ids.slice(0, 2));
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await call(a.apiKey, 'GET', `/v1/subscriptions?limit=2&cursor=${encodeURIComponent(first.body.nextCursor as string)}`);
    expect((second.body.data as { id: string }[]).map((s) => s.id)).toEqual(ids.slice(2));
    expect(second.body.nextCursor).toBeNull();
    expect((await call(a.apiKey, 'GET', '/v1/subscriptions?limit=101')).status).toBe(400);
    expect((await call(a.apiKey, 'GET', '/v1/subscriptions?cursor=bm90LWEtY3Vyc29y')).status).toBe(400);
  });

  it('pages dead letters and replays them in bounded calls', async () => {
    const a = await createApiTenant(pool, 'dlpage');
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://paged.example.test/hook' });
    const subscriptionId = created.body.id as string;
    await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'disabled through the API' WHERE subscription_id = $1", [subscriptionId]);
    await pool.query("UPDATE subscriptions SET status = 'active', disabled_reason = NULL WHERE subscription_id = $1", [subscriptionId]);
    const events: string[] = [];
    for (let i = 0; i < 5; i++) events.push(await emit(a.tenantId));
    // Dead before any relay runs (no relay runs in this test).
    await pool.query("UPDATE deliveries SET status = 'dead', attempts = 12, last_error = 'status 503' WHERE subscription_id = $1", [subscriptionId]);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await call(a.apiKey, 'GET', `/v1/dead-letters?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      const data = page.body.data as { eventId: string }[];
      expect(data.length).toBeLessThanOrEqual(2);
      seen.push(...data.map((d) => d.eventId));
      cursor = page.body.nextCursor as string | null;
    } while (cursor);
    expect(seen.sort()).toEqual([...events].sort());
    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { limit: 2 })).body).toEqual({ replayed: 2, more: true });
    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { limit: 2 })).body).toEqual({ replayed: 2, more: true });
    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { limit: 2 })).body).toEqual({ replayed: 1, more: false });
    expect((await call(a.apiKey, 'POST', '/v1/dead-letters/replay', { limit: 1001 })).status).toBe(400);
  });

  it('keeps recording events for a subscription its subscriber paused with 410 Gone, and delivers them in order on resume', async () => {
    const a = await createApiTenant(pool, 'gone');
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://placeholder.example.test/x' });
    const subscriptionId = created.body.id as string;
    const consumer = await startExampleConsumer({ pool: pool, secret: created.body.secret as string, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    // The consumer is on loopback, which this file's API refuses: set it behind the API's back (the relay allowlists it).
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscriptionId]);
    consumer.failNext(410);
    const gone = await emit(a.tenantId);
    relays.push(startTestRelay({ pool: pool, connectionString: databaseUrl }));
    await until(async () => (await call(a.apiKey, 'GET', `/v1/subscriptions/${subscriptionId}`)).body.status === 'disabled', 'paused by the 410');

    const aggregateId = randomUUID();
    const later = [await emit(a.tenantId, aggregateId, 0), await emit(a.tenantId, aggregateId, 1)];
    const { rows } = await pool.query('SELECT event_id, status FROM deliveries WHERE subscription_id = $1 ORDER BY seq', [subscriptionId]);
    expect(rows).toEqual([{ event_id: gone, status: 'dead' }, { event_id: later[0], status: 'pending' }, { event_id: later[1], status: 'pending' }]);
    await new Promise((r) => setTimeout(r, 500));
    expect(consumer.received).toEqual([]);

    expect((await call(a.apiKey, 'PATCH', `/v1/subscriptions/${subscriptionId}`, { status: 'active' })).body.status).toBe('active');
    await pool.query("SELECT pg_notify('onceflow_outbox', 'resumed')");
    await until(() => consumer.received.length === 2, 'the events recorded while paused delivered');
    expect(consumer.received.map((r) => r.webhookId)).toEqual(later);
  });
  it('drops the deliveries of a subscription left paused by a 410 past their retention, and shows the tenant how many and over which period', async () => {
    const a = await createApiTenant(pool, 'paused');
    const created = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://placeholder.example.test/x' });
    const subscriptionId = created.body.id as string;
    expect(created.body.droppedEvents).toEqual({ count: 0, firstEventAt: null, lastEventAt: null });
    const consumer = await startExampleConsumer({ pool: pool, secret: created.body.secret as string, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscriptionId]);
    consumer.failNext(410);
    await emit(a.tenantId);
    const relay = startTestRelay({ pool: pool, connectionString: databaseUrl });
    relays.push(relay);
    await until(async () => (await call(a.apiKey, 'GET', `/v1/subscriptions/${subscriptionId}`)).body.status === 'disabled', 'paused by the 410');

    // Recorded while paused: three events written long ago (past the retention) and one today.
    const old = ['2020-01-01T00:00:00.000Z', '2020-01-03T00:00:00.000Z', '2020-01-02T00:00:00.000Z'];
    const oldEvents: string[] = [];
    for (const at of old) {
      const eventId = await emit(a.tenantId);
      await pool.query('UPDATE outbox_events SET created_at = $2 WHERE event_id = $1', [eventId, at]);
      await pool.query('UPDATE deliveries SET created_at = $2 WHERE event_id = $1', [eventId, at]);
      oldEvents.push(eventId);
    }
    const young = await emit(a.tenantId);
    // A subscription the tenant paused itself keeps its waiting deliveries whatever their age: its own choice.
    const own = await call(a.apiKey, 'POST', '/v1/subscriptions', { url: 'https://placeholder.example.test/own' });
    const ownEvent = await emit(a.tenantId);
    await pool.query("UPDATE deliveries SET created_at = '2020-01-01Z' WHERE subscription_id = $1", [own.body.id]);
    await call(a.apiKey, 'PATCH', `/v1/subscriptions/${own.body.id as string}`, { status: 'disabled' });

    // Two maintenance passes at once, one row per statement (a pass that meets the other's locks leaves the rest
    // to the next pass), then one alone: each dropped delivery is counted once.
    const prune = createPruneOutbox({ pool, pausedRetentionDays: 7 });
    const reports = [...(await Promise.all([prune({ batchSize: 1 }), prune({ batchSize: 1 })])), await prune({ batchSize: 1 })];
    expect(reports.reduce((n, r) => n + r.pausedDropped, 0)).toBe(3);

    const { body } = await call(a.apiKey, 'GET', `/v1/subscriptions/${subscriptionId}`);
    expect(body.droppedEvents).toEqual({ count: 3, firstEventAt: '2020-01-01T00:00:00.000Z', lastEventAt: '2020-01-03T00:00:00.000Z' });
    const listed = await call(a.apiKey, 'GET', '/v1/subscriptions');
    expect((listed.body.data as { id: string; droppedEvents: unknown }[]).find((s) => s.id === subscriptionId)?.droppedEvents).toEqual(body.droppedEvents);
    const { rows } = await pool.query<{ event_id: string }>("SELECT event_id FROM deliveries WHERE subscription_id = $1 AND status = 'pending' ORDER BY seq", [subscriptionId]);
    expect(rows.map((r) => r.event_id)).toEqual([young, ownEvent]);
    // Their events went too (no other subscriber was waiting for them); the kept ones did not.
    expect((await pool.query('SELECT event_id FROM outbox_events WHERE event_id = ANY ($1)', [oldEvents])).rowCount).toBe(0);
    expect((await pool.query('SELECT 1 FROM deliveries WHERE event_id = $1 AND subscription_id = $2', [ownEvent, own.body.id])).rowCount).toBe(1);

    // A later pass finds nothing more to drop and counts nothing again.
    expect((await prune({})).pausedDropped).toBe(0);
    expect((await call(a.apiKey, 'GET', `/v1/subscriptions/${subscriptionId}`)).body.droppedEvents.count).toBe(3);

    // Resuming delivers what was kept; the record of what was dropped stays.
    expect((await call(a.apiKey, 'PATCH', `/v1/subscriptions/${subscriptionId}`, { status: 'active' })).body.droppedEvents.count).toBe(3);
    await pool.query("SELECT pg_notify('onceflow_outbox', 'resumed')");
    await until(() => consumer.received.some((r) => r.webhookId === young), 'the kept event delivered on resume');
    expect(consumer.received.map((r) => r.webhookId).filter((id) => oldEvents.includes(id))).toEqual([]);
  });
});
