/**
 * The Onceflow client: one method per operation type, and retries that are
 * safe because every attempt of a call carries the same Idempotency-Key. A
 * request whose answer was lost (connection reset after the server accepted
 * it) is retried with that key and answered from the first run, never run twice.
 */
import { randomUUID } from 'node:crypto';
import { operationTypeNames, type OperationTypeName } from '../operations/registry';
import {
  OnceflowAbortError,
  OnceflowDeadlineError,
  OnceflowError,
  OnceflowNetworkError,
  OnceflowProblemError,
  type ProblemBody,
} from './errors';
import { isRetryableStatus, nextDelayMs, parseRetryAfterMs, resolveRetryPolicy } from './retry';
import type {
  CallOptions,
  CancelResponse,
  ListOptions,
  OperationInput,
  OperationPage,
  OperationMethods,
  OperationResource,
  OperationResponse,
  RetryOptions,
  StartOptions,
} from './types';

export interface OnceflowClientOptions {
  /** Where the facade listens, e.g. `http://localhost:3000`. */
  baseUrl: string;
  /** The tenant's API key, sent as `Authorization: Bearer`. */
  apiKey: string;
  /** Default retry policy of every call; see RetryOptions for each default. */
  retry?: RetryOptions;
  /** Default: the global fetch (Node's undici). Inject one for proxies or tests. */
  fetch?: typeof fetch;
  /** Waits between attempts; default a timer that the call's signal cancels. Tests inject one to observe the waits. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Epoch ms, for the deadline and HTTP-date Retry-After; default Date.now. */
  now?: () => number;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Default `onceflow-client`. */
  userAgent?: string;
}

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  idempotencyKey?: string;
  waitSeconds?: number;
}

interface Answer {
  status: number;
  headers: Headers;
  json: unknown;
  attempts: number;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

export class OnceflowClient {
  /** One method per operation type, e.g. `client.operations.generateContent({ prompt })`. */
  readonly operations: OperationMethods;
  private readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly retry: RetryOptions | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly userAgent: string;

  constructor(options: OnceflowClientOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new TypeError(`baseUrl must be an http(s) URL, got "${options.baseUrl}"`);
    if (!options.apiKey) throw new TypeError('apiKey is required');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.retry = options.retry;
    resolveRetryPolicy(options.retry); // fail at construction, not at the first call
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? defaultSleep;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.userAgent = options.userAgent ?? 'onceflow-client';
    const methods: Record<string, unknown> = {};
    for (const type of operationTypeNames) {
      methods[camelCase(type)] = (input: unknown, callOptions?: StartOptions) => this.start(type, input as never, callOptions);
    }
    this.operations = methods as OperationMethods;
  }

  /**
   * Starts (or replays) an operation. Resolves with 202 (accepted, running)
   * or 200 (finished within `wait`, or a replay of a success). Throws
   * OnceflowProblemError for final answers and for retryable ones that
   * outlasted the attempts; OnceflowNetworkError / OnceflowDeadlineError /
   * OnceflowAbortError otherwise.
   */
  async start<T extends OperationTypeName>(type: T, input: OperationInput<T>, options: StartOptions = {}): Promise<OperationResponse<T>> {
    if (options.deriveKey && options.idempotencyKey !== undefined) throw new TypeError('pass either idempotencyKey or deriveKey, not both');
    // Derived keys: no header; the server derives the same key on every attempt.
    const sentKey = options.deriveKey ? undefined : (options.idempotencyKey ?? randomUUID());
    if (options.wait !== undefined && !(Number.isInteger(options.wait) && options.wait >= 0)) {
      throw new TypeError(`wait must be a whole number of seconds ≥ 0, got ${options.wait}`);
    }
    const answer = await this.execute(
      {
        method: 'POST',
        path: `/v1/operations/${encodeURIComponent(type)}`,
        body: JSON.stringify(input),
        idempotencyKey: sentKey,
        waitSeconds: options.wait,
      },
      options,
    );
    return {
      status: answer.status === 202 ? 202 : 200,
      operation: answer.json as OperationResource<T>,
      idempotencyKey: sentKey ?? answer.headers.get('idempotency-key') ?? (answer.json as OperationResource<T>).idempotencyKey,
      expiresAt: epochMsHeader(answer.headers, 'idempotency-expires'),
      replayed: answer.headers.get('idempotent-replayed') === 'true',
      firstSeenAt: firstSeen(answer.headers),
      preferenceApplied: answer.headers.get('preference-applied') ?? undefined,
      attempts: answer.attempts,
    };
  }

  /** Reads an operation by its key. Throws OnceflowProblemError 404 for unknown, expired or another tenant's keys. */
  async get<T extends OperationTypeName>(type: T, idempotencyKey: string, options: CallOptions = {}): Promise<OperationResource<T>> {
    const answer = await this.execute(
      { method: 'GET', path: `/v1/operations/${encodeURIComponent(type)}/${encodeURIComponent(idempotencyKey)}` },
      options,
    );
    return answer.json as OperationResource<T>;
  }

  /**
   * Asks a running operation to stop (`POST /v1/operations/{type}/{key}/cancel`).
   * Safe to retry and to repeat: a second cancel, or one of a finished
   * operation, does nothing (status 200 with the operation as it is). Throws
   * OnceflowProblemError 404 for unknown, expired or another tenant's keys.
   */
  async cancel<T extends OperationTypeName>(type: T, idempotencyKey: string, options: CallOptions = {}): Promise<CancelResponse<T>> {
    const answer = await this.execute(
      { method: 'POST', path: `/v1/operations/${encodeURIComponent(type)}/${encodeURIComponent(idempotencyKey)}/cancel` },
      options,
    );
    return {
      status: answer.status === 202 ? 202 : 200,
      operation: answer.json as OperationResource<T>,
      expiresAt: epochMsHeader(answer.headers, 'idempotency-expires'),
      attempts: answer.attempts,
    };
  }

  /** One page of the caller's operations, newest first (`GET /v1/operations`). */
  async list(options: ListOptions = {}): Promise<OperationPage> {
    const query = new URLSearchParams();
    if (options.type) query.set('type', options.type);
    if (options.status) query.set('status', options.status);
    if (options.createdAfter) query.set('createdAfter', options.createdAfter.toISOString());
    if (options.createdBefore) query.set('createdBefore', options.createdBefore.toISOString());
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.cursor) query.set('cursor', options.cursor);
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    const answer = await this.execute({ method: 'GET', path: `/v1/operations${suffix}` }, options);
    return answer.json as OperationPage;
  }

  /** Every operation matching the filters, page after page, newest first. */
  async *listAll(options: Omit<ListOptions, 'cursor'> = {}): AsyncGenerator<OperationResource> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ ...options, cursor });
      yield* page.data;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  private async execute(spec: RequestSpec, options: CallOptions): Promise<Answer> {
    const policy = resolveRetryPolicy(this.retry, options.retry);
    const deadlineAtMs = this.now() + policy.deadlineMs;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: 'application/json, application/problem+json',
      'user-agent': this.userAgent,
    };
    if (spec.body !== undefined) headers['content-type'] = 'application/json';
    // The same key on every attempt: this is what makes a retry safe.
    if (spec.idempotencyKey !== undefined) headers['idempotency-key'] = spec.idempotencyKey;
    if (spec.waitSeconds) headers.prefer = `wait=${spec.waitSeconds}`;
    const context = (attempts: number) => ({ idempotencyKey: spec.idempotencyKey, attempts });

    let lastError: OnceflowError | undefined;
    for (let attempt = 1; ; attempt++) {
      if (options.signal?.aborted) throw new OnceflowAbortError('the call was aborted by its signal', context(attempt - 1), { cause: options.signal.reason });
      const remainingMs = deadlineAtMs - this.now();
      if (remainingMs <= 0) {
        throw new OnceflowDeadlineError(`no answer within the ${policy.deadlineMs} ms deadline`, context(attempt - 1), { cause: lastError });
      }
      const attemptBudgetMs = policy.attemptTimeoutMs + (spec.waitSeconds ?? 0) * 1000;
      const cutByDeadline = remainingMs < attemptBudgetMs;
      const timeout = AbortSignal.timeout(Math.max(1, Math.min(remainingMs, attemptBudgetMs)));
      const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

      let retryAfterMs: number | undefined;
      try {
        const response = await this.fetchImpl(`${this.baseUrl}${spec.path}`, { method: spec.method, headers, body: spec.body, signal });
        // Read the body under the same signal: a reset mid-body is a lost answer like any other.
        const text = await response.text();
        if (response.ok) return { status: response.status, headers: response.headers, json: parseJson(text, spec, context(attempt)), attempts: attempt };
        retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'), this.now());
        const problem = new OnceflowProblemError(
          { status: response.status, body: parseProblem(text, response.status), replayed: response.headers.get('idempotent-replayed') === 'true', firstSeenAt: firstSeen(response.headers), retryAfterMs },
          context(attempt),
        );
        if (!isRetryableStatus(response.status)) throw problem;
        lastError = problem;
      } catch (error) {
        if (error instanceof OnceflowError) throw error;
        if (options.signal?.aborted) throw new OnceflowAbortError('the call was aborted by its signal', context(attempt), { cause: options.signal.reason });
        if (timeout.aborted && cutByDeadline) {
          throw new OnceflowDeadlineError(`no answer within the ${policy.deadlineMs} ms deadline`, context(attempt), { cause: error });
        }
        // Refused, reset, or this attempt timed out: the server may have
        // accepted the request. Retrying with the same key cannot start a
        // second operation; it replays the first or reports it in progress.
        lastError = new OnceflowNetworkError(`${spec.method} ${spec.path}: ${describeNetworkError(error)}`, context(attempt), { cause: error });
      }

      if (attempt >= policy.maxAttempts) throw lastError;
      const delayMs = nextDelayMs({ retryIndex: attempt - 1, policy, retryAfterMs, random: this.random });
      // Sleeping past the deadline only to give up: report the last real answer now.
      if (this.now() + delayMs >= deadlineAtMs) throw lastError;
      try {
        await this.sleep(delayMs, options.signal);
      } catch (cause) {
        throw new OnceflowAbortError('the call was aborted by its signal', context(attempt), { cause });
      }
    }
  }
}

function firstSeen(headers: Headers): Date | undefined {
  return epochMsHeader(headers, 'idempotency-first-seen');
}

function epochMsHeader(headers: Headers, name: string): Date | undefined {
  const raw = headers.get(name);
  if (raw === null || !/^\d+$/.test(raw)) return undefined;
  return new Date(Number(raw));
}

function parseJson(text: string, spec: RequestSpec, context: { idempotencyKey?: string; attempts: number }): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new OnceflowError(`${spec.method} ${spec.path}: the success answer is not JSON (${text.slice(0, 80)})`, context, { cause });
  }
}

/** A problem+json body; anything else (a proxy's HTML 503) becomes a minimal problem. */
function parseProblem(text: string, status: number): ProblemBody {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as ProblemBody;
  } catch {
    // not JSON: fall through
  }
  return { type: 'about:blank', status, title: `HTTP ${status}`, detail: text.slice(0, 200) };
}

function describeNetworkError(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'the attempt timed out';
  const cause = e?.cause;
  if (cause?.code) return `${e.message ?? 'network error'} (${cause.code}${cause.message ? `: ${cause.message}` : ''})`;
  return e?.message ?? String(error);
}

