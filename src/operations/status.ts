/**
 * The life of an operation, written once.
 *
 * Stored statuses are the `status` column; `released` and `expired` are
 * phases derived from a stored row (the `released` flag of a failed row, and
 * `expires_at` in the past): both free the key, so the next request with it
 * reserves the row again.
 */
export const OperationStatus = {
  /** Key taken, workflow start not yet confirmed (the self-healing window). Shown to clients as `running`. */
  Reserved: 'reserved',
  Running: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
  /** Ended by a cancel request (contract v1.1); replayed like any other outcome. */
  Canceled: 'canceled',
} as const;
export type OperationStatus = (typeof OperationStatus)[keyof typeof OperationStatus];
export const operationStatuses = Object.values(OperationStatus);

export const OperationPhase = {
  ...OperationStatus,
  /** A failed row whose type releases the key after exhausted retries: the next request starts a new run. */
  Released: 'released',
  /** Past its retention: GET answers 404, the next request starts a new operation, the purge may delete it. */
  Expired: 'expired',
} as const;
export type OperationPhase = (typeof OperationPhase)[keyof typeof OperationPhase];

/**
 * The allowed moves. `reserved` may finish without ever being seen `running`
 * (a fast run finishes before markStarted, or the reconciler fails an
 * abandoned reservation); a finished phase only frees its key.
 */
export const operationTransitions: Readonly<Record<OperationPhase, readonly OperationPhase[]>> = {
  reserved: ['running', 'succeeded', 'failed', 'canceled', 'expired'],
  running: ['succeeded', 'failed', 'canceled', 'expired'],
  succeeded: ['expired'],
  failed: ['released', 'expired'],
  canceled: ['expired'],
  released: ['reserved'],
  expired: ['reserved'],
};

export function canTransition(from: OperationPhase, to: OperationPhase): boolean {
  return operationTransitions[from].includes(to);
}

/** Statuses a client can see in the operation resource. */
export const publicStatuses = [OperationStatus.Running, OperationStatus.Succeeded, OperationStatus.Failed, OperationStatus.Canceled] as const;
export type PublicStatus = (typeof publicStatuses)[number];

/** Statuses after which nothing more happens to the row but expiry. */
export const finalStatuses: readonly OperationStatus[] = [OperationStatus.Succeeded, OperationStatus.Failed, OperationStatus.Canceled];
export function isFinal(status: OperationStatus): boolean {
  return finalStatuses.includes(status);
}

/** The phase of a stored row at `nowMs`. */
export function phaseOf(row: { status: OperationStatus; released: boolean; expiresAt: Date }, nowMs: number): OperationPhase {
  if (row.expiresAt.getTime() <= nowMs) return OperationPhase.Expired;
  if (row.status === OperationStatus.Failed && row.released) return OperationPhase.Released;
  return row.status;
}

/** A row that still binds its key: neither expired nor released. */
export function bindsKey(row: { status: OperationStatus; released: boolean; expiresAt: Date }, nowMs: number): boolean {
  const phase = phaseOf(row, nowMs);
  return phase !== OperationPhase.Expired && phase !== OperationPhase.Released;
}

/** NOTIFY channel: payload is the operation id of a row that just became terminal. */
export const OPERATION_FINISHED_CHANNEL = 'onceflow_operation_finished';
