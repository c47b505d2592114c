/**
 * Types of the client's public surface. Inputs and results are derived from
 * the server's own zod schemas (src/operations/registry.ts): a schema change
 * there breaks callers' types here.
 */
import type { z } from 'zod';
import type { OperationResource as ServerOperationResource } from '../operations/resource';
import type { operationTypes, OperationTypeName } from '../operations/registry';

export type { OperationTypeName };

/** What a caller may send for an operation type (`z.input`: before defaults and transforms). */
export type OperationInput<T extends OperationTypeName> = z.input<(typeof operationTypes)[T]['inputSchema']>;

/** The `result` of a succeeded operation of type T, from the type's `resultSchema` in the registry. */
export type OperationResultOf<T extends OperationTypeName> = z.output<(typeof operationTypes)[T]['resultSchema']>;
export type { GenerateContentResult, GenerateReportResult } from '../operations/registry';

/** The operation resource of the contract, with `result` typed for the operation type. */
export type OperationResource<T extends OperationTypeName = OperationTypeName> = Omit<ServerOperationResource, 'result' | 'operationType'> & {
  operationType: T;
  result: OperationResultOf<T> | null;
};

/** Retry policy of one call. Every field has a default, given in its comment. */
export interface RetryOptions {
  /** Total HTTP attempts including the first. Default 6. */
  maxAttempts?: number;
  /** First backoff ceiling, in ms; attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs·2ⁿ)). Default 250. */
  baseDelayMs?: number;
  /** Largest backoff ceiling, in ms. Default 10000. */
  maxDelayMs?: number;
  /** Overall deadline of the call (all attempts and waits), in ms. Default 60000. */
  deadlineMs?: number;
  /** Timeout of one attempt, in ms, added to the `wait` seconds of the call. Default 30000. */
  attemptTimeoutMs?: number;
  /** Wait at least the server's Retry-After before the next attempt. Default true. */
  honorRetryAfter?: boolean;
}

export interface CallOptions {
  /** Overrides of the client's retry policy for this call. */
  retry?: RetryOptions;
  /** Cancels the call: the current attempt is aborted and no further attempt is made. */
  signal?: AbortSignal;
}

export interface StartOptions extends CallOptions {
  /**
   * The Idempotency-Key. Default: a fresh UUID for this call, reused on every
   * retry of it. Pass your own (e.g. derived from your order id) to make
   * repeats of the same business request across processes collapse too.
   */
  idempotencyKey?: string;
  /** `Prefer: wait=N`: ask the server to hold the answer up to N seconds for the final result. Default: no wait. */
  wait?: number;
  /**
   * For types that declare key fields (e.g. `draft-content`): send no
   * Idempotency-Key and let the server derive it from those fields, so every
   * caller that sends the same business fields gets the same operation.
   * Retries stay safe: each attempt derives the same key. Default false.
   */
  deriveKey?: boolean;
}

/** Filters and paging of `client.list()`; every field is optional. */
export interface ListOptions extends CallOptions {
  type?: OperationTypeName;
  status?: 'running' | 'succeeded' | 'failed' | 'canceled';
  /** Exclusive bounds on the creation time. */
  createdAfter?: Date;
  createdBefore?: Date;
  /** Page size, 1 to 100. Default 20 (the server's). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** One page of `GET /v1/operations`, newest first. */
export interface OperationPage {
  data: OperationResource[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A successful answer (200 or 202). */
export interface OperationResponse<T extends OperationTypeName = OperationTypeName> {
  /** 200: finished (or replayed); 202: accepted and still running. */
  status: 200 | 202;
  operation: OperationResource<T>;
  /** The key used on every attempt (for `deriveKey`, the one the server derived and returned). */
  idempotencyKey: string;
  /** `Idempotency-Expires`: when the key stops binding this operation. */
  expiresAt: Date | undefined;
  /** `Idempotent-Replayed: true`: answered from an earlier request with this key (a retry whose first attempt got through, or a repeat). */
  replayed: boolean;
  /** `Idempotency-First-Seen`: when the server first saw this key (on replays). */
  firstSeenAt: Date | undefined;
  /** `Preference-Applied`, e.g. `wait=10`. */
  preferenceApplied: string | undefined;
  /** HTTP attempts this call made. */
  attempts: number;
}

/** The answer to `cancel(type, key)` (POST /v1/operations/{type}/{key}/cancel). */
export interface CancelResponse<T extends OperationTypeName = OperationTypeName> {
  /**
   * 202: cancellation requested, the operation still `running` (it ends
   * `canceled`: follow it with `get`); 200: it was already final (succeeded,
   * failed or canceled) and nothing was done.
   */
  status: 200 | 202;
  operation: OperationResource<T>;
  /** `Idempotency-Expires`: until then the key replays the outcome (for a canceled one, 410 operation-canceled). */
  expiresAt: Date | undefined;
  /** HTTP attempts this call made. */
  attempts: number;
}

/** kebab-case → camelCase, at the type level: `generate-content` → `generateContent`. */
export type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** One typed method per operation type of the registry. */
export type OperationMethods = {
  [T in OperationTypeName as CamelCase<T>]: (input: OperationInput<T>, options?: StartOptions) => Promise<OperationResponse<T>>;
};
