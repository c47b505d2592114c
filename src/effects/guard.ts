import type pg from 'pg';
import { isDatabaseUnavailable } from '../db/errors';
import type { Queryable } from '../db/pool';
import { withTransaction } from '../db/transaction';
import type { Logger } from '../observability/logger';
import { CallRefusedError, GuardDatabaseError } from './errors';

/**
 * The side-effect guard: the one way activities record effects in PostgreSQL.
 *
 * - runEffect: an effect inside this database (the finishing phase: result,
 *   bill, outbox event), committed with its effect row or not at all.
 * - guardForeignCall: a call to a system outside it (a paid Gemini call),
 *   made at most once per (operation, step) unless a crash window below opens,
 *   its answer stored with its effect row and reused by every retry.
 *
 * Bookkeeping, not effects: writes that are idempotent by their own key or
 * WHERE clause, publish nothing, bill nothing, and whose loss changes no money.
 * The attempt rows a `failed` hook writes after a failed call (the guard runs
 * the hook and only logs its failure), and pollInteraction's record of what a
 * free read of an interaction showed (the ledger's completed status, the
 * interaction's token counts), which it writes directly.
 */

/** Identifies one side effect: a step of one operation. */
export interface EffectKey {
  /** Our reservation id; a new run under the same key gets a new one. */
  operationId: string;
  /** Stable step name within the operation, e.g. `gemini:gemini-2.5-flash` or `complete`. */
  step: string;
  /** For operators reading the table. */
  workflowId: string;
}

/** The stored result of a step, or undefined if it has not completed. */
export async function findEffect<T>(db: Queryable, key: EffectKey): Promise<T | undefined> {
  const { rows } = await db.query<{ result: T }>(
    'SELECT result FROM effects WHERE operation_id = $1 AND step = $2',
    [key.operationId, key.step],
  );
  return rows[0]?.result;
}

/**
 * Runs `effect` once per (operation, step).
 *
 * 1. Look up (operation, step); if done, return the stored result: nothing runs again.
 * 2. Otherwise open a transaction, take a transaction-scoped advisory lock on the
 *    step (a second worker running the same step concurrently waits here, then
 *    sees the first one's row), check again, run `effect` on the same connection,
 *    and insert the effect row in the same transaction.
 *
 * Crash windows: if the process dies anywhere before COMMIT, the transaction
 * rolls back and every database write of `effect` with it; the retried activity
 * runs it again from scratch. After COMMIT, a retry returns the stored result.
 */
export async function runEffect<T>(
  pool: pg.Pool,
  key: EffectKey,
  effect: (tx: pg.PoolClient) => Promise<T>,
): Promise<{ result: T; replayed: boolean }> {
  const stored = await findEffect<T>(pool, key);
  if (stored !== undefined) return { result: stored, replayed: true };
  return withTransaction(pool, (tx) => effectInTransaction(tx, key, effect));
}

async function effectInTransaction<T>(tx: pg.PoolClient, key: EffectKey, effect: (tx: pg.PoolClient) => Promise<T>): Promise<{ result: T; replayed: boolean }> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${key.operationId}:${key.step}`]);
  const again = await findEffect<T>(tx, key);
  if (again !== undefined) return { result: again, replayed: true };
  const result = await effect(tx);
  await tx.query(
    'INSERT INTO effects (operation_id, step, workflow_id, result) VALUES ($1, $2, $3, $4)',
    [key.operationId, key.step, key.workflowId, JSON.stringify(result ?? null)],
  );
  return { result, replayed: false };
}

/** One call to a system outside this database, in the three phases the guard runs. */
export interface ForeignCall<T> {
  /**
   * Optional. Runs before the call in the transaction that found no stored
   * answer for the step, with the step's lock held (so two attempts of one step
   * cannot both admit it) and commits with it: the place to reserve what the
   * call may cost. Throwing CallRefusedError refuses the call: nothing is
   * called, nothing of the transaction is kept, and the error comes out as it was.
   */
  admit?: (tx: pg.PoolClient) => Promise<void>;
  /**
   * Optional. Runs before the call on a connection that holds a session lock
   * on the step until the answer is stored, so a concurrent attempt of the same
   * step waits and then reuses the answer instead of paying for a second call.
   * Its writes commit before the call (e.g. a ledger row counting a call that
   * may be in flight). Without it, no connection is held during the call and
   * concurrent attempts are not serialised.
   */
  reserve?: (db: pg.PoolClient) => Promise<void>;
  /** The foreign call: made at most once per guardForeignCall. Its error is rethrown unchanged. */
  call: () => Promise<T>;
  /** Rows derived from the answer, written in the transaction that stores it. */
  record?: (tx: pg.PoolClient, answer: T) => Promise<void>;
  /** Bookkeeping of a failed call (see the module comment); its own failure is logged, never thrown. */
  failed?: (db: Queryable, error: unknown) => Promise<void>;
}

export interface GuardForeignCallOptions {
  /** How long storing a paid answer is retried while PostgreSQL is unreachable. Default 0 (one try). */
  storeRetryMs?: number;
  logger?: Logger;
}

export type GuardedCall<T> =
  /** Stored by an earlier attempt: nothing was called. */
  | { kind: 'reused'; result: T }
  /** Called, and the answer stored now. */
  | { kind: 'called'; result: T }
  /** Called, but a concurrent attempt stored its answer first: `result` is that answer (every attempt returns the same one); `ownAnswer` is what this call paid for. */
  | { kind: 'raced'; result: T; ownAnswer: T };

/**
 * A foreign call guarded by (operation, step): reuse a stored answer, else
 * (reserve,) call, and store the answer with its effect row and `record`'s rows
 * in one transaction. PostgreSQL failures come out as GuardDatabaseError
 * (before the call, or while storing); the call's own error as it was thrown.
 *
 * Crash windows that can still cost a second call, and why they stay open:
 * the foreign APIs this guards (Gemini generateContent, interactions.create)
 * take no idempotency key and offer no lookup of an earlier answer, so once a
 * call has left, nothing we can send later recognises it.
 * - The answer is lost on the way back (dropped connection, our timeout): the
 *   retry calls again. Nothing on our side can see that the call was served.
 * - The worker dies between the answer and the COMMIT that stores it: one
 *   short transaction, or `storeRetryMs` while PostgreSQL is away.
 * - PostgreSQL stays unreachable longer than `storeRetryMs`: the attempt fails
 *   and its retry calls again. Waiting longer would outlive the attempt's
 *   start-to-close, and Temporal would start the retry anyway.
 * - Without `reserve`, an attempt that Temporal gave up on (missed heartbeats)
 *   while its call was still running races its retry: both calls are paid, the
 *   first answer stored wins (`raced`).
 */
export async function guardForeignCall<T>(
  pool: pg.Pool,
  key: EffectKey,
  foreign: ForeignCall<T>,
  options: GuardForeignCallOptions = {},
): Promise<GuardedCall<T>> {
  const stored = await before(key, () => findEffect<T>(pool, key));
  if (stored !== undefined) return { kind: 'reused', result: stored };
  if (!foreign.reserve) {
    if (foreign.admit) {
      const admit = foreign.admit;
      const storedMeanwhile = await before(key, () => withTransaction(pool, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${key.operationId}:${key.step}`]);
        const found = await findEffect<T>(tx, key);
        if (found === undefined) await admit(tx);
        return found;
      }));
      if (storedMeanwhile !== undefined) return { kind: 'reused', result: storedMeanwhile };
    }
    const answer = await callOnce(pool, key, foreign, options);
    return storeAnswer(pool, undefined, key, foreign, answer, options);
  }
  const reserve = foreign.reserve;
  const client = await before(key, () => pool.connect());
  const lockKey = `${key.operationId}:${key.step}`;
  let broken = false;
  // PostgreSQL ending this connection while we hold it through the call (a
  // restart) is emitted as 'error' on the client; unheard, it would crash the
  // worker with the paid answer in hand. The store below then uses a new connection.
  const onConnectionError = (error: Error) => {
    broken = true;
    options.logger?.warn({ step: key.step, correlationId: key.operationId, err: error.message }, 'the connection holding the step lost PostgreSQL');
  };
  client.on('error', onConnectionError);
  try {
    // Session-level, so a worker that dies holding it frees it with its connection.
    await before(key, () => client.query('SELECT pg_advisory_lock(hashtextextended($1, 1))', [lockKey]));
    const storedMeanwhile = await before(key, () => findEffect<T>(client, key));
    if (storedMeanwhile !== undefined) return { kind: 'reused', result: storedMeanwhile };
    const admit = foreign.admit;
    if (admit) await before(key, () => inTransaction(client, admit));
    await before(key, () => reserve(client));
    const answer = await callOnce(client, key, foreign, options);
    return await storeAnswer(pool, client, key, foreign, answer, options);
  } finally {
    if (!broken) {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 1))', [lockKey]).catch(() => {
        broken = true; // the connection is gone, and its lock with it
      });
    }
    client.off('error', onConnectionError);
    client.release(broken);
  }
}

async function before<R>(key: EffectKey, work: () => Promise<R>): Promise<R> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CallRefusedError) throw error;
    throw new GuardDatabaseError(key, 'before', { cause: error });
  }
}

async function callOnce<T>(db: Queryable, key: EffectKey, foreign: ForeignCall<T>, options: GuardForeignCallOptions): Promise<T> {
  try {
    return await foreign.call();
  } catch (error) {
    if (foreign.failed) {
      await foreign.failed(db, error).catch((bookkeeping: unknown) =>
        options.logger?.warn({ step: key.step, correlationId: key.operationId, err: (bookkeeping as Error).message }, 'could not record a failed call; its outcome stands'));
    }
    throw error;
  }
}

/**
 * Stores a paid answer. While PostgreSQL is unreachable it tries again, for up
 * to `storeRetryMs`: every try that succeeds in time saves a second paid call.
 * The first try runs on the reserving connection (its session lock still held),
 * later ones on fresh connections (a broken one has lost the lock anyway).
 */
async function storeAnswer<T>(
  pool: pg.Pool,
  reserved: pg.PoolClient | undefined,
  key: EffectKey,
  foreign: ForeignCall<T>,
  answer: T,
  options: GuardForeignCallOptions,
): Promise<GuardedCall<T>> {
  const deadlineMs = Date.now() + (options.storeRetryMs ?? 0);
  const effect = async (tx: pg.PoolClient) => {
    await foreign.record?.(tx, answer);
    return answer;
  };
  for (let tries = 1; ; tries++) {
    try {
      const { result, replayed } = tries === 1 && reserved
        ? await inTransaction(reserved, (tx) => effectInTransaction(tx, key, effect))
        : await runEffect(pool, key, effect);
      return replayed ? { kind: 'raced', result, ownAnswer: answer } : { kind: 'called', result };
    } catch (error) {
      const delayMs = Math.min(2_000, 100 * 2 ** (tries - 1));
      if (!isTransientDatabaseError(error) || Date.now() + delayMs > deadlineMs) {
        throw new GuardDatabaseError(key, 'storing', { cause: error });
      }
      options.logger?.warn({ step: key.step, correlationId: key.operationId, tries, err: (error as Error).message }, 'could not store a paid answer yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** BEGIN … COMMIT on a connection the caller keeps (withTransaction takes its own from the pool). */
async function inTransaction<R>(client: pg.PoolClient, work: (tx: pg.PoolClient) => Promise<R>): Promise<R> {
  await client.query('BEGIN');
  try {
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * PostgreSQL away or the connection lost (no SQLSTATE at all: pg's own
 * connection errors, the pool's connect timeout), or a conflict that a new
 * transaction resolves. A SQL error proper (constraint, disk full) is not retried.
 */
function isTransientDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof TypeError || error instanceof RangeError) return false; // a bug, not the database
  const code = (error as { code?: unknown }).code;
  if (isDatabaseUnavailable(error)) return true;
  if (typeof code !== 'string') return true;
  return code === '40001' || code === '40P01' || code === '53300';
}
