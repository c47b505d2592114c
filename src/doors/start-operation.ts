/**
 * One way in for every door that is not an HTTP request (a schedule slot, a
 * queue message): validate, derive the key when the type allows it, and
 * start or attach through the same use case as POST /v1/operations
 * (`startOrAttach`), so a key is one operation whichever door it came
 * through first. Callers see only `startOperationFromDoor` and its union.
 */
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { deriveIdempotencyKey } from '../idempotency/derived-key';
import { checkIdempotencyKey } from '../idempotency/key';
import { neverWaits } from '../operations/completion-waiter';
import { PostgresProgressReader } from '../operations/progress';
import { findOperationType, inputSchemaAllowing, operationTypeNames } from '../operations/registry';
import { PostgresOperationsRepository, type OperationState } from '../operations/repository';
import { createReservationResumer, type ResumeReservation } from '../operations/resume';
import { createOperationStarter } from '../operations/starter';
import { OperationStatus } from '../operations/status';
import { createOperationUseCases, type OperationUseCases } from '../operations/use-cases';

/** The doors an operation can come through; the `entry_point` metric label. */
export const EntryPoint = { Http: 'http', Schedule: 'schedule', Queue: 'queue' } as const;
export type EntryPoint = (typeof EntryPoint)[keyof typeof EntryPoint];

export interface DoorRequest {
  tenantId: string;
  /** Operation type name, e.g. `generate-content`. */
  type: string;
  /** Idempotency key; when absent, derived from the type's key fields (CONTRACT v1.1), if it declares any. */
  key?: string;
  /** The unvalidated input; validated here against the type's schema and the model allowlist. */
  input: unknown;
  entryPoint: EntryPoint;
}

export interface InputIssue {
  path: string;
  message: string;
}

export type DoorResult =
  /** This call took the key and started the workflow. */
  | { kind: 'started'; operation: OperationState; key: string }
  /** The key was already bound to this payload: nothing new ran. */
  | { kind: 'existing'; operation: OperationState; key: string }
  /** The key is bound to a different payload; nothing was started. */
  | { kind: 'key-reused'; operation: OperationState; key: string; differences: string[] }
  | { kind: 'invalid-input'; issues: InputIssue[] }
  | { kind: 'invalid-key'; detail: string }
  | { kind: 'key-missing' }
  | { kind: 'unknown-type'; type: string; knownTypes: readonly string[] };

export interface DoorDeps {
  useCases: Pick<OperationUseCases, 'startOrAttach'>;
  /** Starts a reservation whose start was never confirmed (idempotent: derived workflow id, USE_EXISTING). */
  resumeReservation: ResumeReservation;
  /** GEMINI_ALLOWED_MODELS: a `model` outside it is refused, as over HTTP. */
  allowedModels: readonly string[];
}

/** The door's use cases over PostgreSQL and Temporal, for a process that is not the api (worker, consumer). */
export function createDoorDeps(options: {
  pool: pg.Pool;
  temporal: Client;
  taskQueue: string;
  modelChain: readonly string[];
  allowedModels: readonly string[];
  defaultRetentionHours: number;
}): DoorDeps {
  const operations = new PostgresOperationsRepository(options.pool);
  const startOperation = createOperationStarter({ temporal: options.temporal, store: operations, taskQueue: options.taskQueue, modelChain: options.modelChain });
  const useCases = createOperationUseCases({
    operations,
    startOperation,
    // Doors never wait for a result (waitSeconds 0): nobody is holding a connection open.
    waiter: neverWaits,
    progress: new PostgresProgressReader(options.pool),
    defaultRetentionHours: options.defaultRetentionHours,
    clock: Date.now,
  });
  return { useCases, resumeReservation: createReservationResumer({ operations, startOperation, clock: Date.now }), allowedModels: options.allowedModels };
}

/**
 * Throws only when PostgreSQL or Temporal failed: then nothing is decided and
 * the caller retries the same request, which is safe. If the process dies
 * between reserve and start, the row stays `reserved` and the next attempt
 * with the key, or the maintenance reconciler, starts it.
 */
export async function startOperationFromDoor(deps: DoorDeps, request: DoorRequest): Promise<DoorResult> {
  const definition = findOperationType(request.type);
  if (!definition) return { kind: 'unknown-type', type: request.type, knownTypes: operationTypeNames };
  const parsed = inputSchemaAllowing(definition, deps.allowedModels).safeParse(request.input);
  if (!parsed.success) {
    return { kind: 'invalid-input', issues: parsed.error.issues.map((issue) => ({ path: `/${issue.path.join('/')}`, message: issue.message })) };
  }
  const input = parsed.data;
  let key: string;
  if (request.key === undefined || request.key === '') {
    if (!definition.keyFields?.length) return { kind: 'key-missing' };
    key = deriveIdempotencyKey(input, definition.keyFields);
  } else {
    const keyCheck = checkIdempotencyKey([request.key]);
    if (!keyCheck.ok) return { kind: 'invalid-key', detail: keyCheck.reason === 'missing' ? 'the idempotency key is empty' : keyCheck.detail };
    key = keyCheck.key;
  }
  const result = await deps.useCases.startOrAttach({ tenantId: request.tenantId, operationType: definition.name, idempotencyKey: key, definition, input, waitSeconds: 0 });
  switch (result.kind) {
    case 'started':
      return { kind: 'started', operation: result.record, key };
    case 'inProgress':
      // Reserved but its start never confirmed: the door that reserved it died
      // between the reservation and the start (a consumer killed mid-message),
      // and this is its redelivery. Over HTTP a young reservation is left to
      // the request that made it (the repeat gets a 409 and retries); a door's
      // caller acknowledges on this answer and never asks again, so the start
      // must be confirmed now, or the operation would wait for the reconciler.
      if (result.record.status === OperationStatus.Reserved) await deps.resumeReservation(result.record.operationId);
      return { kind: 'existing', operation: result.record, key };
    case 'replayed':
      return { kind: 'existing', operation: result.record, key };
    case 'conflict':
      return { kind: 'key-reused', operation: result.record, key, differences: result.differences };
  }
}
