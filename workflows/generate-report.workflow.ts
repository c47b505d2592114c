import { ActivityFailure, ApplicationFailure, CancellationScope, condition, isCancellation, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { GenerateReportInput } from '../src/operations/registry';
import { activityOptions } from './activity-options';
import { canceledOutcome } from './cancellation';
import {
  generateReportProgressQuery,
  interactionEndedSignal,
  type GenerateReportProgress,
  type OperationWorkflowInput,
} from './definitions';
import { FailureType, OperationFailure, operationEndingFailures } from './failure-types';
import { generateReportV1 } from './generate-report.v1';
import { reportSucceededOutcome, type OperationError, type OperationOutcome } from './operation-outcome';

/**
 * Local activities, run by the worker inside the workflow task instead of as
 * tasks of their own through the server. reportSettings only reads the
 * worker's configuration. completeOperation writes outcome, bill and event in
 * ONE transaction under its effect guard: a local activity rerun (the worker
 * died before its workflow task completed) finds the committed effect and
 * returns it, so nothing is billed or published twice (see generate-content).
 * A completed report is finished by the poll that reads its end
 * (finishOnSuccess, see finishCompleted in activities/gemini-interactions.ts);
 * this local activity finishes the rest: failures, cancels, a completed
 * report whose in-poll finish failed, and runs recorded before that.
 */
const { completeOperation } = proxyLocalActivities<Activities>(activityOptions.databaseWrite);
const { reportSettings } = proxyLocalActivities<Activities>(activityOptions.quickRead);
/** Only when the completed poll came without the attempts (a run whose poll was recorded before it returned them), and when cancelled. */
const { listGeminiAttempts } = proxyActivities<Activities>(activityOptions.quickRead);
const { cancelInteraction } = proxyActivities<Activities>(activityOptions.interactionCancel);

/**
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
 *
 * A completed report costs one local activity (reportSettings), the
 * submission, one timer and the poll that reads the end and finishes it: 23
 * history events when a timer woke that poll, 24 when the webhook did (one
 * finishing marker more in both before the poll finished it).
 */
export async function generateReportWorkflow(operation: OperationWorkflowInput<GenerateReportInput>): Promise<void> {
  const progress: GenerateReportProgress = {
    step: 'submitting', model: null, interactionId: null, modelsTried: [], polls: 0, webhookWakeups: 0, lastStatus: null,
  };
  setHandler(generateReportProgressQuery, () => progress);
  // Webhook signals per interaction id, counted: a signal may arrive before the
  // submission's result is in this workflow's history, or while a poll runs.
  const signalled = new Map<string, number>();
  setHandler(interactionEndedSignal, ({ interactionId }) => {
    signalled.set(interactionId, (signalled.get(interactionId) ?? 0) + 1);
  });
  try {
    // Runs started before the chain travelled in the input keep their recorded shape.
    const models = operation.models;
    if (models === undefined) return await generateReportV1(operation, progress, signalled);
    return await generateReport(operation, models, progress, signalled);
  } catch (error) {
    if (!isCancellation(error)) throw error;
    await finishCanceled(operation, progress);
    // Rethrown: the run closes as Canceled in Temporal, as its operation did.
    throw error;
  }
}

/**
 * Cancelled (POST …/cancel). A submitted interaction is stopped at Gemini
 * first (where it is still running), which also records the tokens Gemini
 * reports for it; then the outcome, the bill for what was paid and the one
 * operation.canceled event are written by completeOperation under its effect
 * guard, all shielded from the cancellation that brought the run here. A
 * cancel Gemini keeps refusing does not keep the operation open.
 */
async function finishCanceled(operation: OperationWorkflowInput<GenerateReportInput>, progress: GenerateReportProgress): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    const { interactionId } = progress;
    progress.step = 'finishing';
    let detail = 'canceled on request before it finished';
    if (interactionId !== null) {
      try {
        const state = await cancelInteraction({ operationId: operation.operationId, interactionId });
        progress.lastStatus = state.status;
        detail = `canceled on request; the Gemini interaction ${interactionId} is ${state.status}`;
      } catch (error) {
        detail = `canceled on request; stopping the Gemini interaction ${interactionId} failed: ${applicationFailureOf(error)?.message ?? String(error)}`;
      }
    }
    const attempts = await listGeminiAttempts({ operationId: operation.operationId });
    await finish(operation, workflowInfo().workflowId, progress, canceledOutcome(attempts, detail, progress.model ?? operation.models?.[0] ?? operation.input.model ?? 'none'));
  });
}

async function generateReport(
  operation: OperationWorkflowInput<GenerateReportInput>,
  models: string[],
  progress: GenerateReportProgress,
  signalled: Map<string, number>,
): Promise<void> {
  const { workflowId } = workflowInfo();
  const { polling } = await reportSettings({ requested: operation.input.model });
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
      const ending = failure && operationEndingFailures[failure.type as FailureType];
      if (ending) {
        lastError = { ...ending, detail: failure.message };
        break;
      }
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
        finishOnSuccess: { idempotencyKey: operation.idempotencyKey, submittedModel: submitted.model },
      });
      progress.lastStatus = state.status;
      if (state.terminal) {
        if (state.status === 'completed') {
          // Runs recorded before the poll finished a completed report (no
          // `finished` in their recorded result), and a poll whose finish
          // failed, finish here.
          if (state.finished) {
            progress.step = 'done';
          } else {
            const attempts = state.attempts ?? await listGeminiAttempts({ operationId: operation.operationId });
            await finish(operation, workflowId, progress, reportSucceededOutcome({
              text: state.text, model: state.model || submitted.model, usage: state.usage, attempts,
              interactionId: submitted.interactionId, completedBy: wokenByWebhook ? 'webhook' : 'poll',
            }));
          }
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
    // next poll at once instead of waiting out the timer (up to maxMs).
    consumed = signalsBeforePoll;
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
