/** Stored statuses; `reserved` is internal and shown to clients as `running`. */
export const OperationStatus = {
  Reserved: 'reserved',
  Running: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
} as const;
export type OperationStatus = (typeof OperationStatus)[keyof typeof OperationStatus];

/** Statuses a client can see in the operation resource. */
export const publicStatuses = [OperationStatus.Running, OperationStatus.Succeeded, OperationStatus.Failed] as const;
export type PublicStatus = (typeof publicStatuses)[number];

/** NOTIFY channel: payload is the operation id of a row that just became terminal. */
export const OPERATION_FINISHED_CHANNEL = 'onceflow_operation_finished';
