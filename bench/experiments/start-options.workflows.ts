/**
 * The two workflow shapes of bench/experiments/start-options.ts: the bare
 * one-activity workflow, and the same with the activity options the facade's
 * generate-content sets (heartbeat timeout, retry policy with non-retryable
 * types, a summary) and a summary-shaped result.
 */
import { proxyActivities } from '@temporalio/workflow';

export interface StartOptionsActivities {
  answer(prompt: string): Promise<{ text: string; attempts: { model: string; attempt: number; outcome: string }[] }>;
}

const plain = proxyActivities<StartOptionsActivities>({ startToCloseTimeout: '2 minutes' });

export async function plainWorkflow(prompt: string): Promise<string> {
  return (await plain.answer(prompt)).text;
}

// A heartbeat timeout of 1 s (the facade's is 15 s) so that its timer fires inside the measured window.
const dressed = proxyActivities<StartOptionsActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '1 second',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['A', 'B', 'C', 'D', 'E'] },
  summary: 'Gemini gemini-2.5-flash (model 1 of 2)',
});

export async function dressedWorkflow(prompt: string): Promise<{ status: string; model: string; totalTokens: number; attempts: number }> {
  const { attempts } = await dressed.answer(prompt);
  return { status: 'succeeded', model: 'gemini-2.5-flash', totalTokens: 42, attempts: attempts.length };
}
