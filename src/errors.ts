/**
 * The one base of Onceflow's own errors: an explicit `name` (stack traces and
 * logs survive minification and `instanceof` across bundles does not matter),
 * readonly `context` fields that a log line or a metric label can read without
 * parsing the message, and the standard `{ cause }` chain.
 *
 * Subclasses document *when* they are thrown; callers branch on the class (in
 * Node) or on a failure `type` (across the workflow boundary), never on text.
 */
export abstract class AppError<TContext extends Record<string, unknown> = Record<string, unknown>> extends Error {
  abstract override readonly name: string;
  readonly context: Readonly<TContext>;

  constructor(message: string, options: { context: TContext; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.context = Object.freeze({ ...options.context });
  }
}

/** The message of an unknown thrown value, for error messages that wrap it. */
export function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
