/**
 * The reference of bench arm 6: the least a Temporal user writes for one paid
 * Gemini call. One activity, no idempotency records, no bill, no outbox.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BareActivities } from './activities';

const { bareGenerate } = proxyActivities<BareActivities>({ startToCloseTimeout: '2 minutes' });

export async function bareGeminiWorkflow(prompt: string): Promise<string> {
  return bareGenerate(prompt);
}
