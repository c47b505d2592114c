/**
 * Exit codes of the `onceflow` CLI; scripts may rely on them.
 * 0 ok · 1 failure (an error, a failed check, a watched operation that
 * failed) · 2 usage or configuration error · 3 not found · 4 timed out.
 */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  NotFound: 3,
  TimedOut: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Thrown by a command to stop with one line on stderr and a chosen exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
