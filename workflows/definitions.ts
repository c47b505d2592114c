/**
 * Shared by workflows, activities and the facade: the task queue, search
 * attributes, signals, queries and the input/output shapes of every workflow.
 * Types and @temporalio/workflow-safe values only.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';

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
  /**
   * The Gemini models to try, in order (src/operations/model-chain.ts),
   * resolved by the starter. Absent in runs started before it travelled here:
   * those keep their recorded shape and resolve it with an activity.
   */
  models?: string[];
}

/**
 * Sent by the Gemini webhook route (POST /v1/webhooks/gemini) when a signed,
 * first-seen event says a background interaction ended. It only wakes the
 * report workflow early: the workflow confirms with its own poll, so a forged,
 * repeated or late signal can never complete or bill anything twice.
 */
export interface InteractionEndedSignal {
  interactionId: string;
  /** Gemini's event type, e.g. `interaction.completed`. */
  eventType: string;
  /** The delivery's `webhook-id`. */
  webhookId: string;
}
export const interactionEndedSignal = defineSignal<[InteractionEndedSignal]>('interactionEnded');

/** What generate-report is doing, for `onceflow ops watch` and the Temporal UI. */
export interface GenerateReportProgress {
  step: 'submitting' | 'waiting' | 'finishing' | 'done';
  model: string | null;
  interactionId: string | null;
  modelsTried: string[];
  /** Polls made so far, and how many of them a webhook triggered. */
  polls: number;
  webhookWakeups: number;
  /** Gemini's last seen status of the interaction. */
  lastStatus: string | null;
}
export const generateReportProgressQuery = defineQuery<GenerateReportProgress>('progress');
