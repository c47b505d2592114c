import type { Pool } from '../../src/db/pool';
import { RECORD_OUTCOMES, recordOutcomesParameters, type Outcome } from '../../src/outbox/outcome-recorder';
import { createOwnDatabaseWithSubscription, type OwnDatabase } from './fixtures/own-database';
import { explainAnalyze, planBuffers, planNodes } from './fixtures/plan';

/**
 * Recording outcomes on a fresh database in the middle of a burst, before
 * autovacuum has analyzed `deliveries` once: the outbox benchmark's first
 * runs, where the successor check (an EXISTS then) walked every later pending
 * row of the subscription for each outcome. Its own database, never analyzed.
 */
describe('recording delivery outcomes with no planner statistics yet', () => {
  let db: OwnDatabase;
  let pool: Pool;
  const DELIVERED = 2_000;
  const PENDING = 6_000;

  beforeAll(async () => {
    const tenantId = 'outcome-plan';
    const own = await createOwnDatabaseWithSubscription('outcome_plan', tenantId);
    db = own;
    pool = own.pool;
    const { subscriptionId } = own;
    await pool.query(
      `WITH e AS (
         INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
         SELECT 'op-' || i || ':succeeded', $1, 'op-' || i, 'operation.succeeded', '{}'::jsonb FROM generate_series(1, $3::int) i ORDER BY i
         RETURNING event_id, aggregate_id, seq)
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq, status)
       SELECT event_id, $2, aggregate_id, seq, CASE WHEN row_number() OVER (ORDER BY seq) <= $4 THEN 'delivered' ELSE 'pending' END FROM e`,
      [tenantId, subscriptionId, DELIVERED + PENDING, DELIVERED],
    );
  }, 120_000);

  afterAll(() => db?.drop());

  it('checks each recorded delivery for a successor with one probe of the order index, not a walk of the subscription', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      // 50 pending deliveries leased to this relay, as a claim leaves them.
      const { rows: leased } = await client.query<{ event_id: string; subscription_id: string }>(
        `UPDATE deliveries SET locked_until = now() + interval '1 minute', locked_by = 'relay-recorder', attempts = 1
          WHERE ctid = ANY (ARRAY(SELECT ctid FROM deliveries WHERE status = 'pending' ORDER BY seq LIMIT 50))
          RETURNING event_id, subscription_id`,
      );
      expect(leased).toHaveLength(50);
      const group = leased.map((delivery) => ({ delivery, verdict: 'delivered', delayMs: 0, error: null }) as unknown as Outcome);
      const plan = await explainAnalyze(client, RECORD_OUTCOMES, recordOutcomesParameters('relay-recorder', group));
      const all = planNodes(plan);
      expect(all.some((n) => n['Index Name'] === 'deliveries_order_idx')).toBe(true);
      expect(all.filter((n) => n['Index Name'] === 'deliveries_subscription_due_idx').map((n) => n['Node Type'])).toEqual([]);
      // Measured about 700 buffers for these 50 outcomes (half of them the
      // join's scan of this small table, which the planner may choose at this
      // size); the EXISTS this replaced visited about 8,500: every later
      // pending row of the subscription, per outcome.
      expect(planBuffers(plan)).toBeLessThan(2_000);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
