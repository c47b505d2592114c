import type pg from 'pg';
import type { OperationError } from '../../workflows/operation-outcome';
import type { OperationStatus } from '../operations/status';
import { IdempotencyStoreError } from './errors';

/** Where a key lives: idempotency is scoped per tenant and operation type. */
export interface KeyScope {
  tenantId: string;
  operationType: string;
  idempotencyKey: string;
}

/**
 * An operation as the repeat path reads it: everything but the request body,
 * which can be up to the body limit (1 MiB by default) and which a replay, a
 * 409 or a 422 never needs. Only a record with its input can be started.
 */
export interface OperationState extends KeyScope {
  operationId: string;
  fingerprint: string;
  workflowId: string;
  runId: string | null;
  /** Run of the operation this key was bound to before it expired or was released. */
  previousRunId: string | null;
  status: OperationStatus;
  result: unknown;
  error: OperationError | null;
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
  workflowId: string;
  input: unknown;
  /** The request's arrival, from the injected clock. */
  nowMs: number;
  expiresAtMs: number;
}

/** The idempotency store behind the facade; PostgresIdempotencyStore is the implementation. */
export interface IdempotencyStore {
  /** One primary-key read, without the input: the fast path for repeats. */
  find(scope: KeyScope): Promise<OperationState | undefined>;
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
  findUnstarted(options: { olderThanMs: number; limit: number }): Promise<OperationRecord[]>;
  /** Deletes rows expired at `nowMs` that are not running; returns how many. */
  purgeExpired(options: { nowMs: number; limit: number }): Promise<number>;
}

const STATE_COLUMNS = `tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, run_id, previous_run_id, status,
  result, error, error_status, released, first_seen_ms, created_at, updated_at, completed_at, expires_at`;
const COLUMNS = `${STATE_COLUMNS}, input`;

interface StateRow {
  tenant_id: string; operation_type: string; idempotency_key: string; operation_id: string; fingerprint: string;
  workflow_id: string; run_id: string | null; previous_run_id: string | null; status: OperationStatus; result: unknown;
  error: OperationError | null; error_status: number | null; released: boolean; first_seen_ms: number;
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
    workflowId: row.workflow_id,
    runId: row.run_id,
    previousRunId: row.previous_run_id,
    status: row.status,
    result: row.result,
    error: row.error,
    errorStatus: row.error_status,
    released: row.released,
    firstSeenMs: row.first_seen_ms,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    expiresAt: row.expires_at,
  };
}

export class PostgresIdempotencyStore implements IdempotencyStore {
  constructor(private readonly db: Pick<pg.Pool, 'query'>) {}

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
      `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id,
                               status, input, first_seen_ms, created_at, updated_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'reserved', $7, $8::bigint, to_timestamp($8::bigint / 1000.0), to_timestamp($8::bigint / 1000.0), to_timestamp($9::bigint / 1000.0))
       ON CONFLICT (tenant_id, operation_type, idempotency_key) DO UPDATE
          SET operation_id = EXCLUDED.operation_id, fingerprint = EXCLUDED.fingerprint,
              previous_run_id = operations.run_id, run_id = NULL,
              status = 'reserved', input = EXCLUDED.input, result = NULL, error = NULL, error_status = NULL,
              released = false, first_seen_ms = EXCLUDED.first_seen_ms, created_at = EXCLUDED.created_at,
              updated_at = EXCLUDED.updated_at, completed_at = NULL, expires_at = EXCLUDED.expires_at
        WHERE operations.expires_at <= to_timestamp($8::bigint / 1000.0)
           OR (operations.status = 'failed' AND operations.released)
       RETURNING ${STATE_COLUMNS}`,
      [r.tenantId, r.operationType, r.idempotencyKey, r.operationId, r.fingerprint, r.workflowId,
        JSON.stringify(r.input), r.nowMs, r.expiresAtMs],
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

  async findUnstarted(options: { olderThanMs: number; limit: number }): Promise<OperationRecord[]> {
    const { rows } = await this.run<Row>(
      'findUnstarted',
      `SELECT ${COLUMNS} FROM operations
        WHERE status = 'reserved' AND updated_at < to_timestamp($1 / 1000.0)
        ORDER BY updated_at LIMIT $2`,
      [options.olderThanMs, options.limit],
    );
    return rows.map(toRecord);
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
          WHERE expires_at <= to_timestamp($1 / 1000.0) AND status IN ('succeeded', 'failed')
          LIMIT $2)
       RETURNING operation_id`,
      [options.nowMs, options.limit],
    );
    return rows.map((row) => row.operation_id);
  }
}
