import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { GenerateContentInput } from '../src/operations/registry';
import { activityOptions } from './activity-options';
import type { OperationWorkflowInput } from './definitions';
import { FailureType, OperationFailure } from './failure-types';
import type { OperationError, OperationOutcome } from './operation-outcome';
import type { GenerateContentProgress, GenerateContentRunSummary } from './generate-content.workflow';

const { completeOperation } = proxyActivities<Activities>(activityOptions.databaseWrite);
const { resolveModelChain, listGeminiAttempts } = proxyActivities<Activities>(activityOptions.quickRead);

/**
 * generate-content as released before the model chain travelled in the input
 * (four regular activities: resolve the chain, call Gemini, list the attempts,
 * finish). Kept, command for command, for runs started by that version: their
 * histories (test/workflows/histories/) must replay. New runs never come here.
 *
 * One Gemini text generation. Each model of the chain gets its retry policy
 * (activity-options `geminiCall`); a model that exhausts it hands over to the
 * next, and so does a model Gemini does not know (404). A request Gemini
 * refuses (400, 401, 403, safety) ends the operation at once: another model
 * would refuse it too, and each try costs money.
 */
export async function generateContentV1(
  operation: OperationWorkflowInput<GenerateContentInput>,
  progress: GenerateContentProgress,
): Promise<GenerateContentRunSummary> {
  const { workflowId } = workflowInfo();
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
      // A cancel request: the caller (generateContentWorkflow) finishes the operation as canceled.
      if (isCancellation(error)) throw error;
      progress.attempts = await listGeminiAttempts({ operationId: operation.operationId });
      const failure = applicationFailureOf(error);
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

/** Not cancellable, as in generate-content.workflow.ts (no command changes: scopes live in the worker only). */
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

function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) return error.cause;
  return undefined;
}
