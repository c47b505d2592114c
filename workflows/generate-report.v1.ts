import { ActivityFailure, ApplicationFailure, CancellationScope, condition, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { GenerateReportInput } from '../src/operations/registry';
import { activityOptions } from './activity-options';
import type { GenerateReportProgress, OperationWorkflowInput } from './definitions';
import { FailureType, OperationFailure } from './failure-types';
import type { OperationError, OperationOutcome } from './operation-outcome';

const { completeOperation } = proxyActivities<Activities>(activityOptions.databaseWrite);
const { reportSettings, listGeminiAttempts } = proxyActivities<Activities>(activityOptions.quickRead);

/**
 * generate-report as released before the model chain travelled in the input
 * (reportSettings and listGeminiAttempts as regular activities, finishing as
 * one). Kept, command for command, for runs started by that version: their
 * histories (test/workflows/histories/) must replay. New runs never come here.
 *
 * A long report as one Gemini background interaction.
 *
 * Submission goes through the submission ledger (submitInteraction): a retry,
 * a replay or a duplicate start reuses the recorded interaction id instead of
 * paying again. Then the workflow waits on a Temporal timer that backs off
 * (no activity sleeps, so a report that takes an hour holds no worker slot),
 * woken early by the `interactionEnded` signal the webhook route sends.
 * Either way the end is confirmed by one short poll, and the workflow ends
 * exactly once: one completeOperation, which bills and publishes once under its
 * own effect guard, however many webhooks and polls saw the completion.
 */
export async function generateReportV1(
  operation: OperationWorkflowInput<GenerateReportInput>,
  progress: GenerateReportProgress,
  signalled: ReadonlyMap<string, number>,
): Promise<void> {
  const { workflowId } = workflowInfo();

  const { models, polling } = await reportSettings({ requested: operation.input.model });
  const { prompt, system } = operation.input;

  let submitted: { interactionId: string; model: string } | undefined;
  let lastError: OperationError | undefined;
  for (const [index, model] of models.entries()) {
    progress.model = model;
    progress.modelsTried.push(model);
    const { submitInteraction } = proxyActivities<Activities>({
      ...activityOptions.geminiCall,
      summary: `Submit background interaction to ${model} (model ${index + 1} of ${models.length})`,
    });
    try {
      const { interactionId } = await submitInteraction({
        operationId: operation.operationId,
        workflowId,
        tenantId: operation.tenantId,
        operationType: operation.operationType,
        model,
        ...(index > 0 ? { fallbackFrom: models[index - 1] } : {}),
        request: { prompt, ...(system !== undefined ? { system } : {}) },
      });
      submitted = { interactionId, model };
      break;
    } catch (error) {
      if (isCancellation(error)) throw error;
      const failure = applicationFailureOf(error);
      if (failure?.type === FailureType.GeminiRejected || failure?.type === FailureType.GeminiSafetyBlocked) {
        lastError = { type: OperationFailure.PromptRejected, detail: failure.message, retryable: false };
        break;
      }
      lastError = {
        type: OperationFailure.ProviderFailure,
        detail: `every model failed to accept the report; last: ${failure?.message ?? String(error)}`, retryable: true,
      };
    }
  }
  if (!submitted) {
    await finish(operation, workflowId, progress, { outcome: 'failed', error: lastError! });
    return;
  }

  progress.step = 'waiting';
  progress.interactionId = submitted.interactionId;
  // Time spent waiting, counted in timer lengths (an early wakeup counts in full: an upper bound).
  let waitedMs = 0;
  let delayMs = polling.initialMs;
  const signals = () => signalled.get(submitted.interactionId) ?? 0;
  // Signals a poll has answered; the ones after it wake the next poll.
  let consumed = 0;
  for (;;) {
    const wokenByWebhook = await condition(() => signals() > consumed, delayMs);
    const signalsBeforePoll = signals();
    waitedMs += delayMs;
    if (wokenByWebhook) progress.webhookWakeups += 1;
    progress.polls += 1;
    const { pollInteraction } = proxyActivities<Activities>({
      ...activityOptions.interactionPoll,
      summary: `Poll interaction ${submitted.interactionId} (poll ${progress.polls}, ${wokenByWebhook ? 'woken by webhook' : 'timer'})`,
    });
    try {
      const state = await pollInteraction({
        operationId: operation.operationId, workflowId, tenantId: operation.tenantId, operationType: operation.operationType,
        interactionId: submitted.interactionId, trigger: wokenByWebhook ? 'webhook' : 'poll',
      });
      progress.lastStatus = state.status;
      if (state.terminal) {
        if (state.status === 'completed') {
          const usage = state.usage ?? { promptTokens: 0, outputTokens: 0, totalTokens: 0 };
          const attempts = await listGeminiAttempts({ operationId: operation.operationId });
          await finish(operation, workflowId, progress, {
            outcome: 'succeeded',
            result: {
              text: state.text ?? '', model: state.model || submitted.model, usage, attempts,
              interactionId: submitted.interactionId, completedBy: wokenByWebhook ? 'webhook' : 'poll',
            },
            usage: { model: state.model || submitted.model, ...usage },
          });
        } else {
          await finish(operation, workflowId, progress, {
            outcome: 'failed',
            error: { type: OperationFailure.ProviderFailure, detail: `interaction ${state.status}: ${state.error ?? 'no detail'}`, retryable: true },
          });
        }
        return;
      }
    } catch (error) {
      if (isCancellation(error)) throw error;
      const failure = applicationFailureOf(error);
      if (failure?.nonRetryable) {
        // e.g. 404: the interaction is gone; waiting longer cannot bring it back.
        await finish(operation, workflowId, progress, {
          outcome: 'failed',
          error: { type: OperationFailure.ProviderFailure, detail: `reading the interaction failed: ${failure?.message ?? String(error)}`, retryable: true },
        });
        return;
      }
      // Transient: the next timer polls again.
    }
    // The signals this poll answered must not spin the loop; one that arrived
    // while it ran may announce the end the poll just missed, so it wakes the
    // next poll at once instead of waiting out the timer (up to maxMs). Runs
    // started before this change consumed every signal here; they keep doing so.
    consumed = patched('report-poll-consumes-earlier-signals-only') ? signalsBeforePoll : signals();
    if (waitedMs > polling.maxWaitMs) {
      await finish(operation, workflowId, progress, {
        outcome: 'failed',
        error: { type: OperationFailure.ProviderFailure, detail: `interaction ${submitted.interactionId} still ${progress.lastStatus ?? 'unknown'} after ${Math.round(polling.maxWaitMs / 60_000)} minutes`, retryable: true },
      });
      return;
    }
    delayMs = Math.min(delayMs * 2, polling.maxMs);
  }
}

async function finish(operation: OperationWorkflowInput, workflowId: string, progress: GenerateReportProgress, outcome: OperationOutcome): Promise<void> {
  progress.step = 'finishing';
  // Not cancellable: see generate-content.workflow.ts (scopes live in the worker only; no command changes).
  await CancellationScope.nonCancellable(() => completeOperation({
    operationId: operation.operationId,
    tenantId: operation.tenantId,
    operationType: operation.operationType,
    idempotencyKey: operation.idempotencyKey,
    workflowId,
    ...outcome,
  }));
  progress.step = 'done';
}

function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) return error.cause;
  return undefined;
}
