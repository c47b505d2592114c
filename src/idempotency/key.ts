/** Idempotency-Key rules of the contract: 1 to 255 printable ASCII characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const PRINTABLE_ASCII = /^[\x20-\x7E]+$/;

export type KeyCheck =
  | { ok: true; key: string }
  | { ok: false; reason: 'missing' }
  | { ok: false; reason: 'invalid'; detail: string };

/**
 * Checks the raw header occurrences, not Node's joined value: two
 * Idempotency-Key headers arrive joined as "a, b", which would otherwise pass
 * as one (different) key.
 */
export function checkIdempotencyKey(rawValues: readonly string[]): KeyCheck {
  if (rawValues.length === 0) return { ok: false, reason: 'missing' };
  if (rawValues.length > 1) return { ok: false, reason: 'invalid', detail: 'send exactly one Idempotency-Key header' };
  const key = rawValues[0]!;
  if (key.length === 0) return { ok: false, reason: 'missing' };
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    return { ok: false, reason: 'invalid', detail: `an Idempotency-Key has at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters, this one has ${key.length}` };
  }
  if (!PRINTABLE_ASCII.test(key)) {
    return { ok: false, reason: 'invalid', detail: 'an Idempotency-Key is printable ASCII only (a UUID is recommended)' };
  }
  return { ok: true, key };
}

/** All values of a header in a raw header list (`[name, value, name, value, …]`). */
export function rawHeaderValues(rawHeaders: readonly string[], name: string): string[] {
  const wanted = name.toLowerCase();
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === wanted) values.push(rawHeaders[i + 1]!);
  }
  return values;
}
