/** Thrown when the idempotency store cannot be reached or fails; the facade answers 503 (a retry is safe). */
export class IdempotencyStoreError extends Error {
  override readonly name = 'IdempotencyStoreError';
  constructor(readonly operation: string, options: { cause: unknown }) {
    super(`idempotency store ${operation} failed: ${(options.cause as Error)?.message ?? String(options.cause)}`, options);
  }
}
