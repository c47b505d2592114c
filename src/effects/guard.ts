import type pg from 'pg';
import { isDatabaseUnavailable } from '../db/errors';
import type { Queryable } from '../db/pool';
import { fullJitterBackoffMs } from '../common/backoff';
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

/**
 * Where a claim hook works: `db` for single statements, each committed on its
 * own (on the held connection when the step is held), and `transaction` for
 * writes that must commit together or not at all.
 */
export interface ClaimScope {
  db: Queryable;
  transaction: <V>(work: (tx: pg.PoolClient) => Promise<V>) => Promise<V>;
}

/** The stored result of a step, or undefined if it has not completed. */
export async function findEffect<T>(db: Queryable, key: EffectKey): Promise<T | undefined> {
  const { rows } = await db.query<{ result: T }>({
    // Named statements here and on the rest of an operation's path (attempts,
    // spend, bill, outbox): PostgreSQL parses and plans each once per
    // connection instead of in every operation; their columns are explicit,
    // so a later ADD COLUMN does not invalidate them (see the operations
    // repository's run() for what a pooler needs).
    name: 'onceflow-effect-find',
    text: 'SELECT result FROM effects WHERE operation_id = $1 AND step = $2',
    values: [key.operationId, key.step],
  });
  return rows[0]?.result;
}

/**
 * Inserts the step's effect row on `tx`, or finds it there: one statement
 * that is both the check and the lock. A concurrent transaction that inserted
 * the same (operation, step) and has not committed makes this INSERT wait for
 * it; if it commits, this one conflicts and inserts nothing; if it rolls back,
 * this one inserts. So no advisory lock and no read before it are needed.
 * True when this transaction now owns the step.
 */
async function insertEffect(tx: Queryable, key: EffectKey, result: unknown): Promise<boolean> {
  const { rowCount } = await tx.query({
    name: 'onceflow-effect-insert',
    text: 'INSERT INTO effects (operation_id, step, workflow_id, result) VALUES ($1, $2, $3, $4) ON CONFLICT (operation_id, step) DO NOTHING',
    values: [key.operationId, key.step, key.workflowId, JSON.stringify(result ?? null)],
  });
  return (rowCount ?? 0) > 0;
}

/** An effect inside this database whose result is known before it runs. */
export interface LocalEffect<T> {
  /** What every run of the step returns, stored in the effect row. */
  result: T;
  /** The effect's writes, on the transaction that inserts the effect row. */
  apply: (tx: pg.PoolClient) => Promise<void>;
}

/**
 * Runs an effect once per (operation, step), in ONE transaction of
 * 2 + `apply`'s statements: BEGIN, the effect row's INSERT (insertEffect: the
 * check and the lock), `apply`, COMMIT. A step already done (or done by a
 * concurrent run while this one waited on the INSERT) reads its stored result
 * instead and applies nothing.
 *
 * Crash windows: if the process dies anywhere before COMMIT, the transaction
 * rolls back, the effect row with every write of `apply`, and the retried
 * activity runs it all again. After COMMIT, a retry returns the stored result.
 */
export async function runEffect<T>(pool: pg.Pool, key: EffectKey, effect: LocalEffect<T>): Promise<{ result: T; replayed: boolean }> {
  return withTransaction(pool, async (tx) => {
    if (!(await insertEffect(tx, key, effect.result))) return { result: (await findEffect<T>(tx, key)) as T, replayed: true };
    await effect.apply(tx);
    return { result: effect.result, replayed: false };
  });
}

/** One call to a system outside this database, in the three phases the guard runs. */
export interface ForeignCall<T, R> {
  /**
   * Optional. Runs before the call, after the guard found no stored answer
   * for the step; whatever it writes commits before the call. The place to
   * reserve what the call may cost, count it in a ledger, and read what the
   * attempt needs to know. It chooses its own transactions (ClaimScope): a
   * call with nothing to reserve should not pay for BEGIN and COMMIT. Throwing
   * CallRefusedError refuses the call: nothing is called, nothing of the
   * transaction it was thrown in is kept, and the error comes out as it was.
   */
  claim?: (scope: ClaimScope) => Promise<void>;
  /**
   * Hold the step through the call: a session lock on its own connection from
   * before the claim until the answer is stored, so a concurrent attempt of the
   * same step waits and then reuses the answer instead of paying for a second
   * call. Default false: no connection is held during the call and concurrent
   * attempts are not serialised (see `raced`).
   */
  holdStep?: boolean;
  /** The foreign call: made at most once per guardForeignCall. Its error is rethrown unchanged. */
  call: () => Promise<T>;
  /** Rows derived from the answer, written in the transaction that stores it; what it returns comes back as `recorded`. */
  record?: (tx: pg.PoolClient, answer: T) => Promise<R>;
  /** Bookkeeping of a failed call (see the module comment); its own failure is logged, never thrown. */
  failed?: (db: Queryable, error: unknown) => Promise<void>;
}

export interface GuardForeignCallOptions {
  /** How long storing a paid answer is retried while PostgreSQL is unreachable. Default 0 (one try). */
  storeRetryMs?: number;
  logger?: Logger;
}

export type GuardedCall<T, R = void> =
  /** Stored by an earlier attempt: nothing was called. */
  | { kind: 'reused'; result: T }
  /** Called, and the answer stored now with what `record` wrote and returned. */
  | { kind: 'called'; result: T; recorded: R }
  /** Called, but a concurrent attempt stored its answer first: `result` is that answer (every attempt returns the same one); `ownAnswer` is what this call paid for. */
  | { kind: 'raced'; result: T; ownAnswer: T };

/**
 * A foreign call guarded by (operation, step):
 *
 * 1. claim: the stored answer if any (then nothing is called), else `claim`'s
 *    reads and reservations, committed. The lookup needs no transaction: no
 *    lock taken in one would keep a concurrent store out (see below);
 * 2. the call;
 * 3. store: BEGIN, the effect row holding the answer (insertEffect), `record`'s
 *    rows, COMMIT; retried for `storeRetryMs` while PostgreSQL is away.
 *
 * PostgreSQL failures come out as GuardDatabaseError (before the call, or
 * while storing); the call's own error as it was thrown.
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
 * - Without `holdStep`, an attempt that Temporal gave up on (missed
 *   heartbeats) while its call was still running races its retry: both calls
 *   are paid, the first answer stored wins (`raced`). The claim takes no lock
 *   for that reason: one that waited for a concurrent store would close only
 *   the milliseconds of that store out of a window as long as the call.
 */
export async function guardForeignCall<T, R = void>(
  pool: pg.Pool,
  key: EffectKey,
  foreign: ForeignCall<T, R>,
  options: GuardForeignCallOptions = {},
): Promise<GuardedCall<T, R>> {
  if (!foreign.holdStep) {
    const stored = await before(key, () => claim(pool, (work) => withTransaction(pool, work), key, foreign));
    if (stored !== undefined) return { kind: 'reused', result: stored };
    const answer = await callOnce(pool, key, foreign, options);
    return storeAnswer(pool, undefined, key, foreign, answer, options);
  }
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
    const stored = await before(key, () => claim(client, (work) => inTransaction(client, work), key, foreign));
    if (stored !== undefined) return { kind: 'reused', result: stored };
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

/** The claim: the stored answer, or else `claim`'s reads and reservations. */
async function claim<T, R>(db: Queryable, transaction: ClaimScope['transaction'], key: EffectKey, foreign: ForeignCall<T, R>): Promise<T | undefined> {
  const stored = await findEffect<T>(db, key);
  if (stored === undefined) await foreign.claim?.({ db, transaction });
  return stored;
}

async function before<V>(key: EffectKey, work: () => Promise<V>): Promise<V> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CallRefusedError) throw error;
    throw new GuardDatabaseError(key, 'before', { cause: error });
  }
}

async function callOnce<T, R>(db: Queryable, key: EffectKey, foreign: ForeignCall<T, R>, options: GuardForeignCallOptions): Promise<T> {
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
 * to `storeRetryMs` (full-jitter delays, src/common/backoff.ts): every try that
 * succeeds in time saves a second paid call. The first try runs on the held
 * connection (its session lock still held), later ones on fresh connections
 * (a broken one has lost the lock anyway).
 */
async function storeAnswer<T, R>(
  pool: pg.Pool,
  held: pg.PoolClient | undefined,
  key: EffectKey,
  foreign: ForeignCall<T, R>,
  answer: T,
  options: GuardForeignCallOptions,
): Promise<GuardedCall<T, R>> {
  const deadlineMs = Date.now() + (options.storeRetryMs ?? 0);
  const store = async (tx: pg.PoolClient): Promise<GuardedCall<T, R>> => {
    if (!(await insertEffect(tx, key, answer))) return { kind: 'raced', result: (await findEffect<T>(tx, key)) as T, ownAnswer: answer };
    return { kind: 'called', result: answer, recorded: (await foreign.record?.(tx, answer)) as R };
  };
  for (let tries = 1; ; tries++) {
    try {
      return tries === 1 && held ? await inTransaction(held, store) : await withTransaction(pool, store);
    } catch (error) {
      const delayMs = 50 + fullJitterBackoffMs({ retryIndex: tries - 1, baseMs: 200, capMs: 2_000 });
      if (!isTransientDatabaseError(error) || Date.now() + delayMs > deadlineMs) {
        throw new GuardDatabaseError(key, 'storing', { cause: error });
      }
      options.logger?.warn({ step: key.step, correlationId: key.operationId, tries, err: (error as Error).message }, 'could not store a paid answer yet; retrying');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** BEGIN … COMMIT on a connection the caller keeps (withTransaction takes its own from the pool). */
async function inTransaction<V>(client: pg.PoolClient, work: (tx: pg.PoolClient) => Promise<V>): Promise<V> {
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
