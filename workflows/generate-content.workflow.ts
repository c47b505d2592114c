import { ActivityFailure, ApplicationFailure, CancellationScope, defineQuery, isCancellation, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { GeminiAttempt, GeminiFailureDetails } from '../activities/gemini-generate';
import type { GenerateContentInput } from '../src/operations/registry';
import { activityOptions } from './activity-options';
import { canceledOutcome } from './cancellation';
import type { OperationWorkflowInput } from './definitions';
import { FailureType, OperationFailure, operationEndingFailures } from './failure-types';
import { generateContentV1 } from './generate-content.v1';
import { succeededOutcome, type OperationError, type OperationOutcome } from './operation-outcome';

export interface GenerateContentProgress {
  step: 'resolving-models' | 'calling-gemini' | 'finishing' | 'done';
  model: string | null;
  modelsTried: string[];
  /** Every recorded Gemini call so far, refreshed after each model's outcome. */
  attempts: GeminiAttempt[];
}

/** What the Temporal UI shows as the run's result: the outcome, never the generated text. */
export interface GenerateContentRunSummary {
  status: 'succeeded' | 'failed';
  model: string | null;
  totalTokens: number;
  attempts: number;
  error?: string;
}

export const generateContentProgressQuery = defineQuery<GenerateContentProgress>('progress');

/**
 * A success is finished by the Gemini activity itself (finishOnSuccess, see
 * finishSucceeded in activities/gemini-generate.ts); this local activity
 * finishes the rest: failures, cancels, a success whose in-activity finish
 * failed, and runs recorded before that. A local activity runs in the worker
 * that runs the workflow task, not as a task of its own through the server:
 * two server round trips and five history events fewer. What guards it is the
 * same as before: completeOperation writes the outcome, the bill and the
 * outbox event in ONE transaction under its effect guard (operationId,
 * 'complete'). A local activity is recorded only when its workflow task
 * completes, so if the worker dies after COMMIT and before that, the task
 * runs again on another worker and runs completeOperation again: the guard
 * finds the committed effect and returns it; nothing is billed or published
 * twice. If it dies before COMMIT, nothing of it exists and the rerun does it
 * all. Retried like the regular activity was (databaseWrite), on timers once
 * the backoff grows past the local retry threshold.
 */
const { completeOperation } = proxyLocalActivities<Activities>(activityOptions.databaseWrite);
/** Only when a failure came without the attempts (PostgreSQL away, a timeout): read them, retried until PostgreSQL is back. */
const { listGeminiAttempts } = proxyActivities<Activities>(activityOptions.quickRead);

/**
 * One Gemini text generation. Each model of the chain (resolved at start, in
 * the input) gets its retry policy (activity-options `geminiCall`); a model
 * that exhausts it hands over to the next, and so does a model Gemini does not
 * know (404). A request Gemini refuses (a 400 on the prompt, safety) ends the
 * operation at once: another model would refuse it too, and each try costs money.
 * So do a spend cap reached and the deployment's API key refused
 * (operationEndingFailures): neither depends on the model.
 *
 * A success on the first model is one regular activity (the paid call, which
 * also returns the attempts and finishes the operation): 11 history events,
 * as many as a bare one-activity workflow, where the first version's four
 * regular activities cost 29.
 */
export async function generateContentWorkflow(operation: OperationWorkflowInput<GenerateContentInput>): Promise<GenerateContentRunSummary> {
  const progress: GenerateContentProgress = { step: 'resolving-models', model: null, modelsTried: [], attempts: [] };
  setHandler(generateContentProgressQuery, () => progress);
  try {
    // Runs started before the chain travelled in the input keep their recorded shape.
    const models = operation.models;
    if (models === undefined) return await generateContentV1(operation, progress);
    return await generateContent(operation, models, progress);
  } catch (error) {
    if (!isCancellation(error)) throw error;
    await finishCanceled(operation, progress);
    // Rethrown: the run closes as Canceled in Temporal, as its operation did.
    throw error;
  }
}

/**
 * Cancelled (POST …/cancel): the Gemini attempt in flight has stopped
 * (geminiCall waits for it), so the recorded attempts are final. Outcome,
 * bill for what was paid and the one operation.canceled event are written by
 * completeOperation under its effect guard, shielded from the cancellation
 * that brought the run here.
 */
async function finishCanceled(operation: OperationWorkflowInput<GenerateContentInput>, progress: GenerateContentProgress): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    progress.step = 'finishing';
    progress.attempts = await listGeminiAttempts({ operationId: operation.operationId });
    await finish(operation, workflowInfo().workflowId, canceledOutcome(progress.attempts, 'canceled on request before it finished', modelOf(operation, progress.model)));
    progress.step = 'done';
  });
}

async function generateContent(
  operation: OperationWorkflowInput<GenerateContentInput>,
  models: string[],
  progress: GenerateContentProgress,
): Promise<GenerateContentRunSummary> {
  const { workflowId } = workflowInfo();
  const { prompt, system, temperature, maxOutputTokens } = operation.input;
  let lastError: OperationError | undefined;
  for (const [index, model] of models.entries()) {
    progress.step = 'calling-gemini';
    progress.model = model;
    progress.modelsTried.push(model);
    const { generateWithGemini } = proxyActivities<Activities>({
      ...activityOptions.geminiCall,
      summary: `Gemini ${model} (model ${index + 1} of ${models.length})`,
    });
    try {
      const response = await generateWithGemini({
        operationId: operation.operationId,
        workflowId,
        tenantId: operation.tenantId,
        operationType: operation.operationType,
        model,
        ...(index > 0 ? { fallbackFrom: models[index - 1] } : {}),
        request: { prompt, system, temperature, maxOutputTokens },
        finishOnSuccess: { idempotencyKey: operation.idempotencyKey },
      });
      progress.step = 'finishing';
      progress.attempts = response.attempts;
      // Runs recorded before the activity finished a success (no `finished`
      // in their recorded result) replay the finishing local activity here.
      if (!response.finished) await finish(operation, workflowId, succeededOutcome(response));
      progress.step = 'done';
      return { status: 'succeeded', model: response.model, totalTokens: response.usage.totalTokens, attempts: response.attempts.length };
    } catch (error) {
      if (isCancellation(error)) throw error;
      const failure = applicationFailureOf(error);
      progress.attempts = (failure?.details?.[0] as GeminiFailureDetails | undefined)?.attempts
        ?? await listGeminiAttempts({ operationId: operation.operationId });
      const ending = failure && operationEndingFailures[failure.type as FailureType];
      if (ending) {
        lastError = { ...ending, detail: failure.message };
        break;
      }
      if (failure?.type === FailureType.GeminiRejected || failure?.type === FailureType.GeminiSafetyBlocked) {
        lastError = {
          type: failure.type === FailureType.GeminiSafetyBlocked ? OperationFailure.PromptBlocked : OperationFailure.PromptRejected,
          detail: failure.message,
          retryable: false,
        };
        break;
      }
      // Retries exhausted on a transient cause, or the model is unknown (404,
      // GeminiNotFound: that model's property, not the request's): fall back to the next model.
      lastError = {
        type: OperationFailure.ProviderFailure,
        detail: `every model failed; last: ${failure?.message ?? String(error)}`,
        retryable: true,
      };
    }
  }
  progress.step = 'finishing';
  await finish(operation, workflowId, { outcome: 'failed', error: { ...lastError!, attempts: progress.attempts } });
  progress.step = 'done';
  return { status: 'failed', model: progress.model, totalTokens: 0, attempts: progress.attempts.length, error: lastError!.type };
}

/**
 * Not cancellable: a cancel that arrives while the outcome is being written
 * must not leave it half-known to the workflow (the effect guard keeps the
 * database right either way; this keeps the run's own answer right too).
 */
async function finish(operation: OperationWorkflowInput, workflowId: string, outcome: OperationOutcome): Promise<void> {
  await CancellationScope.nonCancellable(() => completeOperation({
    operationId: operation.operationId,
    tenantId: operation.tenantId,
    operationType: operation.operationType,
    idempotencyKey: operation.idempotencyKey,
    workflowId,
    ...outcome,
  }));
}

/** The model a canceled run's bill names when it made no call: the one it was on, else the first it would have tried. */
function modelOf(operation: OperationWorkflowInput<GenerateContentInput>, current: string | null): string {
  return current ?? operation.models?.[0] ?? operation.input.model ?? 'none';
}

function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) return error.cause;
  return undefined;
}
