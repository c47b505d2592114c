import { ActivityFailure, ApplicationFailure, defineQuery, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { GeminiAttempt } from '../activities/gemini-generate';
import type { GenerateContentInput } from '../src/operations/registry';
import { activityOptions } from './activity-options';
import type { OperationWorkflowInput } from './definitions';
import { FailureType, operationEndingFailures } from './failure-types';
import type { OperationError, OperationOutcome } from './operation-outcome';

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

const { completeOperation } = proxyActivities<Activities>(activityOptions.databaseWrite);
const { resolveModelChain, listGeminiAttempts } = proxyActivities<Activities>(activityOptions.quickRead);

/**
 * One Gemini text generation. Each model of the chain gets its retry policy
 * (activity-options `geminiCall`); a model that exhausts it hands over to the
 * next, and so does a model Gemini does not know (404). A request Gemini
 * refuses (400, 401, 403, safety) ends the operation at once: another model
 * would refuse it too, and each try costs money.
 */
export async function generateContentWorkflow(operation: OperationWorkflowInput<GenerateContentInput>): Promise<GenerateContentRunSummary> {
  const { workflowId } = workflowInfo();
  const progress: GenerateContentProgress = { step: 'resolving-models', model: null, modelsTried: [], attempts: [] };
  setHandler(generateContentProgressQuery, () => progress);
  const { prompt, system, temperature, maxOutputTokens } = operation.input;
  const models = await resolveModelChain({ requested: operation.input.model });

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
      });
      progress.step = 'finishing';
      const attempts = await listGeminiAttempts({ operationId: operation.operationId });
      progress.attempts = attempts;
      await finish(operation, workflowId, {
        outcome: 'succeeded',
        result: { text: response.text, model: response.model, usage: response.usage, attempts },
        usage: { model: response.model, ...response.usage },
      });
      progress.step = 'done';
      return { status: 'succeeded', model: response.model, totalTokens: response.usage.totalTokens, attempts: attempts.length };
    } catch (error) {
      progress.attempts = await listGeminiAttempts({ operationId: operation.operationId });
      const failure = applicationFailureOf(error);
      const ending = failure && operationEndingFailures[failure.type as FailureType];
      if (ending) {
        lastError = { ...ending, detail: failure.message };
        break;
      }
      if (failure?.type === FailureType.GeminiRejected || failure?.type === FailureType.GeminiSafetyBlocked) {
        lastError = {
          type: failure.type === FailureType.GeminiSafetyBlocked ? 'prompt-blocked' : 'prompt-rejected',
          title: failure.type === FailureType.GeminiSafetyBlocked ? 'Prompt blocked by Gemini safety filters' : 'Prompt rejected by Gemini',
          status: 422,
          detail: failure.message,
          retryable: false,
        };
        break;
      }
      // Retries exhausted on a transient cause, or the model is unknown (404,
      // GeminiNotFound: that model's property, not the request's): fall back to the next model.
      lastError = {
        type: 'provider-failure',
        title: 'Gemini failed',
        status: 502,
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

async function finish(operation: OperationWorkflowInput, workflowId: string, outcome: OperationOutcome): Promise<void> {
  await completeOperation({
    operationId: operation.operationId,
    tenantId: operation.tenantId,
    operationType: operation.operationType,
    idempotencyKey: operation.idempotencyKey,
    workflowId,
    ...outcome,
  });
}

function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) return error.cause;
  return undefined;
}
