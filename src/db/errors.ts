import { AppError, messageOf } from '../errors';

/** Thrown when a migration fails; the failed migration's changes are rolled back. */
export class MigrationError extends AppError<{ version: number; file: string }> {
  override readonly name = 'MigrationError';
  constructor(
    readonly version: number,
    readonly file: string,
    options: { cause: unknown },
  ) {
    super(`migration ${file} failed: ${messageOf(options.cause)}`, { context: { version, file }, cause: options.cause });
  }
}

/** PostgreSQL SQLSTATE classes that mean "the database is not reachable right now". */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return (
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin_shutdown
    code === '57P02' || // crash_shutdown
    code === '57P03' || // cannot_connect_now (starting up)
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ETIMEDOUT' ||
    code === 'EPIPE' ||
    code === 'ENOTFOUND'
  );
}
