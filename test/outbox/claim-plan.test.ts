import type { Pool } from '../../src/db/pool';
import { CLAIM_DUE_DELIVERIES, CLAIM_PLANNER_SETTINGS, claimDueDeliveries, claimParameters } from '../../src/outbox/claim';
import { createOwnDatabaseWithSubscription, type OwnDatabase } from './fixtures/own-database';
import { explainAnalyze, planBuffers, planNodes, type PlanNode } from './fixtures/plan';

/**
 * The claim after a burst, planned with statistics from before it: the case
 * where the earlier statement sorted every due row before its LIMIT (see
 * CLAIM_DUE_DELIVERIES). Its own database, so the state is exactly this one
 * and no relay of another test delivers these rows.
 */
describe('claiming due deliveries with stale planner statistics', () => {
  let db: OwnDatabase;
  let pool: Pool;
  const BURST = 5_000;
  const LEASED_ELSEWHERE = 400;
  const LIMIT = 200;
  /** Operations at the head of the burst with two events: only the first of each may be claimed. */
  const TWO_EVENT_OPERATIONS = 20;

  beforeAll(async () => {
    const tenantId = 'claim-plan';
    const own = await createOwnDatabaseWithSubscription('claim_plan', tenantId);
    db = own;
    pool = own.pool;
    const { subscriptionId } = own;
    /** `operations` operations tagged `tag`, one event each except the first `twoEvents`, which have two. */
    const write = (tag: string, operations: number, twoEvents = 0) =>
      pool.query(
        `WITH e AS (
           INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
           SELECT a.id || ':' || n, $1, a.id, 'operation.succeeded', '{}'::jsonb
             FROM (SELECT i, $4 || '-' || i AS id FROM generate_series(1, $3) i) a
             CROSS JOIN LATERAL generate_series(0, CASE WHEN a.i <= $5 THEN 1 ELSE 0 END) n
            ORDER BY a.i, n
           RETURNING event_id, aggregate_id, seq)
         INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
         SELECT event_id, $2, aggregate_id, seq FROM e`,
        [tenantId, subscriptionId, operations, tag, twoEvents],
      );
    // Yesterday's traffic, all delivered (non-HOT updates: the due index keeps entries for them), then ANALYZE: "nothing is pending".
    await write('old', 20_000);
    await pool.query("UPDATE deliveries SET status = 'delivered', delivered_at = now()");
    await pool.query('ANALYZE deliveries');
    await pool.query('ANALYZE outbox_events');
    // The burst, with the statistics left as they were; the head of it leased by another relay.
    await write('new', BURST, TWO_EVENT_OPERATIONS);
    await pool.query(
      `UPDATE deliveries SET locked_until = now() + interval '1 minute', locked_by = 'relay-other', attempts = 1
        WHERE status = 'pending' AND seq IN (SELECT seq FROM deliveries WHERE status = 'pending' AND event_id LIKE '%:0' ORDER BY seq LIMIT $1)`,
      [LEASED_ELSEWHERE],
    );
  }, 120_000);

  afterAll(() => db?.drop());

  it('walks the due index in order and stops at its limit: no sort, no bitmap scan, a bounded number of buffers', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(CLAIM_PLANNER_SETTINGS);
      const plan = await explainAnalyze(client, CLAIM_DUE_DELIVERIES, claimParameters({ limit: LIMIT, leaseMs: 60_000, relayId: 'relay-test', perSubscription: LIMIT }));
      const all = planNodes(plan);
      const onDeliveries = (n: PlanNode) => n['Relation Name'] === 'deliveries' || (n['Index Name'] ?? '').startsWith('deliveries');
      expect(all.filter((n) => n['Node Type'] === 'Sort')).toEqual([]);
      expect(all.filter((n) => onDeliveries(n) && (n['Node Type'].startsWith('Bitmap') || n['Node Type'] === 'Seq Scan'))).toEqual([]);
      // Measured about 16 buffer visits per claimed row (the walk past the
      // leased head included); the statement this replaced visited 75,821 here.
      expect(planBuffers(plan)).toBeLessThan(LIMIT * 40);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('leases the earliest due deliveries, skipping the leased ones and the later events of an operation', async () => {
    const claimed = await claimDueDeliveries(pool, { limit: LIMIT, leaseMs: 60_000, relayId: 'relay-test' });
    expect(claimed).toHaveLength(LIMIT);
    expect(claimed.every((d) => d.event_id.endsWith(':0') && d.attempts === 1)).toBe(true);
    const { rows } = await pool.query<{ event_id: string; locked_by: string }>(
      "SELECT event_id, locked_by FROM deliveries WHERE status = 'pending' AND event_id LIKE 'new-%:0' AND locked_until > now() ORDER BY seq",
    );
    // The first LEASED_ELSEWHERE stay the other relay's; the next LIMIT are ours.
    expect(rows.slice(0, LEASED_ELSEWHERE).every((r) => r.locked_by === 'relay-other')).toBe(true);
    expect(rows.slice(LEASED_ELSEWHERE).map((r) => r.event_id).sort()).toEqual(claimed.map((d) => d.event_id).sort());
    expect(rows.slice(LEASED_ELSEWHERE).every((r) => r.locked_by === 'relay-test')).toBe(true);
  });
});
