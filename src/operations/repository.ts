/**
 * The operation aggregate's repository: the ONLY code that issues SQL on the
 * `operations` table. The facade, the finishing activity (inside its own
 * transaction), the reconciler, the purge, the metrics and the CLI call it.
 */
import type pg from 'pg';
import type { OperationError } from '../../workflows/operation-outcome';
import type { Queryable } from '../db/pool';
import { IdempotencyStoreError } from '../idempotency/errors';
import { CURRENT_FINGERPRINT_VERSION } from '../idempotency/fingerprint';
import { finalStatuses, OPERATION_FINISHED_CHANNEL, OperationStatus } from './status';

/** Where a key lives: idempotency is scoped per tenant and operation type. */
export interface KeyScope {
  tenantId: string;
  operationType: string;
  idempotencyKey: string;
}

/**
 * An operation as the repeat path reads it: everything but the request body,
 * which can be up to the body limit (1 MiB by default) and which a replay, a
 * 409 or a waiter never needs. Only a record with its input can be started
 * (or compared field by field, for the 422's `differences`).
 */
export interface OperationState extends KeyScope {
  operationId: string;
  fingerprint: string;
  /** The fingerprint algorithm the key was reserved with (src/idempotency/fingerprint.ts). */
  fingerprintVersion: number;
  workflowId: string;
  runId: string | null;
  /** Run of the operation this key was bound to before it expired or was released. */
  previousRunId: string | null;
  status: OperationStatus;
  result: unknown;
  error: OperationError | null;
  /** Status stored by rows finished before the problem table (src/http/problems.ts) decided it. */
  errorStatus: number | null;
  released: boolean;
  firstSeenMs: number;
  createdAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
  expiresAt: Date;
}

/** An operation with the validated request body it runs with. */
export interface OperationRecord extends OperationState {
  input: unknown;
}

export interface Reservation extends KeyScope {
  operationId: string;
  fingerprint: string;
  /** Default CURRENT_FINGERPRINT_VERSION. */
  fingerprintVersion?: number;
  workflowId: string;
  input: unknown;
  /** The request's arrival, from the injected clock. */
  nowMs: number;
  expiresAtMs: number;
}

/** How an operation ends, as the finishing phase writes it. */
export interface Completion {
  operationId: string;
  status: 'succeeded' | 'failed' | 'canceled';
  result: unknown;
  error: OperationError | null;
  released: boolean;
}

export interface ListFilter {
  tenantId: string;
  operationType?: string;
  /** `running` also matches `reserved` (what clients see as running). */
  status?: OperationStatus;
  createdAfter?: Date;
  createdBefore?: Date;
  /** Rows after this position (exclusive), newest first; from a previous page's `next`. */
  after?: ListPosition;
  /** Only rows not expired at this epoch ms (expired ones wait for the purge but are gone to the caller). */
  liveAtMs?: number;
  limit: number;
}

/** A row's place in the newest-first order: microseconds since the epoch (exact, unlike a Date) and its id. */
export interface ListPosition {
  createdAtMicros: string;
  operationId: string;
}

/** An operation as the operator CLI shows it: the record and the guarded steps already done. */
export interface OperatorView extends OperationRecord {
  /** Guarded side effects already recorded for this operation (`effects.step`), oldest first. */
  steps: string[];
}

export interface OperatorFilter {
  tenantId?: string;
  operationType?: string;
  status?: OperationStatus;
  idempotencyKey?: string;
  /** Exclusive bounds on the creation time. */
  createdAfter?: Date;
  createdBefore?: Date;
  /** Default 50. */
  limit?: number;
}

/** The operation repository; PostgresOperationsRepository is the implementation. */
export interface OperationsRepository {
  /** One primary-key read, without the input: the fast path for repeats. */
  find(scope: KeyScope): Promise<OperationState | undefined>;
  /** By id, without the input: what a waiter re-reads (never the request body). */
  findStateById(operationId: string): Promise<OperationState | undefined>;
  /** By id, with the input: to start the workflow, or to name the differences of a 422. */
  findById(operationId: string): Promise<OperationRecord | undefined>;
  /**
   * Takes the key in one statement. `reserved` is true when this call took it
   * (new key, expired key, or a failure that released it); otherwise `record`
   * is the existing operation.
   */
  reserve(reservation: Reservation): Promise<{ record: OperationRecord; reserved: true } | { record: OperationState; reserved: false }>;
  /** Records the run once the workflow start succeeded; never moves a finished row back. */
  markStarted(operationId: string, runId: string): Promise<void>;
  /** Rows whose workflow start was never confirmed, reserved before `olderThanMs`. */
  findUnstarted(options: { olderThanMs: number; limit: number }): Promise<OperationState[]>;
  /** Deletes rows expired at `nowMs` that are final; returns how many. */
  purgeExpired(options: { nowMs: number; limit: number }): Promise<number>;
}

const STATE_COLUMNS = `tenant_id, operation_type, idempotency_key, operation_id, fingerprint, fingerprint_version, workflow_id, run_id, previous_run_id, status,
  result, error, error_status, released, first_seen_ms, created_at, updated_at, completed_at, expires_at`;
const COLUMNS = `${STATE_COLUMNS}, input`;
const FINAL = `('${finalStatuses.join("', '")}')`;

interface StateRow {
  tenant_id: string; operation_type: string; idempotency_key: string; operation_id: string; fingerprint: string; fingerprint_version: number;
  workflow_id: string; run_id: string | null; previous_run_id: string | null; status: OperationStatus; result: unknown;
  error: OperationError | null; error_status: number | null; released: boolean; first_seen_ms: number | string;
  created_at: Date; updated_at: Date; completed_at: Date | null; expires_at: Date;
}
interface Row extends StateRow {
  input: unknown;
}

function toRecord(row: Row): OperationRecord {
  return { ...toState(row), input: row.input };
}

function toState(row: StateRow): OperationState {
  return {
    tenantId: row.tenant_id,
    operationType: row.operation_type,
    idempotencyKey: row.idempotency_key,
    operationId: row.operation_id,
    fingerprint: row.fingerprint,
    fingerprintVersion: row.fingerprint_version,
    workflowId: row.workflow_id,
    runId: row.run_id,
    previousRunId: row.previous_run_id,
    status: row.status,
    result: row.result,
    error: row.error,
    errorStatus: row.error_status,
    released: row.released,
    firstSeenMs: Number(row.first_seen_ms),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    expiresAt: row.expires_at,
  };
}

function statusesMatching(status: OperationStatus): OperationStatus[] {
  return status === OperationStatus.Running ? [OperationStatus.Reserved, OperationStatus.Running] : [status];
}

export class PostgresOperationsRepository implements OperationsRepository {
  constructor(private readonly db: Queryable) {}

  /**
   * Each statement is a named prepared statement (one name per operation):
   * PostgreSQL parses and plans it once per connection instead of on every
   * request, which matters on the repeat path. Behind a pooler in transaction
   * mode this needs prepared-statement support (PgBouncer ≥ 1.21,
   * max_prepared_statements > 0).
   */
  private async run<T extends pg.QueryResultRow>(operation: string, sql: string, params: unknown[]): Promise<pg.QueryResult<T>> {
    try {
      return await this.db.query<T>({ name: `onceflow-store-${operation}`, text: sql, values: params });
    } catch (cause) {
      throw new IdempotencyStoreError(operation, { cause });
    }
  }

  async find(scope: KeyScope): Promise<OperationState | undefined> {
    const { rows } = await this.run<StateRow>(
      'find',
      `SELECT ${STATE_COLUMNS} FROM operations WHERE tenant_id = $1 AND operation_type = $2 AND idempotency_key = $3`,
      [scope.tenantId, scope.operationType, scope.idempotencyKey],
    );
    return rows[0] ? toState(rows[0]) : undefined;
  }

  async findStateById(operationId: string): Promise<OperationState | undefined> {
    const { rows } = await this.run<StateRow>('findStateById', `SELECT ${STATE_COLUMNS} FROM operations WHERE operation_id = $1`, [operationId]);
    return rows[0] ? toState(rows[0]) : undefined;
  }

  async findById(operationId: string): Promise<OperationRecord | undefined> {
    const { rows } = await this.run<Row>('findById', `SELECT ${COLUMNS} FROM operations WHERE operation_id = $1`, [operationId]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async reserve(r: Reservation): Promise<{ record: OperationRecord; reserved: true } | { record: OperationState; reserved: false }> {
    // A reservation's times come from the request's clock (not PostgreSQL's
    // now()), so the facade's stale-reservation check compares one clock.
    // One statement decides: a concurrent twin blocks on the primary key until
    // this commits, then takes the DO UPDATE branch, whose WHERE is false for a
    // live row, so it gets no row back and reads the winner below.
    const { rows } = await this.run<StateRow>(
      'reserve',
      `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, fingerprint_version, workflow_id,
                               status, input, first_seen_ms, created_at, updated_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $10, $6, 'reserved', $7, $8::bigint, to_timestamp($8::bigint / 1000.0), to_timestamp($8::bigint / 1000.0), to_timestamp($9::bigint / 1000.0))
       ON CONFLICT (tenant_id, operation_type, idempotency_key) DO UPDATE
          SET operation_id = EXCLUDED.operation_id, fingerprint = EXCLUDED.fingerprint, fingerprint_version = EXCLUDED.fingerprint_version,
              previous_run_id = operations.run_id, run_id = NULL,
              status = 'reserved', input = EXCLUDED.input, result = NULL, error = NULL, error_status = NULL,
              released = false, first_seen_ms = EXCLUDED.first_seen_ms, created_at = EXCLUDED.created_at,
              updated_at = EXCLUDED.updated_at, completed_at = NULL, expires_at = EXCLUDED.expires_at
        WHERE operations.expires_at <= to_timestamp($8::bigint / 1000.0)
           OR (operations.status = 'failed' AND operations.released)
       RETURNING ${STATE_COLUMNS}`,
      [r.tenantId, r.operationType, r.idempotencyKey, r.operationId, r.fingerprint, r.workflowId,
        JSON.stringify(r.input), r.nowMs, r.expiresAtMs, r.fingerprintVersion ?? CURRENT_FINGERPRINT_VERSION],
    );
    // The input is the one just written: no need to have PostgreSQL send it back.
    if (rows[0]) return { record: { ...toState(rows[0]), input: r.input }, reserved: true };
    const existing = await this.find(r);
    if (!existing) {
      // Purged between the two statements: the key is free again.
      return this.reserve(r);
    }
    return { record: existing, reserved: false };
  }

  async markStarted(operationId: string, runId: string): Promise<void> {
    // A fast workflow may already have finished the row; only `reserved` moves to `running`.
    // This one write does not wait for the WAL flush (synchronous_commit off for
    // its own transaction only; about 2 ms per start on a VM disk): if a
    // PostgreSQL crash loses it, the row is still `reserved`, and the next
    // request with the key or the reconciler attaches to the run (USE_EXISTING)
    // and records it again. The reservation itself stays fully durable.
    await this.run(
      'markStarted',
      `WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))
       UPDATE operations
          SET run_id = COALESCE(run_id, $2),
              status = CASE WHEN status = 'reserved' THEN 'running' ELSE status END,
              updated_at = now()
         FROM relaxed
        WHERE operation_id = $1 AND (run_id IS NULL OR status = 'reserved')`,
      [operationId, runId],
    );
  }

  /**
   * Writes the outcome on the caller's transaction (the finishing phase's, so
   * the row, the bill and the event commit together), and NOTIFYs waiters at
   * its COMMIT. Undefined when the row is gone: the key expired and was purged
   * or reserved again while the run finished.
   */
  async complete(tx: Queryable, completion: Completion): Promise<{ createdAt: Date; completedAt: Date } | undefined> {
    // On the caller's transaction, errors pass through unwrapped: the
    // finishing phase's retry decision reads their SQLSTATE.
    // One statement: the update and the NOTIFY (sent at COMMIT, always, even
    // for a row that is gone: nobody waits on it then, and it costs nothing).
    const { rows } = await tx.query<{ created_at: Date | null; completed_at: Date | null }>({
      name: 'onceflow-store-complete-notify',
      text: `WITH done AS (
               UPDATE operations
                  SET status = $2, result = $3, error = $4, error_status = NULL, released = $5,
                      completed_at = now(), updated_at = now()
                WHERE operation_id = $1
                RETURNING created_at, completed_at)
             SELECT done.created_at, done.completed_at, pg_notify($6, $7)
               FROM (VALUES (1)) AS one LEFT JOIN done ON true`,
      values: [
        completion.operationId,
        completion.status,
        completion.status === 'succeeded' ? JSON.stringify(completion.result ?? null) : null,
        completion.error ? JSON.stringify(completion.error) : null,
        completion.released,
        OPERATION_FINISHED_CHANNEL,
        completion.operationId,
      ],
    });
    return rows[0]?.created_at && rows[0].completed_at ? { createdAt: rows[0].created_at, completedAt: rows[0].completed_at } : undefined;
  }

  async findUnstarted(options: { olderThanMs: number; limit: number }): Promise<OperationState[]> {
    const { rows } = await this.run<StateRow>(
      'findUnstarted',
      `SELECT ${STATE_COLUMNS} FROM operations
        WHERE status = 'reserved' AND updated_at < to_timestamp($1 / 1000.0)
        ORDER BY updated_at LIMIT $2`,
      [options.olderThanMs, options.limit],
    );
    return rows.map(toState);
  }

  /** Running rows untouched since `runningBeforeMs`, and reserved rows expired at `nowMs`: their run is checked in Temporal. */
  async findToCheck(options: { runningBeforeMs: number; nowMs: number; limit: number }): Promise<OperationState[]> {
    const { rows } = await this.run<StateRow>(
      'findToCheck',
      `SELECT ${STATE_COLUMNS} FROM operations
        WHERE (status = 'running' AND updated_at < to_timestamp($1::bigint / 1000.0))
           OR (status = 'reserved' AND expires_at <= to_timestamp($2::bigint / 1000.0))
        ORDER BY updated_at
        LIMIT $3`,
      [options.runningBeforeMs, options.nowMs, options.limit],
    );
    return rows.map(toState);
  }

  /** Marks an unfinished row as looked at, so the next reconciler pass looks at others first. */
  async touch(operationId: string): Promise<void> {
    await this.run('touch', `UPDATE operations SET updated_at = now() WHERE operation_id = $1 AND status IN ('reserved', 'running')`, [operationId]);
  }

  async purgeExpired(options: { nowMs: number; limit: number }): Promise<number> {
    return (await this.purgeExpiredIds(options)).length;
  }

  /** purgeExpired, returning the purged operations' ids: their effects are deleted in the same transaction (src/effects/retention.ts). */
  async purgeExpiredIds(options: { nowMs: number; limit: number }): Promise<string[]> {
    const { rows } = await this.run<{ operation_id: string }>(
      'purgeExpiredIds',
      `DELETE FROM operations WHERE ctid IN (
         SELECT ctid FROM operations
          WHERE expires_at <= to_timestamp($1 / 1000.0) AND status IN ${FINAL}
          LIMIT $2)
       RETURNING operation_id`,
      [options.nowMs, options.limit],
    );
    return rows.map((row) => row.operation_id);
  }

  /**
   * The operator's purge: expired at PostgreSQL's clock (the one the API
   * compares expires_at against at reservation), optionally one tenant.
   * Small batches keep each DELETE's locks short next to live traffic. An
   * unfinished operation is never purged even when expired: its workflow still
   * has to record its outcome on this row.
   */
  async purgeExpiredNow(options: { tenantId?: string; batchSize: number }): Promise<number> {
    let purged = 0;
    for (;;) {
      const { rowCount } = await this.run(
        'purgeExpiredNow',
        `DELETE FROM operations WHERE ctid IN (
           SELECT ctid FROM operations
            WHERE expires_at <= now() AND ($1::text IS NULL OR tenant_id = $1) AND status IN ${FINAL}
            LIMIT $2)`,
        [options.tenantId ?? null, options.batchSize],
      );
      purged += rowCount ?? 0;
      if ((rowCount ?? 0) < options.batchSize) return purged;
    }
  }

  /** Expired rows at PostgreSQL's clock: final ones (purgeable) and unfinished ones (kept). */
  async countExpiredNow(options: { tenantId?: string }): Promise<{ finished: number; running: number }> {
    const { rows } = await this.run<{ finished: number; running: number }>(
      'countExpiredNow',
      `SELECT count(*) FILTER (WHERE status IN ${FINAL})::int AS finished,
              count(*) FILTER (WHERE status IN ('reserved', 'running'))::int AS running
         FROM operations WHERE expires_at <= now() AND ($1::text IS NULL OR tenant_id = $1)`,
      [options.tenantId ?? null],
    );
    return rows[0] ?? { finished: 0, running: 0 };
  }

  /** Age of the oldest unfinished operation in seconds, 0 when none. */
  async oldestUnfinishedAgeSeconds(): Promise<number> {
    const { rows } = await this.run<{ age: number | null }>(
      'oldestUnfinishedAge',
      `SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age
         FROM operations WHERE status IN ('reserved', 'running')`,
      [],
    );
    return rows[0]?.age ?? 0;
  }

  /**
   * Whether an operation of this tenant and type whose key starts with
   * `keyPrefix` and sorts before `beforeKey` is still unfinished (reserved or
   * running): a schedule's overlap policy asks it about the slots before one
   * (slot keys sort by nominal time, src/schedules/slot-key.ts).
   */
  async hasUnfinishedBefore(options: { tenantId: string; operationType: string; keyPrefix: string; beforeKey: string }): Promise<boolean> {
    const { rows } = await this.run(
      'hasUnfinishedBefore',
      `SELECT 1 FROM operations
        WHERE tenant_id = $1 AND operation_type = $2 AND idempotency_key >= $3 AND idempotency_key < $4
          AND starts_with(idempotency_key, $3) AND status IN ('reserved', 'running') AND expires_at > now()
        LIMIT 1`,
      [options.tenantId, options.operationType, options.keyPrefix, options.beforeKey],
    );
    return rows.length > 0;
  }

  /** How many operation rows each tenant has. */
  async countByTenant(): Promise<Map<string, number>> {
    const { rows } = await this.run<{ tenant_id: string; count: number }>(
      'countByTenant',
      'SELECT tenant_id, count(*)::int AS count FROM operations GROUP BY tenant_id',
      [],
    );
    return new Map(rows.map((row) => [row.tenant_id, row.count]));
  }

  /**
   * One page of a tenant's operations, newest first, and the position after
   * its last row when more may follow. Reads one row more than the page to
   * know whether another page exists.
   */
  async list(filter: ListFilter): Promise<{ rows: OperationState[]; next: ListPosition | null }> {
    const { rows } = await this.run<StateRow & { created_us: string }>(
      'list',
      `SELECT ${STATE_COLUMNS}, (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint::text AS created_us
         FROM operations
        WHERE tenant_id = $1
          AND ($2::text IS NULL OR operation_type = $2)
          AND ($3::text[] IS NULL OR status = ANY($3))
          AND ($4::timestamptz IS NULL OR created_at > $4)
          AND ($5::timestamptz IS NULL OR created_at < $5)
          AND ($6::bigint IS NULL OR (created_at, operation_id) < ('epoch'::timestamptz + $6::bigint * interval '1 microsecond', $7::uuid))
          AND ($9::bigint IS NULL OR expires_at > to_timestamp($9::bigint / 1000.0))
        ORDER BY created_at DESC, operation_id DESC
        LIMIT $8`,
      [
        filter.tenantId,
        filter.operationType ?? null,
        filter.status ? statusesMatching(filter.status) : null,
        filter.createdAfter ?? null,
        filter.createdBefore ?? null,
        filter.after?.createdAtMicros ?? null,
        filter.after?.operationId ?? null,
        filter.limit + 1,
        filter.liveAtMs ?? null,
      ],
    );
    const page = rows.slice(0, filter.limit);
    const last = page[page.length - 1];
    return {
      rows: page.map(toState),
      next: rows.length > filter.limit && last ? { createdAtMicros: last.created_us, operationId: last.operation_id } : null,
    };
  }

  /** Operations across tenants for the operator CLI, newest first, with the guarded steps each has done. */
  async listForOperator(filter: OperatorFilter): Promise<OperatorView[]> {
    const { rows } = await this.run<Row & { steps: string[] }>(
      'listForOperator',
      `SELECT ${COLUMNS.split(',').map((c) => `o.${c.trim()}`).join(', ')},
              COALESCE((SELECT array_agg(e.step ORDER BY e.created_at) FROM effects e WHERE e.operation_id = o.operation_id), '{}') AS steps
         FROM operations o
        WHERE ($1::text IS NULL OR o.tenant_id = $1)
          AND ($2::text IS NULL OR o.operation_type = $2)
          AND ($3::text IS NULL OR o.idempotency_key = $3)
          AND ($4::text[] IS NULL OR o.status = ANY($4))
          AND ($6::timestamptz IS NULL OR o.created_at > $6)
          AND ($7::timestamptz IS NULL OR o.created_at < $7)
        ORDER BY o.created_at DESC
        LIMIT $5`,
      [
        filter.tenantId ?? null,
        filter.operationType ?? null,
        filter.idempotencyKey ?? null,
        filter.status ? statusesMatching(filter.status) : null,
        Math.min(filter.limit ?? 50, 10_000),
        filter.createdAfter ?? null,
        filter.createdBefore ?? null,
      ],
    );
    return rows.map((row) => ({ ...toRecord(row), steps: row.steps }));
  }
}
