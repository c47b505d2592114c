/**
 * One way in for every door that is not an HTTP request (a schedule slot, a
 * queue message): reserve the key, start the operation, say what happened.
 * Same store, same fingerprint, same workflow ID as POST /v1/operations, so a
 * key is one operation whichever door it came through first.
 *
 * Stand-in for the use-case layer (`startOrAttach`) being cut out of the HTTP
 * route: callers depend only on `startOperationFromDoor` and its result union,
 * so the swap is this file alone.
 */
import { randomUUID } from 'node:crypto';
import { fingerprint } from '../idempotency/fingerprint';
import { checkIdempotencyKey } from '../idempotency/key';
import type { IdempotencyStore, OperationState } from '../idempotency/store';
import { operationWorkflowId } from '../idempotency/workflow-id';
import { findOperationType, operationTypeNames } from '../operations/registry';
import type { StartOperation } from '../operations/starter';

/** The doors an operation can come through; the `entry_point` metric label. */
export const EntryPoint = { Http: 'http', Schedule: 'schedule', Queue: 'queue' } as const;
export type EntryPoint = (typeof EntryPoint)[keyof typeof EntryPoint];

export interface DoorRequest {
  tenantId: string;
  /** Operation type name, e.g. `generate-content`. */
  type: string;
  /** Idempotency key, given or derived by the door. */
  key: string;
  /** The unvalidated input; validated here against the type's schema. */
  input: unknown;
  entryPoint: EntryPoint;
}

export interface InputIssue {
  path: string;
  message: string;
}

export type DoorResult =
  /** This call took the key and started the workflow. */
  | { kind: 'started'; operation: OperationState }
  /** The key was already bound to this payload: nothing new ran (a stale reservation was started again, which is idempotent). */
  | { kind: 'existing'; operation: OperationState }
  /** The key is bound to a different payload; nothing was started. */
  | { kind: 'key-reused'; operation: OperationState }
  | { kind: 'invalid-input'; issues: InputIssue[] }
  | { kind: 'invalid-key'; detail: string }
  | { kind: 'unknown-type'; type: string; knownTypes: readonly string[] };

export interface DoorDeps {
  store: IdempotencyStore;
  startOperation: StartOperation;
  /** Retention of a type that declares none (ONCEFLOW_DEFAULT_RETENTION_HOURS, default 24). */
  defaultRetentionHours: number;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
}

/** A reserved row untouched this long lost its start; the next door that sees it starts it (as the HTTP route does). */
const STALE_RESERVATION_MS = 2_000;

/**
 * Throws only when PostgreSQL or Temporal failed (IdempotencyStoreError,
 * WorkflowStartError): then nothing is decided and the caller retries the
 * same request, which is safe. If the process dies between reserve and
 * start, the row stays `reserved` and the next attempt with the key, or the
 * maintenance reconciler, starts it.
 */
export async function startOperationFromDoor(deps: DoorDeps, request: DoorRequest): Promise<DoorResult> {
  const definition = findOperationType(request.type);
  if (!definition) return { kind: 'unknown-type', type: request.type, knownTypes: operationTypeNames };
  const keyCheck = checkIdempotencyKey([request.key]);
  if (!keyCheck.ok) return { kind: 'invalid-key', detail: keyCheck.reason === 'missing' ? 'the idempotency key is empty' : keyCheck.detail };
  const parsed = definition.inputSchema.safeParse(request.input);
  if (!parsed.success) {
    return { kind: 'invalid-input', issues: parsed.error.issues.map((issue) => ({ path: `/${issue.path.join('/')}`, message: issue.message })) };
  }
  const input = parsed.data;
  const payloadFingerprint = fingerprint(input, definition.nonEssentialFields);
  const nowMs = (deps.clock ?? Date.now)();
  const scope = { tenantId: request.tenantId, operationType: definition.name, idempotencyKey: keyCheck.key };

  const existing = await deps.store.find(scope);
  if (existing && isLive(existing, nowMs)) return repeat(deps, existing, payloadFingerprint, nowMs);
  const { record, reserved } = await deps.store.reserve({
    ...scope,
    operationId: randomUUID(),
    fingerprint: payloadFingerprint,
    workflowId: operationWorkflowId(request.tenantId, definition.name, keyCheck.key),
    input,
    nowMs,
    expiresAtMs: nowMs + (definition.retentionHours ?? deps.defaultRetentionHours) * 3_600_000,
  });
  if (!reserved) return repeat(deps, record, payloadFingerprint, nowMs);
  const runId = await deps.startOperation(record);
  return { kind: 'started', operation: { ...record, runId, status: 'running' } };
}

async function repeat(deps: DoorDeps, record: OperationState, payloadFingerprint: string, nowMs: number): Promise<DoorResult> {
  if (record.fingerprint !== payloadFingerprint) return { kind: 'key-reused', operation: record };
  if (record.status === 'reserved' && nowMs - record.updatedAt.getTime() > STALE_RESERVATION_MS) {
    const full = await deps.store.findById(record.operationId);
    if (full?.status === 'reserved') await deps.startOperation(full);
  }
  return { kind: 'existing', operation: record };
}

/** A row that still binds its key: not expired, and not a failure that released it. */
function isLive(record: OperationState, nowMs: number): boolean {
  return record.expiresAt.getTime() > nowMs && !(record.status === 'failed' && record.released);
}
