import { AppError } from '../errors';

/** One page of a keyset-paged list: the rows, and the cursor of the next page (null on the last). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Thrown when a list cursor was not produced by this service (tampered, truncated, from another list). */
export class InvalidCursorError extends AppError {
  override readonly name = 'InvalidCursorError';
  constructor() {
    super('the cursor is not one this list returned', { context: {} });
  }
}

/**
 * Keyset cursors: the sort key of the last row returned, opaque to the
 * caller (base64url JSON). Keyset rather than OFFSET: a page costs the same
 * however deep it is, and rows inserted meanwhile do not shift later pages.
 * `kind` ties a cursor to its list, so one list's cursor fed to another is
 * a 400, not a wrong page.
 */
export function encodeCursor(kind: string, key: readonly string[]): string {
  return Buffer.from(JSON.stringify([kind, ...key])).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string, length: number): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError();
  }
  if (!Array.isArray(parsed) || parsed.length !== length + 1 || parsed[0] !== kind || !parsed.every((p) => typeof p === 'string')) {
    throw new InvalidCursorError();
  }
  return parsed.slice(1) as string[];
}
