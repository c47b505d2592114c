/**
 * Thrown when the local stack cannot start. `message` is the one line shown to
 * the user; `hint` says how to fix it. Never printed with a stack trace.
 */
export class LocalStackError extends Error {
  override readonly name = 'LocalStackError';
  constructor(
    message: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
