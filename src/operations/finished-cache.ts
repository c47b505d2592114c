/**
 * Finished operations a repeat is answered from without a database read.
 *
 * A retry storm (a client's or a gateway's, the very thing Onceflow absorbs)
 * sends the same key again and again; once its operation is final the row
 * cannot change until its key expires: its outcome is written once, under the
 * `complete` effect guard (activities/complete-operation.ts), the other
 * updates touch only reserved or running rows, and both purges delete only
 * expired ones. So a final row read once answers
 * every repeat until the earlier of its expiry and `ttlMs`, exactly as a fresh
 * read would. A released failure is not cached: it does not bind its key.
 *
 * Bounded by bytes (each entry sized once, by its stored result and error), so
 * a tenant that replays many large results only evicts entries, never grows
 * the process. Per process: replicas each keep their own, which is safe for
 * rows that cannot change.
 */
import { LRUCache } from 'lru-cache';
import type { KeyScope, OperationState } from './repository';
import { bindsKey, isFinal } from './status';

export interface FinishedCacheOptions {
  /** Total bytes of cached results and errors; 0 turns the cache off. */
  maxBytes: number;
  /** An entry is read again from PostgreSQL after this long at most. */
  ttlMs: number;
}

/** Results larger than this are read from PostgreSQL each time: one would evict many small ones. */
const MAX_ENTRY_BYTES = 256 * 1024;
/** Fields besides the result and error (ids, times, the key): roughly, per entry. */
const ENTRY_OVERHEAD_BYTES = 512;

export interface FinishedCache {
  /** The cached final row of this key, if it still binds the key at `nowMs`. */
  get(scope: KeyScope, nowMs: number): OperationState | undefined;
  /** Keeps a row read from PostgreSQL if it is final and binds its key. */
  remember(record: OperationState, nowMs: number): void;
}

export function createFinishedCache(options: FinishedCacheOptions): FinishedCache {
  if (options.maxBytes <= 0) return { get: () => undefined, remember: () => undefined };
  const cache = new LRUCache<string, OperationState>({ maxSize: options.maxBytes, maxEntrySize: MAX_ENTRY_BYTES, ttl: options.ttlMs, ttlAutopurge: false });
  return {
    get(scope, nowMs) {
      const record = cache.get(cacheKey(scope));
      // Expiry is checked at read, by the request's clock, like a row just read.
      return record && bindsKey(record, nowMs) ? record : undefined;
    },
    remember(record, nowMs) {
      if (!isFinal(record.status) || !bindsKey(record, nowMs)) return;
      const size = ENTRY_OVERHEAD_BYTES + jsonLength(record.result) + jsonLength(record.error);
      if (size > MAX_ENTRY_BYTES) return;
      const ttl = Math.min(options.ttlMs, record.expiresAt.getTime() - nowMs);
      cache.set(cacheKey(record), Object.freeze(record), { size, ttl });
    },
  };
}

/** NUL cannot occur in a tenant id or operation type, so the parts never run together. */
function cacheKey(scope: KeyScope): string {
  return `${scope.tenantId}\0${scope.operationType}\0${scope.idempotencyKey}`;
}

function jsonLength(value: unknown): number {
  return value === null || value === undefined ? 0 : (JSON.stringify(value)?.length ?? 0);
}
