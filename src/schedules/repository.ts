/** The only module that issues SQL on `schedules` (migration 013). */
import type pg from 'pg';
import type { ScheduleSpecInput } from './spec';

export interface ScheduleRow {
  scheduleId: string;
  tenantId: string;
  idempotencyKey: string;
  fingerprint: string;
  operationType: string;
  input: unknown;
  spec: ScheduleSpecInput;
  paused: boolean;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

interface Row {
  schedule_id: string; tenant_id: string; idempotency_key: string; fingerprint: string; operation_type: string;
  input: unknown; spec: ScheduleSpecInput; paused: boolean; created_at: Date; updated_at: Date; deleted_at: Date | null;
}

const COLUMNS = 'schedule_id, tenant_id, idempotency_key, fingerprint, operation_type, input, spec, paused, created_at, updated_at, deleted_at';

function toRow(row: Row): ScheduleRow {
  return {
    scheduleId: row.schedule_id,
    tenantId: row.tenant_id,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
    operationType: row.operation_type,
    input: row.input,
    spec: row.spec,
    paused: row.paused,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
  };
}

type Db = Pick<pg.Pool, 'query'>;

/**
 * Takes the create request's key in one statement: `inserted` is false when
 * the key was already used by this tenant, and `row` is then the first
 * request's schedule.
 */
export async function insertSchedule(
  db: Db,
  schedule: Pick<ScheduleRow, 'scheduleId' | 'tenantId' | 'idempotencyKey' | 'fingerprint' | 'operationType' | 'input' | 'spec' | 'paused'>,
): Promise<{ row: ScheduleRow; inserted: boolean }> {
  const { rows } = await db.query<Row & { inserted: boolean }>(
    `WITH ins AS (
       INSERT INTO schedules (schedule_id, tenant_id, idempotency_key, fingerprint, operation_type, input, spec, paused)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
       RETURNING ${COLUMNS})
     SELECT ${COLUMNS}, true AS inserted FROM ins
     UNION ALL
     SELECT ${COLUMNS}, false AS inserted FROM schedules WHERE tenant_id = $2 AND idempotency_key = $3 AND NOT EXISTS (SELECT 1 FROM ins)`,
    [schedule.scheduleId, schedule.tenantId, schedule.idempotencyKey, schedule.fingerprint, schedule.operationType, JSON.stringify(schedule.input), JSON.stringify(schedule.spec), schedule.paused],
  );
  const row = rows[0];
  // The conflicting row committed before our statement began, so the second
  // branch sees it; no row at all would mean it was deleted in between.
  if (!row) throw new Error(`schedule key ${schedule.idempotencyKey} vanished while it was being reserved`);
  return { row: toRow(row), inserted: row.inserted };
}

/** A live (not deleted) schedule of this tenant; another tenant's id reads as unknown. */
export async function findSchedule(db: Db, tenantId: string, scheduleId: string): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM schedules WHERE tenant_id = $1 AND schedule_id = $2 AND deleted_at IS NULL`, [tenantId, scheduleId]);
  return rows[0] ? toRow(rows[0]) : undefined;
}

export interface ScheduleCursor {
  createdAt: Date;
  scheduleId: string;
}

/** Newest first, `limit` rows after `cursor` (keyset paging on the tenant's index). */
export async function listSchedules(db: Db, options: { tenantId: string; limit: number; after?: ScheduleCursor }): Promise<ScheduleRow[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM schedules
      WHERE tenant_id = $1 AND deleted_at IS NULL
        AND ($2::timestamptz IS NULL OR (created_at, schedule_id) < ($2::timestamptz, $3::text))
      ORDER BY created_at DESC, schedule_id DESC LIMIT $4`,
    [options.tenantId, options.after?.createdAt ?? null, options.after?.scheduleId ?? '', options.limit],
  );
  return rows.map(toRow);
}

export async function updateSchedule(db: Db, tenantId: string, scheduleId: string, change: { spec?: ScheduleSpecInput; paused?: boolean }): Promise<ScheduleRow | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE schedules SET spec = COALESCE($3::jsonb, spec), paused = COALESCE($4, paused), updated_at = now()
      WHERE tenant_id = $1 AND schedule_id = $2 AND deleted_at IS NULL
      RETURNING ${COLUMNS}`,
    [tenantId, scheduleId, change.spec ? JSON.stringify(change.spec) : null, change.paused ?? null],
  );
  return rows[0] ? toRow(rows[0]) : undefined;
}

/** Marks it deleted (the row keeps binding its create key, so a late repeat of the create cannot bring it back). */
export async function markScheduleDeleted(db: Db, tenantId: string, scheduleId: string): Promise<boolean> {
  const { rowCount } = await db.query(`UPDATE schedules SET deleted_at = now(), updated_at = now() WHERE tenant_id = $1 AND schedule_id = $2 AND deleted_at IS NULL`, [tenantId, scheduleId]);
  return (rowCount ?? 0) > 0;
}

/** Takes a create key back when Temporal refused the new schedule's spec (nothing ever ran under it). */
export async function deleteScheduleRow(db: Db, scheduleId: string): Promise<void> {
  await db.query('DELETE FROM schedules WHERE schedule_id = $1', [scheduleId]);
}
