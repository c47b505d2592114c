import { hash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { UnknownFingerprintVersionError } from './errors';

/**
 * The fingerprint algorithm's version, stored with every key
 * (operations.fingerprint_version). A repeat is fingerprinted with the
 * version its key was reserved with, so a later version (another
 * canonicalisation, another rule for non-essential fields) never turns a
 * true repeat of an older key into a 422.
 */
export const CURRENT_FINGERPRINT_VERSION = 1;

/**
 * Version 1: the validated body after dropping the type's non-essential
 * fields (dotted paths). Key order, white space and `1` versus `1.0` never
 * change it: the body is parsed before, and RFC 8785 serialises numbers the
 * ECMAScript way.
 */
const essentialByVersion: Record<number, (body: unknown, nonEssentialPaths: readonly string[]) => unknown> = {
  1: (body, nonEssentialPaths) => dropPaths(body, nonEssentialPaths),
};

/**
 * A type's non-essential field: a dotted path that has been non-essential
 * since version 1, or a rule that took effect at a later version (`since`)
 * or stopped at one (`until`, exclusive). Changing a type's non-essential
 * fields means bumping CURRENT_FINGERPRINT_VERSION and adding a dated rule,
 * never editing a plain path: keys reserved before the change are compared
 * with the rules of their own version, so their true repeats still replay.
 */
export type NonEssentialField = string | { path: string; since: number; until?: number };

/** Each type's rules resolved once per version: a type's list is a constant of the registry, and every repeat asks. */
const pathsByRules = new WeakMap<readonly NonEssentialField[], Map<number, readonly string[]>>();

/** The dotted paths a fingerprint of `version` drops. */
export function nonEssentialPathsAt(fields: readonly NonEssentialField[], version: number): readonly string[] {
  let byVersion = pathsByRules.get(fields);
  if (!byVersion) pathsByRules.set(fields, (byVersion = new Map()));
  let paths = byVersion.get(version);
  if (!paths) {
    paths = fields.flatMap((field) => {
      if (typeof field === 'string') return [field];
      return field.since <= version && (field.until === undefined || version < field.until) ? [field.path] : [];
    });
    byVersion.set(version, paths);
  }
  return paths;
}

/** The part of a body that a fingerprint of `version` covers; what the 422's `differences` compare. */
export function essentialPart(body: unknown, nonEssentialFields: readonly NonEssentialField[], version = CURRENT_FINGERPRINT_VERSION): unknown {
  const essential = essentialByVersion[version];
  if (!essential) throw new UnknownFingerprintVersionError(version);
  return essential(body, nonEssentialPathsAt(nonEssentialFields, version));
}

/** SHA-256 (hex) over the RFC 8785 canonical JSON of the body's essential part. */
export function fingerprint(body: unknown, nonEssentialFields: readonly NonEssentialField[], version = CURRENT_FINGERPRINT_VERSION): string {
  return sha256Hex(canonicalize(essentialPart(body, nonEssentialFields, version)) ?? 'null');
}

export function sha256Hex(text: string): string {
  // One-shot crypto.hash: no Hash object per call (a third of createHash's CPU
  // for a body this size), and every repeat fingerprints its body.
  return hash('sha256', text, 'hex');
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
