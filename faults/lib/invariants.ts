/**
 * The guarantees every scenario is checked against, counted from the systems
 * of record: Temporal visibility, the offline Gemini server's own call log,
 * PostgreSQL (operations, gemini_attempts, usage_ledger, outbox, deliveries)
 * and the example consumer's inbox.
 */
import type { FaultStack } from './harness';
import { geminiControl } from './harness';
import { BENCH_TENANT } from '../../bench/lib/stack';
import { sleep, until } from '../../bench/lib/stats';

export interface InvariantReport {
  counts: Record<string, number>;
  violations: string[];
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Checks the invariants for the operations behind `keys` (the keys a scenario
 * used). Waits, bounded, for the system to settle first: every accepted
 * operation finished, every event delivered.
 */
export async function checkInvariants(stack: FaultStack, keys: readonly string[], options: { settleTimeoutMs?: number } = {}): Promise<InvariantReport> {
  const db = stack.infra.pool;
  const violations: string[] = [];
  const settle = options.settleTimeoutMs ?? 180_000;
  const rowsOf = async () =>
    (
      await db.query<{ idempotency_key: string; operation_id: string; status: string }>(
        `SELECT idempotency_key, operation_id, status FROM operations
          WHERE tenant_id = $1 AND operation_type = 'generate-content' AND idempotency_key = ANY($2)`,
        [BENCH_TENANT.tenantId, keys],
      )
    ).rows;

  // Every accepted operation finishes.
  let rows = await rowsOf();
  try {
    await until(async () => (rows = await rowsOf()).every((r) => r.status === 'succeeded' || r.status === 'failed'), 'every accepted operation finished', settle, 500);
  } catch {
    // counted below
  }
  const unfinished = rows.filter((r) => r.status !== 'succeeded' && r.status !== 'failed');
  if (unfinished.length > 0) violations.push(`${unfinished.length} accepted operations never finished (e.g. ${unfinished[0]!.idempotency_key}: ${unfinished[0]!.status})`);
  const opIds = rows.map((r) => r.operation_id);
  const succeeded = rows.filter((r) => r.status === 'succeeded').length;
  const failed = rows.filter((r) => r.status === 'failed').length;

  // One workflow per key, by Temporal visibility on the search attribute (eventually consistent: read until stable).
  const runsPerKey = new Map<string, number>();
  let previousTotal = -1;
  for (let attempt = 0; attempt < 10; attempt++) {
    runsPerKey.clear();
    for (const group of chunks(keys, 50)) {
      const query = `OnceflowIdempotencyKey IN (${group.map((k) => `'${k.replace(/'/g, "\\'")}'`).join(', ')}) AND OnceflowTenant = '${BENCH_TENANT.tenantId}'`;
      for await (const execution of stack.temporal.workflow.list({ query })) {
        const key = execution.searchAttributes?.OnceflowIdempotencyKey?.[0] as string | undefined;
        if (key) runsPerKey.set(key, (runsPerKey.get(key) ?? 0) + 1);
      }
    }
    const total = [...runsPerKey.values()].reduce((a, b) => a + b, 0);
    if (total === previousTotal && total >= rows.length) break;
    previousTotal = total;
    await sleep(1000);
  }
  const multiRun = [...runsPerKey.entries()].filter(([, n]) => n > 1);
  const noRun = rows.filter((r) => !runsPerKey.has(r.idempotency_key));
  if (multiRun.length > 0) violations.push(`${multiRun.length} keys have more than one workflow run (e.g. ${multiRun[0]![0]}: ${multiRun[0]![1]})`);
  if (noRun.length > 0) violations.push(`${noRun.length} operations have no workflow in Temporal visibility`);

  // One Gemini call per logical attempt: every paid call the server counted has its attempt row, and one answered call per succeeded operation.
  const { calls } = (await geminiControl(stack, 'calls')) as { calls: { operation: string; outcome: string }[] };
  const paid = calls.filter((c) => c.operation === 'generateContent');
  const answered = paid.filter((c) => c.outcome === 'ok').length;
  const attempts = (await db.query<{ all: number; ok: number }>(
    "SELECT count(*)::int AS all, count(*) FILTER (WHERE outcome = 'succeeded')::int AS ok FROM gemini_attempts WHERE operation_id = ANY($1::uuid[])",
    [opIds],
  )).rows[0]!;
  // An activity attempt that died (worker SIGKILL) leaves no row but a gap in
  // the attempt numbers of its (operation, model): the retry is attempt n+1.
  // A call made by such an attempt is the documented crash window of
  // activities/gemini-generate.ts (Gemini answered, the worker died before the
  // commit): a logical attempt of its own, counted and shown, not hidden.
  const gaps = (await db.query<{ gaps: number }>(
    `SELECT coalesce(sum(max_attempt - rows), 0)::int AS gaps
       FROM (SELECT max(attempt) AS max_attempt, count(*) AS rows FROM gemini_attempts
              WHERE operation_id = ANY($1::uuid[]) GROUP BY operation_id, model) per_model`,
    [opIds],
  )).rows[0]!.gaps;
  const unrecorded = paid.length - attempts.all;
  const paidTwice = Math.max(0, answered - succeeded);
  if (unrecorded < 0 || unrecorded > gaps) {
    violations.push(`Gemini counted ${paid.length} paid calls, ${attempts.all} attempts were recorded and ${gaps} attempts died unrecorded`);
  }
  if (answered < succeeded || paidTwice > unrecorded) violations.push(`Gemini answered ${answered} calls for ${succeeded} succeeded operations (paid twice: ${paidTwice}, calls by attempts that died: ${unrecorded})`);

  // One bill per succeeded operation.
  const ledger = (await db.query<{ n: number; dup: number }>(
    'SELECT count(*)::int AS n, (count(*) - count(DISTINCT operation_id))::int AS dup FROM usage_ledger WHERE operation_id = ANY($1::uuid[])',
    [opIds],
  )).rows[0]!;
  if (ledger.n !== succeeded) violations.push(`${ledger.n} usage_ledger rows for ${succeeded} succeeded operations`);

  // Every event delivered at least once and consumed once.
  const events = (await db.query<{ event_id: string }>('SELECT event_id FROM outbox_events WHERE aggregate_id = ANY($1)', [opIds])).rows.map((r) => r.event_id);
  if (events.length !== succeeded + failed) violations.push(`${events.length} outbox events for ${succeeded + failed} finished operations`);
  const pendingDeliveries = async () =>
    Number((await db.query("SELECT count(*) FROM deliveries WHERE event_id = ANY($1) AND status <> 'delivered'", [events])).rows[0].count);
  try {
    await until(async () => (await pendingDeliveries()) === 0, 'every delivery acknowledged', settle, 500);
  } catch {
    // counted below
  }
  const undelivered = await pendingDeliveries();
  if (undelivered > 0) violations.push(`${undelivered} deliveries not acknowledged`);
  const consumed = (await db.query<{ inbox: number; effects: number }>(
    `SELECT (SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2))::int AS inbox,
            (SELECT count(*) FROM example_consumer_effects WHERE consumer = $1 AND event_id = ANY($2))::int AS effects`,
    [stack.consumerName, events],
  )).rows[0]!;
  if (consumed.inbox !== events.length || consumed.effects !== events.length) violations.push(`${events.length} events, ${consumed.inbox} inbox rows, ${consumed.effects} consumer effects`);
  const wanted = new Set(events);
  const deliveries = stack.consumer.received.filter((r) => wanted.has(r.webhookId));

  return {
    counts: {
      keys: keys.length,
      accepted: rows.length,
      succeeded,
      failed,
      unfinished: unfinished.length,
      'workflow runs': [...runsPerKey.values()].reduce((a, b) => a + b, 0),
      'keys with >1 run': multiRun.length,
      'gemini paid calls': paid.length,
      'gemini attempt rows': attempts.all,
      'gemini answered calls': answered,
      'attempts died unrecorded': gaps,
      'paid twice (worker died between answer and commit)': paidTwice,
      'ledger rows': ledger.n,
      'outbox events': events.length,
      'deliveries received': deliveries.length,
      redeliveries: deliveries.length - new Set(deliveries.map((d) => d.webhookId)).size,
      'consumer effects': consumed.effects,
    },
    violations,
  };
}
