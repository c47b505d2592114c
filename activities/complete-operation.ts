import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import type { OperationWorkflowInput } from '../workflows/definitions';
import type { OperationOutcome } from '../workflows/operation-outcome';
import { runEffect } from '../src/effects/guard';
import { findOperationType, resultIssues } from '../src/operations/registry';
import { FailureType } from '../workflows/failure-types';
import { OPERATION_FINISHED_CHANNEL } from '../src/operations/status';
import { enqueueEvent } from '../src/outbox/enqueue';
import { estimateCostMicros } from '../src/operations/pricing';
import { operationProblemOf } from '../src/http/problems';

export type CompleteOperationInput = Pick<
  OperationWorkflowInput,
  'operationId' | 'tenantId' | 'operationType' | 'idempotencyKey'
> & { workflowId: string } & OperationOutcome;

export interface CompleteOperationResult {
  status: 'succeeded' | 'failed';
  eventId: string;
}

/**
 * The one atomic phase that finishes an operation: the result (or error) on the
 * operation row, exactly one usage-ledger entry, exactly one
 * operation.succeeded/failed event in the outbox, in one transaction under the
 * effect guard. If the worker dies before COMMIT nothing of it exists and the
 * retried activity does it all; after COMMIT the retry returns the stored result.
 */
export function createCompleteOperation(deps: { pool: pg.Pool; logger?: Logger }) {
  return async function completeOperation(input: CompleteOperationInput): Promise<CompleteOperationResult> {
    // A result that breaks its type's declared schema is a bug in the workflow
    // that built it: refuse it before anything is written (no bill, no event),
    // loudly and for good, rather than store what every replay would then serve.
    const issues = input.outcome === 'succeeded' ? resultIssues(input.operationType, input.result) : [];
    if (issues.length > 0) {
      throw ApplicationFailure.create({
        type: FailureType.InvalidState,
        nonRetryable: true,
        message: `the ${input.operationType} result does not match its resultSchema: ${issues.join('; ')}`,
      });
    }
    const { result } = await runEffect(
      deps.pool,
      { operationId: input.operationId, step: 'complete', workflowId: input.workflowId },
      async (tx) => {
        const status = input.outcome;
        const released =
          input.outcome === 'failed' &&
          input.error.retryable &&
          (findOperationType(input.operationType)?.releaseKeyOnExhaustedFailure ?? false);
        const { rows } = await tx.query<{ created_at: Date; completed_at: Date }>(
          `UPDATE operations
              SET status = $2, result = $3, error = $4, error_status = $5, released = $6,
                  completed_at = now(), updated_at = now()
            WHERE operation_id = $1
            RETURNING created_at, completed_at`,
          [
            input.operationId,
            status,
            input.outcome === 'succeeded' ? JSON.stringify(input.result ?? null) : null,
            input.outcome === 'failed' ? JSON.stringify(input.error) : null,
            // The status a repeat answers with, kept on the row for the readers that show it (CLI).
            input.outcome === 'failed' ? operationProblemOf(input.error.type).status : null,
            released,
          ],
        );
        // No row: the key expired and was purged or reserved again while this
        // run finished. The work was done, so it is still billed and published
        // once (the effect row guards both); only the stale row update is moot.
        const row = rows[0] ?? { created_at: new Date(), completed_at: new Date() };
        if (input.usage) {
          await tx.query(
            `INSERT INTO usage_ledger
               (operation_id, tenant_id, operation_type, model, prompt_tokens, output_tokens, total_tokens, cost_micros)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (operation_id) DO NOTHING`,
            [
              input.operationId,
              input.tenantId,
              input.operationType,
              input.usage.model,
              input.usage.promptTokens,
              input.usage.outputTokens,
              input.usage.totalTokens,
              estimateCostMicros(input.usage),
            ],
          );
        }
        const eventType = `operation.${status}`;
        const eventId = `${input.operationId}:${eventType}`;
        await enqueueEvent(tx, {
          eventId,
          tenantId: input.tenantId,
          aggregateId: input.operationId,
          eventType,
          payload: {
            type: eventType,
            operationType: input.operationType,
            idempotencyKey: input.idempotencyKey,
            operationId: input.operationId,
            workflowId: input.workflowId,
            status,
            createdAt: row.created_at.toISOString(),
            completedAt: row.completed_at.toISOString(),
            result: input.outcome === 'succeeded' ? input.result : null,
            error: input.outcome === 'failed' ? input.error : null,
          },
        });
        await tx.query('SELECT pg_notify($1, $2)', [OPERATION_FINISHED_CHANNEL, input.operationId]);
        return { status, eventId };
      },
    );
    deps.logger?.info(
      { correlationId: input.operationId, workflowId: input.workflowId, tenant: input.tenantId, idempotencyKey: input.idempotencyKey, status: result.status, eventId: result.eventId },
      `operation ${result.status}`,
    );
    return result;
  };
}
