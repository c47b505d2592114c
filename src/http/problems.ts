import { OperationFailure } from '../../workflows/failure-types';

/**
 * What each way an operation can fail means on the wire: the status and
 * title of its problem+json answer (the slug is the type itself). Workflows
 * say what happened (OperationFailure); only this table says what that means
 * to an HTTP client.
 */
export const operationProblems = {
  [OperationFailure.PromptRejected]: { status: 422, title: 'Prompt rejected by Gemini' },
  [OperationFailure.PromptBlocked]: { status: 422, title: 'Prompt blocked by Gemini safety filters' },
  [OperationFailure.ProviderFailure]: { status: 502, title: 'Gemini failed' },
  [OperationFailure.BudgetExceeded]: { status: 402, title: 'Budget exceeded' },
  [OperationFailure.OperationCanceled]: { status: 409, title: 'Operation canceled' },
  [OperationFailure.OperationAbandoned]: { status: 502, title: 'Operation did not finish' },
} as const satisfies Record<OperationFailure, { status: number; title: string }>;

/** The problem of a failure type; a type this version does not know (a newer writer's) answers 502. */
export function operationProblemOf(type: string): { status: number; title: string } {
  return (operationProblems as Record<string, { status: number; title: string }>)[type] ?? { status: 502, title: 'Operation failed' };
}
