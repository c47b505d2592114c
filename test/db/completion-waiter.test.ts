/**
 * The `Prefer: wait` waiter against a real PostgreSQL LISTEN connection: a
 * finish is learned from its NOTIFY, never lost between a read and the sleep
 * after it, and a wait watched before its start reads the row only when told.
 */
import { randomUUID } from 'node:crypto';
import { CompletionWaiter } from '../../src/operations/completion-waiter';
import { OPERATION_FINISHED_CHANNEL } from '../../src/operations/status';
import { createLogger } from '../../src/observability/logger';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { until } from '../helpers/until';

const pool = createTestPool();
// Polls far apart: a wait that ends within a test's time ended on its NOTIFY.
const waiter = new CompletionWaiter({ connectionString: testInfra().databaseUrl, logger: createLogger({ service: 'test-waiter', level: 'silent' }), pollIntervalMs: 60_000 });
const wait = { tenantId: 'waiter-test' };

afterAll(async () => {
  await waiter.close();
  await pool.end();
});

const notifyFinished = (operationId: string) => pool.query('SELECT pg_notify($1, $2)', [OPERATION_FINISHED_CHANNEL, operationId]);

/** A watch registered once LISTEN is live (the first watch of a process starts it). */
async function listeningWatch(operationId: string) {
  for (;;) {
    const watch = waiter.watch(operationId);
    if (watch.listeningSinceCreated) return watch;
    watch.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a wait watched while LISTEN was live does not read the row before the NOTIFY, and ends on it', async () => {
  const operationId = randomUUID();
  const watch = await listeningWatch(operationId);
  let reads = 0;
  let finished = false;
  const waiting = waiter.waitFor(operationId, 30_000, async () => {
    reads += 1;
    return finished ? 'done' : undefined;
  }, { ...wait, watch });
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(reads).toBe(0);
  finished = true;
  await notifyFinished(operationId);
  await expect(waiting).resolves.toBe('done');
  expect(reads).toBe(1);
  watch.close();
});

test('a NOTIFY that arrives while the row is being read wakes the next sleep at once instead of being lost', async () => {
  const operationId = randomUUID();
  await listeningWatch(operationId).then((w) => w.close());
  let releaseFirstRead!: () => void;
  const firstReadHeld = new Promise<void>((resolve) => (releaseFirstRead = resolve));
  let reads = 0;
  let finished = false;
  const waiting = waiter.waitFor(operationId, 30_000, async () => {
    reads += 1;
    // The first read saw the row before the finish committed; the NOTIFY comes while it is on its way back.
    if (reads === 1) {
      await firstReadHeld;
      return undefined;
    }
    return finished ? 'done' : undefined;
  }, wait);
  await until(() => reads === 1, 'the first read started');
  finished = true;
  await notifyFinished(operationId);
  // Give the notification time to arrive while the first read is still held.
  await new Promise((resolve) => setTimeout(resolve, 200));
  releaseFirstRead();
  // With the old per-sleep registration this waited for the next poll (60 s).
  await expect(waiting).resolves.toBe('done');
  expect(reads).toBe(2);
}, 10_000);

test('a watch registered before LISTEN was live reads the row up front: a finish before listening is still found', async () => {
  const fresh = new CompletionWaiter({ connectionString: testInfra().databaseUrl, logger: createLogger({ service: 'test-waiter', level: 'silent' }), pollIntervalMs: 60_000 });
  try {
    const operationId = randomUUID();
    const watch = fresh.watch(operationId);
    expect(watch.listeningSinceCreated).toBe(false);
    let reads = 0;
    const alreadyFinished = async () => {
      reads += 1;
      return 'already finished';
    };
    await expect(fresh.waitFor(operationId, 30_000, alreadyFinished, { ...wait, watch })).resolves.toBe('already finished');
    expect(reads).toBe(1);
    watch.close();
  } finally {
    await fresh.close();
  }
});
