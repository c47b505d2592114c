import { CommanderError } from 'commander';
import { AppError } from '../errors';

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
export class CliError extends AppError<{ exitCode: ExitCode }> {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, { context: { exitCode }, cause: options?.cause });
  }
}

/**
 * The exit code for an error that ended the program. Commander's own errors
 * are usage errors (2), except help and --version (0); a CliError carries its
 * code; anything else is a failure (1), never "usage": a script that sees 2
 * retries with other arguments, which cannot fix a crash.
 */
export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (error instanceof CliError) return error.exitCode;
  return ExitCode.Failure;
}
