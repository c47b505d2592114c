import canonicalize from 'canonicalize';
import { sha256Hex } from './fingerprint';

/**
 * Prefix of every derived key. A caller's own key that starts with it is
 * refused for types that derive keys (unless it is exactly the key its body
 * derives, as a retry that echoes the returned header is), so a derived key
 * can never collide with a key a caller chose.
 */
export const DERIVED_KEY_PREFIX = 'derived:';

/**
 * The key of a request without Idempotency-Key for a type that declares key
 * fields: SHA-256 over the RFC 8785 canonical JSON of those fields (dotted
 * paths; an absent field counts as absent, not as null).
 */
export function deriveIdempotencyKey(body: unknown, keyFields: readonly string[]): string {
  const picked: Record<string, unknown> = {};
  for (const field of keyFields) {
    const value = readPath(body, field);
    if (value !== undefined) picked[field] = value;
  }
  return `${DERIVED_KEY_PREFIX}${sha256Hex(canonicalize(picked) ?? '{}')}`;
}

export function isDerivedKey(key: string): boolean {
  return key.startsWith(DERIVED_KEY_PREFIX);
}

function readPath(value: unknown, path: string): unknown {
  let current = value;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}
