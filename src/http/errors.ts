import { AppError } from '../errors';

/** Base URI of every problem `type` (RFC 9457). */
export const PROBLEM_BASE = 'https://onceflow.dev/problems/';

export interface ProblemOptions {
  status: number;
  /** Slug appended to PROBLEM_BASE, e.g. `operation-in-progress`. */
  type: string;
  title: string;
  detail: string;
  /** Extra members of the problem body (`idempotencyKey`, `operationType`, `issues`, `operation`). */
  extensions?: Record<string, unknown>;
  /** Response headers such as Retry-After or Location. */
  headers?: Record<string, string>;
  cause?: unknown;
}

/**
 * Thrown by route handlers (built through the constructors of
 * src/http/problems.ts) for every answer that is not a success. The one error
 * handler in app.ts turns it into an application/problem+json body.
 */
export class ProblemError extends AppError<{ status: number; type: string }> {
  override readonly name = 'ProblemError';
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(options: ProblemOptions) {
    super(`${options.status} ${options.type}: ${options.detail}`, { context: { status: options.status, type: options.type }, cause: options.cause });
    this.status = options.status;
    this.type = options.type;
    this.title = options.title;
    this.detail = options.detail;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }

  /** The same problem with more body members (existing ones win). */
  withExtensions(extensions: Record<string, unknown>): ProblemError {
    if (Object.keys(extensions).length === 0) return this;
    const { status, type, title, detail, headers, cause } = this;
    return new ProblemError({ status, type, title, detail, headers, cause, extensions: { ...extensions, ...this.extensions } });
  }

  body(): Record<string, unknown> {
    return { type: `${PROBLEM_BASE}${this.type}`, title: this.title, status: this.status, detail: this.detail, ...this.extensions };
  }
}

/** Thrown by the strict JSON body parser when the body is not acceptable JSON (before any schema); answered 400. */
export class InvalidJsonError extends AppError {
  override readonly name = 'InvalidJsonError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { context: {}, cause: options.cause });
  }
}
