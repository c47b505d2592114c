import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * SHA-256 (hex) over the RFC 8785 canonical JSON of the validated body, after
 * dropping the type's non-essential fields (dotted paths). Key order, white
 * space and `1` versus `1.0` never change it: the body is parsed before, and
 * canonicalize serialises numbers the ECMAScript way.
 */
export function fingerprint(body: unknown, nonEssentialFields: readonly string[]): string {
  const essential = dropPaths(body, nonEssentialFields);
  const canonical = canonicalize(essential) ?? 'null';
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

function dropPaths(value: unknown, paths: readonly string[]): unknown {
  if (paths.length === 0 || value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const nested = new Map<string, string[]>();
  for (const path of paths) {
    const dot = path.indexOf('.');
    if (dot === -1) delete copy[path];
    else nested.set(path.slice(0, dot), [...(nested.get(path.slice(0, dot)) ?? []), path.slice(dot + 1)]);
  }
  for (const [field, rest] of nested) {
    if (Object.hasOwn(copy, field)) copy[field] = dropPaths(copy[field], rest);
  }
  return copy;
}
