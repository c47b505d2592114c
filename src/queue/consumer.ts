/**
 * The broker-neutral half of the queue door: what one message means and what
 * must happen to it. An adapter (src/queue/adapters/) turns its broker's
 * deliveries into `QueueMessage`s and carries out the `Disposition` this
 * returns; a second broker is one more adapter file.
 *
 * The contract with the adapter: acknowledge only after this resolved with
 * `ack` (the operation is reserved in PostgreSQL and its workflow started in
 * Temporal) or after the dead letter is safely stored by the broker. If the
 * consumer dies anywhere before the ack, the broker delivers the message
 * again, and the same key finds the same operation: nothing runs twice.
 */
import { IdempotencyStoreError } from '../idempotency/errors';
import { countDoorResult, type DoorMetrics } from '../doors/metrics';
import { EntryPoint, startOperationFromDoor, type DoorDeps, type DoorResult } from '../doors/start-operation';
import { parseStrictJson } from '../http/strict-json';
import type { Logger } from '../observability/logger';
import type { QueueMetrics } from './metrics';

/** Header names a message carries (AMQP headers, Kafka record headers, SQS message attributes, …). */
export const QueueHeaders = {
  tenant: 'onceflow-tenant',
  idempotencyKey: 'idempotency-key',
  /** Set on dead letters: the problem (RFC 9457 JSON) that sent the message there. */
  problem: 'onceflow-problem',
} as const;

export interface QueueMessage {
  /** `{"operationType": "...", "input": {...}}` as UTF-8 JSON. */
  body: Buffer;
  headers: Readonly<Record<string, string | undefined>>;
  /** The broker says it delivered this message before (RabbitMQ's redelivered flag, SQS's receive count > 1, …). */
  redelivered: boolean;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [member: string]: unknown;
}

export type Disposition =
  /** The operation is reserved and started (now or by an earlier delivery): acknowledge. */
  | { kind: 'ack'; result: DoorResult & { kind: 'started' | 'existing' } }
  /** Retrying cannot help: store the message with its problem in the dead-letter queue, then acknowledge. */
  | { kind: 'dead-letter'; problem: Problem }
  /** PostgreSQL or Temporal failed: nothing was decided; give it back to the broker to deliver again later. */
  | { kind: 'retry'; error: Error };

export interface QueueConsumerDeps {
  door: DoorDeps;
  logger: Logger;
  doorMetrics: DoorMetrics;
  queueMetrics: QueueMetrics;
  /** Queue name, for the metrics label. */
  queue: string;
}

const PROBLEM_BASE = 'https://onceflow.dev/problems/';
const problem = (status: number, type: string, title: string, detail: string, extensions: Record<string, unknown> = {}): Problem => ({
  type: `${PROBLEM_BASE}${type}`,
  title,
  status,
  detail,
  ...extensions,
});

/** Decides one message. Never throws: a failure of a dependency is a `retry`. */
export async function handleQueueMessage(deps: QueueConsumerDeps, message: QueueMessage): Promise<Disposition> {
  if (message.redelivered) deps.queueMetrics.redeliveries.inc({ queue: deps.queue });
  const disposition = await decide(deps, message);
  if (disposition.kind === 'dead-letter') {
    deps.queueMetrics.deadLetters.inc({ queue: deps.queue, problem: disposition.problem.type.slice(PROBLEM_BASE.length) });
    deps.logger.warn({ problem: disposition.problem.type, detail: disposition.problem.detail, redelivered: message.redelivered }, 'queue message dead-lettered');
  } else if (disposition.kind === 'retry') {
    deps.queueMetrics.retries.inc({ queue: deps.queue });
    deps.logger.warn({ err: disposition.error.message }, 'queue message returned to the broker: a dependency failed');
  }
  return disposition;
}

async function decide(deps: QueueConsumerDeps, message: QueueMessage): Promise<Disposition> {
  let body: unknown;
  try {
    body = parseStrictJson(message.body);
  } catch (error) {
    return { kind: 'dead-letter', problem: problem(400, 'invalid-request', 'Invalid message body', `the body is not acceptable JSON: ${(error as Error).message}`, { issues: [] }) };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || typeof (body as { operationType?: unknown }).operationType !== 'string' || !('input' in body)) {
    return { kind: 'dead-letter', problem: problem(400, 'invalid-request', 'Invalid message body', 'the body must be {"operationType": "<type>", "input": {...}}', { issues: [] }) };
  }
  const { operationType, input } = body as { operationType: string; input: unknown };
  const tenantId = message.headers[QueueHeaders.tenant];
  if (!tenantId) {
    return { kind: 'dead-letter', problem: problem(400, 'tenant-missing', 'Tenant missing', `a message names its tenant in the ${QueueHeaders.tenant} header`, { operationType }) };
  }
  // Absent: derived from the type's key fields (CONTRACT v1.1) when it declares any, else refused.
  const key = message.headers[QueueHeaders.idempotencyKey];
  let result: DoorResult;
  try {
    result = await startOperationFromDoor(deps.door, { tenantId, type: operationType, key, input, entryPoint: EntryPoint.Queue });
  } catch (error) {
    if (isUnknownTenant(error)) {
      return { kind: 'dead-letter', problem: problem(400, 'tenant-unknown', 'Unknown tenant', `no tenant "${tenantId}"`, { operationType, idempotencyKey: key }) };
    }
    deps.doorMetrics.requests.inc({ tenant: tenantId, operation_type: operationType, outcome: 'unavailable', entry_point: EntryPoint.Queue });
    return { kind: 'retry', error: error as Error };
  }
  countDoorResult(deps.doorMetrics, EntryPoint.Queue, tenantId, operationType, result);
  const context = { operationType, ...('key' in result ? { idempotencyKey: result.key } : key ? { idempotencyKey: key } : {}) };
  switch (result.kind) {
    case 'started':
    case 'existing':
      deps.logger.info({ correlationId: result.operation.operationId, tenant: tenantId, ...context, outcome: result.kind, redelivered: message.redelivered }, `queue message: ${result.kind}`);
      return { kind: 'ack', result };
    case 'key-reused':
      return { kind: 'dead-letter', problem: problem(422, 'idempotency-key-reused', 'Idempotency-Key reused with a different payload', 'this key was first used with a different input; use a new key for a new request', context) };
    case 'invalid-input':
      return { kind: 'dead-letter', problem: problem(400, 'invalid-request', 'Invalid request', 'the input does not match the operation type’s schema; nothing was reserved', { ...context, issues: result.issues }) };
    case 'key-missing':
      return { kind: 'dead-letter', problem: problem(400, 'idempotency-key-missing', 'Idempotency-Key missing', `a message carries its key in the ${QueueHeaders.idempotencyKey} header (types with key fields derive it)`, context) };
    case 'invalid-key':
      return { kind: 'dead-letter', problem: problem(400, 'idempotency-key-invalid', 'Idempotency-Key invalid', result.detail, context) };
    case 'unknown-type':
      return { kind: 'dead-letter', problem: problem(404, 'unknown-operation-type', 'Unknown operation type', `"${result.type}" is not an operation type; known types: ${result.knownTypes.join(', ')}`, context) };
  }
}

/** A reservation refused by the tenants foreign key: the tenant does not exist, and never will for this message. */
function isUnknownTenant(error: unknown): boolean {
  const cause = error instanceof IdempotencyStoreError ? (error.cause as { code?: string; constraint?: string } | undefined) : undefined;
  return cause?.code === '23503';
}
