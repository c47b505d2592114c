import type { Client } from '@temporalio/client';
import { searchAttributes, type OperationWorkflowInput } from '../../workflows/definitions';
import type { OperationsRepository, OperationRecord } from './repository';
import { AppError, messageOf } from '../errors';
import { modelChainFor } from './model-chain';
import { findOperationType } from './registry';

/**
 * Thrown when Temporal did not accept the start (unreachable, deadline passed,
 * or the previous run under the key has not closed yet); the row stays
 * `reserved` and the next request or the reconciler retries. The facade answers 503.
 */
export class WorkflowStartError extends AppError<{ workflowId: string }> {
  override readonly name = 'WorkflowStartError';
  readonly workflowId: string;
  constructor(workflowId: string, options: { cause: unknown }) {
    super(`could not start workflow ${workflowId}: ${messageOf(options.cause)}`, { context: { workflowId }, cause: options.cause });
    this.workflowId = workflowId;
  }
}

/** Thrown when a row names an operation type this process does not register (a newer API's row, or a bug). */
export class UnknownOperationTypeError extends AppError<{ operationType: string }> {
  override readonly name = 'UnknownOperationTypeError';
  constructor(operationType: string) {
    super(`operation type ${operationType} is not registered`, { context: { operationType } });
  }
}

export interface OperationStarterOptions {
  temporal: Client;
  store: OperationsRepository;
  taskQueue: string;
  /** GEMINI_MODELS: the fallback chain, primary first; resolved per operation into the workflow input. */
  modelChain: readonly string[];
  /** Longest a start may take before it counts as failed. Default 5000 ms. */
  startTimeoutMs?: number;
}

/**
 * Starts (or attaches to) the workflow of a reserved operation. Safe to call
 * any number of times for one row, from any process: the workflow ID is
 * derived from the key and the conflict policy attaches to a running execution.
 */
export function createOperationStarter(options: OperationStarterOptions) {
  return async function startOperation(record: OperationRecord): Promise<string> {
    const definition = findOperationType(record.operationType);
    if (!definition) throw new UnknownOperationTypeError(record.operationType);
    const input: OperationWorkflowInput = {
      operationId: record.operationId,
      tenantId: record.tenantId,
      operationType: record.operationType,
      idempotencyKey: record.idempotencyKey,
      input: record.input,
      models: modelChainFor((record.input as { model?: string } | null)?.model, options.modelChain),
    };
    const start = () =>
      // Bounded: with Temporal down the SDK would retry for long; a prompt 503 lets the client retry instead.
      options.temporal.connection.withDeadline(Date.now() + (options.startTimeoutMs ?? 5_000), () =>
        options.temporal.workflow.start(definition.workflowType, {
          workflowId: record.workflowId,
          taskQueue: options.taskQueue,
          args: [input],
          // A repeat (or a retried start after a crash) attaches to the running
          // execution instead of failing or starting a second one.
          workflowIdConflictPolicy: 'USE_EXISTING',
          // A closed execution under this ID belongs to an expired key or a
          // failure that released it; the new reservation may start a new run.
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          // No run outlives its key: after expiry the row may be purged and the
          // key reused, so an older run must be gone by then.
          workflowExecutionTimeout: Math.max(1_000, record.expiresAt.getTime() - Date.now()),
          typedSearchAttributes: [
            { key: searchAttributes.tenant, value: record.tenantId },
            { key: searchAttributes.operationType, value: record.operationType },
            { key: searchAttributes.idempotencyKey, value: record.idempotencyKey },
          ],
          // Temporal documents limits on the summary and details (400 bytes and
          // 20 KB, counted on the encoded, possibly encrypted payload); a server
          // that enforces them refuses the start, on every retry, with the key
          // left reserved. A 255-character key, a 64-character tenant and a
          // 100-character model made a 460-byte line. Only ids go here, never
          // the prompt: the UI lists summaries to anyone who can open it.
          staticSummary: fitUtf8(`${definition.summary(record.input as never)} · tenant ${record.tenantId} · key ${record.idempotencyKey}`, MAX_SUMMARY_BYTES),
          staticDetails: fitUtf8(
            [
              `**Onceflow operation** \`${record.operationType}\``,
              `- tenant: \`${record.tenantId}\``,
              `- idempotency key: \`${record.idempotencyKey}\``,
              `- operation id: \`${record.operationId}\``,
              `- payload fingerprint: \`${record.fingerprint.slice(0, 16)}…\``,
              `- first seen: ${new Date(record.firstSeenMs).toISOString()}`,
            ].join('\n'),
            MAX_DETAILS_BYTES,
          ),
        }),
      );
    let runId: string;
    try {
      runId = (await start()).firstExecutionRunId;
      if (record.previousRunId && runId === record.previousRunId) {
        // The conflict policy attached us to the previous operation's run: it
        // has finished its work (that is how the key was released) but has not
        // closed yet. Wait for it to close, then start the new run.
        await waitForClose(options.temporal, record.workflowId, runId, PREVIOUS_RUN_CLOSE_WAIT_MS);
        runId = (await start()).firstExecutionRunId;
        if (runId === record.previousRunId) throw new Error('the previous run under this key has not closed yet');
      }
    } catch (cause) {
      throw new WorkflowStartError(record.workflowId, { cause });
    }
    await options.store.markStarted(record.operationId, runId);
    return runId;
  };
}

/**
 * Byte budgets of the static summary and details, well under the limits
 * Temporal documents (400 B and 20 KB; the 1.32 dev server accepted 30 KB of
 * either when measured, Temporal Cloud enforces them): the limit counts the
 * encoded payload, and payload encryption adds its metadata, nonce and tag
 * (about 120 bytes) to the text.
 */
export const MAX_SUMMARY_BYTES = 200;
export const MAX_DETAILS_BYTES = 4_000;

/** `text` cut to at most `maxBytes` of UTF-8 at a character boundary, with `…` when cut. */
export function fitUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let cut = '';
  let bytes = 0;
  const budget = maxBytes - Buffer.byteLength('…', 'utf8');
  for (const ch of text) {
    const size = Buffer.byteLength(ch, 'utf8');
    if (bytes + size > budget) break;
    cut += ch;
    bytes += size;
  }
  return `${cut}…`;
}

/** A released run closes right after its last activity; this is long enough for that, short enough for a request. */
const PREVIOUS_RUN_CLOSE_WAIT_MS = 3_000;

async function waitForClose(temporal: Client, workflowId: string, runId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { status } = await temporal.workflow.getHandle(workflowId, runId).describe();
    if (status.name !== 'RUNNING') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export type StartOperation = ReturnType<typeof createOperationStarter>;
