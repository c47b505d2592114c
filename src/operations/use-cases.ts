/**
 * The operation use cases: start or attach to an operation under a key, read
 * one, list a tenant's. They answer with discriminated unions and know
 * nothing of HTTP; src/http/routes/operations.ts maps them to the wire.
 */
import { randomUUID } from 'node:crypto';
import { payloadDifferences } from '../idempotency/differences';
import { essentialPart, fingerprint, CURRENT_FINGERPRINT_VERSION } from '../idempotency/fingerprint';
import { operationWorkflowId } from '../idempotency/workflow-id';
import type { CompletionWaiter, FinishWatch } from './completion-waiter';
import type { FinishedCache } from './finished-cache';
import type { OperationProgress, ProgressReader } from './progress';
import type { KeyScope, ListFilter, ListPosition, OperationState, PostgresOperationsRepository } from './repository';
import type { OperationTypeDefinition } from './registry';
import { createReservationResumer } from './resume';
import type { StartOperation } from './starter';
import { bindsKey, isFinal, OperationStatus } from './status';

/**
 * A `reserved` row older than this whose start was never confirmed is started
 * by the next request that sees it (the facade died or Temporal was down
 * between reserving and starting). Younger rows are probably being started by
 * their first request right now; starting again would be harmless, only wasted.
 */
const STALE_RESERVATION_MS = 2_000;

export type StartOrAttachResult =
  /** This request reserved the key and started the run; `finished` when a wait saw it end. */
  | { kind: 'started'; record: OperationState; finished?: OperationState }
  /** A repeat of a finished operation (or a repeat whose wait saw it finish). */
  | { kind: 'replayed'; record: OperationState; waited: boolean }
  /** A repeat while the first request's run is still going. */
  | { kind: 'inProgress'; record: OperationState; progress: OperationProgress }
  /** A repeat whose essential body differs from the first request's. */
  | { kind: 'conflict'; record: OperationState; differences: string[]; fingerprintVersion: number };

export interface StartOrAttachCommand extends KeyScope {
  definition: OperationTypeDefinition;
  /** The validated body. */
  input: unknown;
  /** Hold up to this long for the final result; 0 answers at once. */
  waitSeconds: number;
  /** Aborted when the caller is gone (the client closed its connection): a wait stops at once. */
  signal?: AbortSignal;
}

export interface OperationUseCasesDeps {
  operations: Pick<PostgresOperationsRepository, 'find' | 'findById' | 'findStateById' | 'reserve' | 'list'>;
  startOperation: StartOperation;
  waiter: Pick<CompletionWaiter, 'waitFor' | 'watch'>;
  progress: ProgressReader;
  /** Final rows that answer repeats without a read (src/operations/finished-cache.ts); none by default. */
  finished?: FinishedCache;
  /** Repeats answered without starting work, and the time a reservation takes (metrics; optional). */
  observe?: {
    duplicateAbsorbed(record: OperationState): void;
    reservationTimer(): () => void;
  };
  /** Retention of a type that declares none (ONCEFLOW_DEFAULT_RETENTION_HOURS, default 24). */
  defaultRetentionHours: number;
  /** Epoch ms; injected so tests can move time. */
  clock: () => number;
}

/** A page of a tenant's operations; the use case hides the expired ones itself (by its clock). */
export type ListCommand = Omit<ListFilter, 'liveAtMs'>;

export function createOperationUseCases(deps: OperationUseCasesDeps) {
  const observe = deps.observe ?? { duplicateAbsorbed: () => undefined, reservationTimer: () => () => undefined };
  const resumeReservation = createReservationResumer(deps);

  async function startOrAttach(command: StartOrAttachCommand): Promise<StartOrAttachResult> {
    const { definition } = command;
    const scope: KeyScope = { tenantId: command.tenantId, operationType: command.operationType, idempotencyKey: command.idempotencyKey };
    const nowMs = deps.clock();

    // Fast path: a repeat of a live operation is answered from one indexed
    // read, and a repeat of a finished one from no read at all.
    const cached = deps.finished?.get(scope, nowMs);
    if (cached) return attach(command, cached);
    const existing = await deps.operations.find(scope);
    if (existing && bindsKey(existing, nowMs)) {
      deps.finished?.remember(existing, nowMs);
      return attach(command, existing);
    }

    const stopTimer = observe.reservationTimer();
    const { record, reserved } = await deps.operations.reserve({
      ...scope,
      operationId: randomUUID(),
      fingerprint: fingerprint(command.input, definition.nonEssentialFields, CURRENT_FINGERPRINT_VERSION),
      fingerprintVersion: CURRENT_FINGERPRINT_VERSION,
      workflowId: operationWorkflowId(scope.tenantId, scope.operationType, scope.idempotencyKey),
      input: command.input,
      nowMs,
      expiresAtMs: nowMs + (definition.retentionHours ?? deps.defaultRetentionHours) * 3_600_000,
    });
    stopTimer();
    if (!reserved) return attach(command, record);

    // Watched before the start, so the finish cannot be missed and the wait
    // needs no read of the row before it sleeps.
    const watch = command.waitSeconds > 0 ? deps.waiter.watch(record.operationId) : undefined;
    try {
      // If this process dies here, or Temporal refuses the start (503), the row
      // stays `reserved`: the next request with the key or the reconciler
      // schedule starts the workflow.
      const runId = await deps.startOperation(record);
      const started: OperationState = { ...record, runId, status: OperationStatus.Running };
      const finished = watch ? await waitForFinish(started, command.waitSeconds, command.signal, watch) : undefined;
      return { kind: 'started', record: started, finished };
    } finally {
      watch?.close();
    }
  }

  /** The answer to a repeat: conflict, replay, or still in progress (after a wait, if asked). */
  async function attach(command: StartOrAttachCommand, record: OperationState): Promise<StartOrAttachResult> {
    // Compared with the version the key was reserved with, never the current one.
    const repeatFingerprint = fingerprint(command.input, command.definition.nonEssentialFields, record.fingerprintVersion);
    if (record.fingerprint !== repeatFingerprint) return conflict(command, record);
    if (record.status === OperationStatus.Reserved && deps.clock() - record.updatedAt.getTime() > STALE_RESERVATION_MS) {
      // Self-healing: the first request never confirmed its start. This repeat
      // does start work, so it is not counted as a duplicate absorbed.
      await resumeReservation(record.operationId);
    } else {
      observe.duplicateAbsorbed(record);
    }
    if (isFinal(record.status)) return { kind: 'replayed', record, waited: false };
    if (command.waitSeconds > 0) {
      const finished = await waitForFinish(record, command.waitSeconds, command.signal);
      if (finished) return { kind: 'replayed', record: finished, waited: true };
    }
    return { kind: 'inProgress', record, progress: await deps.progress.read(record) };
  }

  /**
   * The 422's detail: where the essential bodies differ. The first request's
   * body is read only here (a rare path), never on a replay.
   */
  async function conflict(command: StartOrAttachCommand, record: OperationState): Promise<StartOrAttachResult> {
    const first = await deps.operations.findById(record.operationId);
    const version = record.fingerprintVersion;
    const nonEssential = command.definition.nonEssentialFields;
    const differences = first
      ? payloadDifferences(essentialPart(first.input, nonEssential, version), essentialPart(command.input, nonEssential, version))
      : [];
    // Only the canonical values differ by fingerprint, so an empty list can
    // only mean the row changed between the two reads; the root is the honest answer.
    return { kind: 'conflict', record, differences: differences.length > 0 ? differences : [''], fingerprintVersion: version };
  }

  function waitForFinish(record: OperationState, waitSeconds: number, signal: AbortSignal | undefined, watch?: FinishWatch): Promise<OperationState | undefined> {
    return deps.waiter.waitFor(record.operationId, waitSeconds * 1000, async () => {
      // Without the input: waiting must never re-read the stored request body.
      const current = await deps.operations.findStateById(record.operationId);
      return current && isFinal(current.status) ? current : undefined;
    }, { tenantId: record.tenantId, signal, watch });
  }

  /** A live operation by key, with its progress while it runs; undefined for unknown, expired or another tenant's keys. */
  async function read(scope: KeyScope): Promise<{ record: OperationState; progress: OperationProgress | null } | undefined> {
    const record = await deps.operations.find(scope);
    if (!record || record.expiresAt.getTime() <= deps.clock()) return undefined;
    return { record, progress: isFinal(record.status) ? null : await deps.progress.read(record) };
  }

  /** One page of a tenant's live operations, newest first. */
  async function list(command: ListCommand): Promise<{ rows: OperationState[]; next: ListPosition | null }> {
    // Expired rows wait for the purge; to the caller they are gone (as GET says 404).
    return deps.operations.list({ ...command, liveAtMs: deps.clock() });
  }

  return { startOrAttach, read, list };
}

export type OperationUseCases = ReturnType<typeof createOperationUseCases>;
