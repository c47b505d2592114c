/**
 * Shared by workflows, activities and the facade: the task queue, search
 * attributes, signals, queries and the input/output shapes of every workflow.
 * Types and @temporalio/workflow-safe values only.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const DEFAULT_TASK_QUEUE = 'onceflow';

export const searchAttributes = {
  tenant: defineSearchAttributeKey('OnceflowTenant', SearchAttributeType.KEYWORD),
  operationType: defineSearchAttributeKey('OnceflowOperationType', SearchAttributeType.KEYWORD),
  idempotencyKey: defineSearchAttributeKey('OnceflowIdempotencyKey', SearchAttributeType.KEYWORD),
} as const;

/** Every search attribute the dev server must register at start. */
export const allSearchAttributes = Object.values(searchAttributes);

/** What the facade hands every operation workflow. */
export interface OperationWorkflowInput<TInput = unknown> {
  /** Our own id for this reservation; scopes every effect (`operationId:step`). */
  operationId: string;
  tenantId: string;
  operationType: string;
  idempotencyKey: string;
  input: TInput;
}
