import { AppError, messageOf } from '../errors';

/**
 * Thrown by the operations repository when PostgreSQL cannot be reached or
 * refuses a statement; the facade answers 503 (a retry with the same key is
 * safe: nothing or the whole reservation was committed).
 */
export class IdempotencyStoreError extends AppError<{ operation: string }> {
  override readonly name = 'IdempotencyStoreError';
  /** The repository method that failed; the `operation` label of onceflow_idempotency_store_errors_total. */
  readonly operation: string;
  constructor(operation: string, options: { cause: unknown }) {
    super(`idempotency store ${operation} failed: ${messageOf(options.cause)}`, { context: { operation }, cause: options.cause });
    this.operation = operation;
  }
}

/**
 * Thrown when a stored key names a fingerprint version this process does not
 * know: a newer API version reserved it. Answered 500 (a deploy mismatch, not
 * the caller's fault) rather than a false 422.
 */
export class UnknownFingerprintVersionError extends AppError<{ version: number }> {
  override readonly name = 'UnknownFingerprintVersionError';
  constructor(version: number) {
    super(`fingerprint version ${version} is not known to this process`, { context: { version } });
  }
}
