import canonicalize from 'canonicalize';

export interface DifferencesOptions {
  /** Deepest level reported; a difference below it is reported at its ancestor of this depth. Default 4. */
  maxDepth?: number;
  /** At most this many pointers; the rest are dropped (the body stays small). Default 50. */
  maxPointers?: number;
}

/**
 * RFC 6901 JSON Pointers to where two essential bodies differ (a member or
 * element added, removed, or whose canonical value changed), in document
 * order. Values are never returned: a 422 must not echo what either request
 * sent (prompts can hold personal data). Hand-written because the JSON-diff
 * libraries return values with their paths, and none bounds depth.
 */
export function payloadDifferences(first: unknown, second: unknown, options: DifferencesOptions = {}): string[] {
  const maxDepth = options.maxDepth ?? 4;
  const maxPointers = options.maxPointers ?? 50;
  const pointers: string[] = [];

  const visit = (a: unknown, b: unknown, pointer: string, depth: number): void => {
    if (pointers.length >= maxPointers || sameCanonical(a, b)) return;
    const bothObjects = isObject(a) && isObject(b);
    const bothArrays = Array.isArray(a) && Array.isArray(b);
    if (depth >= maxDepth || !(bothObjects || bothArrays)) {
      pointers.push(pointer);
      return;
    }
    if (bothArrays) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) visit(a[i], b[i], `${pointer}/${i}`, depth + 1);
      return;
    }
    const left = a as Record<string, unknown>;
    const right = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])].sort();
    for (const key of keys) visit(left[key], right[key], `${pointer}/${escapeToken(key)}`, depth + 1);
  };

  visit(first, second, '', 0);
  return pointers;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** undefined (absent) differs from everything present, null included. */
function sameCanonical(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalize(a) === canonicalize(b);
}

/** RFC 6901 §3: `~` as `~0`, `/` as `~1`. */
function escapeToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}
