import { z } from 'zod';
import type { OperationState } from '../idempotency/store';
import { temporalUiLink } from '../temporal/client';
import { publicStatuses } from './status';

/** The operation resource of the contract; also the OpenAPI response schema. */
export const operationResourceSchema = z.object({
  operationType: z.string(),
  idempotencyKey: z.string(),
  status: z.enum(publicStatuses),
  createdAt: z.string(),
  completedAt: z.string().nullable(),
  workflowId: z.string(),
  runId: z.string().nullable(),
  result: z.unknown(),
  error: z.unknown(),
  links: z.object({ self: z.string(), temporalUi: z.string() }),
});
export type OperationResource = z.infer<typeof operationResourceSchema>;

export function operationPath(operationType: string, idempotencyKey: string): string {
  return `/v1/operations/${encodeURIComponent(operationType)}/${encodeURIComponent(idempotencyKey)}`;
}

export function toOperationResource(record: OperationState, ui: { baseUrl: string; namespace: string }): OperationResource {
  return {
    operationType: record.operationType,
    idempotencyKey: record.idempotencyKey,
    // `reserved` is our own bookkeeping (start not yet confirmed); to a client it is running.
    status: record.status === 'reserved' ? 'running' : record.status,
    createdAt: record.createdAt.toISOString(),
    completedAt: record.completedAt ? record.completedAt.toISOString() : null,
    workflowId: record.workflowId,
    runId: record.runId,
    result: record.result ?? null,
    error: record.error ?? null,
    links: {
      self: operationPath(record.operationType, record.idempotencyKey),
      temporalUi: temporalUiLink(ui.baseUrl, ui.namespace, record.workflowId, record.runId),
    },
  };
}
