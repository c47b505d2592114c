import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import type { OperationWorkflowInput } from '../workflows/definitions';
import type { OperationOutcome } from '../workflows/operation-outcome';
import { runEffect } from '../src/effects/guard';
import { findOperationType, resultIssues } from '../src/operations/registry';
import { FailureType } from '../workflows/failure-types';
import { PostgresOperationsRepository } from '../src/operations/repository';
import { enqueueEvent } from '../src/outbox/enqueue';
import { billOperation } from '../src/operations/bill';

export type CompleteOperationInput = Pick<
  OperationWorkflowInput,
  'operationId' | 'tenantId' | 'operationType' | 'idempotencyKey'
> & { workflowId: string } & OperationOutcome;

export interface CompleteOperationResult {
  status: 'succeeded' | 'failed' | 'canceled';
  eventId: string;
}

/**
 * The one atomic phase that finishes an operation: the result (or error) on the
 * operation row, exactly one usage-ledger entry, exactly one
 * operation.succeeded/failed/canceled event in the outbox, in one transaction under the
 * effect guard (runEffect). If the worker dies before COMMIT nothing of it
 * exists and the retried activity does it all; after COMMIT the retry returns
 * the stored result.
 *
 * Six statements on the happy path, each kept for a guarantee:
 * BEGIN and COMMIT (the row, the bill and the event commit together or not at
 * all), the effect row (the check and the lock that make a rerun a no-op), the
 * operation row (with its NOTIFY to `Prefer: wait`), the bill (usage_ledger's
 * own key), the event with its deliveries (the outbox's one statement). The
 * first three rooms own their tables, so their statements stay apart.
 */
export function createCompleteOperation(deps: { pool: pg.Pool; logger?: Logger; operations?: PostgresOperationsRepository }) {
  const operations = deps.operations ?? new PostgresOperationsRepository(deps.pool);
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
    const status = input.outcome;
    const eventType = `operation.${status}`;
    const eventId = `${input.operationId}:${eventType}`;
    const { result } = await runEffect(deps.pool, { operationId: input.operationId, step: 'complete', workflowId: input.workflowId }, {
      result: { status, eventId } satisfies CompleteOperationResult,
      apply: async (tx) => {
        const released =
          input.outcome === 'failed' &&
          input.error.retryable &&
          (findOperationType(input.operationType)?.releaseKeyOnExhaustedFailure ?? false);
        // No row: the key expired and was purged or reserved again while this
        // run finished. The work was done, so it is still billed and published
        // once (the effect row guards both); only the stale row update is moot.
        const now = new Date();
        const row = (await operations.complete(tx, {
          operationId: input.operationId,
          status,
          result: input.outcome === 'succeeded' ? input.result : null,
          error: input.outcome === 'succeeded' ? null : input.error,
          released,
        })) ?? { createdAt: now, completedAt: now };
        if (input.usage) {
          await billOperation(tx, { operationId: input.operationId, tenantId: input.tenantId, operationType: input.operationType, usage: input.usage });
        }
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
            createdAt: row.createdAt.toISOString(),
            completedAt: row.completedAt.toISOString(),
            result: input.outcome === 'succeeded' ? input.result : null,
            error: input.outcome === 'succeeded' ? null : input.error,
          },
        });
      },
    });
    deps.logger?.info(
      { correlationId: input.operationId, workflowId: input.workflowId, tenant: input.tenantId, idempotencyKey: input.idempotencyKey, status: result.status, eventId: result.eventId },
      `operation ${result.status}`,
    );
    return result;
  };
}
