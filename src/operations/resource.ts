import { z } from 'zod';
import type { OperationState } from './repository';
import { temporalUiLink } from '../temporal/client';
import { publicStatuses } from './status';

/** `progress` of a running operation (src/operations/progress.ts), on GET and on the 409. */
export const operationProgressSchema = z.object({
  step: z.enum(['starting', 'calling-gemini', 'backing-off', 'waiting-for-interaction', 'finishing']),
  model: z.string().nullable(),
  attempt: z.number().int(),
  attempts: z.number().int(),
  startedAt: z.string(),
  interaction: z.object({ state: z.string() }).nullable(),
});

/** The operation resource of the contract for one type (its `result` typed); also the OpenAPI response schema. */
export function operationResourceSchemaFor<TResult extends z.ZodType>(operationType: string, result: TResult) {
  return z.object({
    operationType: z.literal(operationType),
    idempotencyKey: z.string(),
    status: z.enum(publicStatuses),
    createdAt: z.string(),
    completedAt: z.string().nullable(),
    workflowId: z.string(),
    runId: z.string().nullable(),
    result: result.nullable().describe('set once the operation succeeded'),
    error: z.unknown().describe('set once the operation failed: the problem it ended with'),
    expiresAt: z.string().describe('RFC 3339: when the key stops binding this operation (also the Idempotency-Expires header, epoch ms)'),
    progress: operationProgressSchema.nullable().optional().describe('GET of a running operation: where it stands'),
    links: z.object({ self: z.string(), temporalUi: z.string() }),
  });
}

/** The resource of any type, as the code that builds it sees it. */
export type OperationResource = Omit<z.infer<ReturnType<typeof operationResourceSchemaFor>>, 'operationType' | 'result'> & {
  operationType: string;
  result: unknown;
};

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
    expiresAt: record.expiresAt.toISOString(),
    links: {
      self: operationPath(record.operationType, record.idempotencyKey),
      temporalUi: temporalUiLink(ui.baseUrl, ui.namespace, record.workflowId, record.runId),
    },
  };
}

/**
 * The resource as JSON text, for the two hot paths (a replay, and the 202 of a
 * new operation): the route's zod serializer would re-check on every request a
 * resource whose shape TypeScript already guarantees and whose result, if
 * any, was checked against its resultSchema when it was written
 * (completeOperation, resultIssues). GET keeps the route's serializer.
 */
export function serializeOperationResource(resource: OperationResource): string {
  return JSON.stringify(resource);
}
