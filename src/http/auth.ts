import type { FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { findTenantByApiKey, hashApiKey } from '../tenants/api-keys';
import type { ProblemError } from './errors';
import { problems } from './problems';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated tenant; set by the /v1 auth hook before any route handler runs. */
    tenantId?: string;
  }
}

export interface AuthOptions {
  pool: Pick<pg.Pool, 'query'>;
  /** How long a key → tenant lookup is trusted; a revoked key works this much longer at most. Default 30 s. */
  cacheTtlMs?: number;
  clock?: () => number;
  /** Failed authentications per client address per minute before 429 (ONCEFLOW_AUTH_FAILURES_PER_MINUTE). Default 30. */
  failuresPerMinute?: number;
}

const MAX_CACHED_KEYS = 10_000;
/** Addresses tracked at once; past it the oldest window is dropped (a flood of addresses costs memory, not lookups). */
const MAX_TRACKED_ADDRESSES = 100_000;
const FAILURE_WINDOW_MS = 60_000;

/**
 * An onRequest hook for /v1 routes: `Authorization: Bearer <api key>` → the
 * tenant, or 401 before the body is read. Lookups are cached in-process so the
 * replay path costs one database read, not two.
 */
export function createAuthHook(options: AuthOptions) {
  const ttlMs = options.cacheTtlMs ?? 30_000;
  const clock = options.clock ?? Date.now;
  const cache = new Map<string, { tenantId: string; expiresAtMs: number }>();
  const failures = new FailureCounter(options.failuresPerMinute ?? 30, clock);

  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([\x21-\x7E]{1,512})$/.exec(header) : null;
    if (!match) throw failures.refuse(request.ip) ?? problems.unauthorized('send Authorization: Bearer <api key>');
    const apiKey = match[1]!;
    const cacheKey = hashApiKey(apiKey).toString('base64');
    const cached = cache.get(cacheKey);
    if (cached && cached.expiresAtMs > clock()) {
      request.tenantId = cached.tenantId;
      return;
    }
    // Checked before the lookup: a guesser's every try would otherwise cost
    // one database query, and a flood of them would starve the tenants' own.
    const blocked = failures.blocked(request.ip);
    if (blocked) throw blocked;
    const tenantId = await findTenantByApiKey(options.pool, apiKey);
    if (!tenantId) throw failures.refuse(request.ip) ?? problems.unauthorized('the API key is unknown or revoked');
    if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value!);
    cache.set(cacheKey, { tenantId, expiresAtMs: clock() + ttlMs });
    request.tenantId = tenantId;
  };
}

/**
 * Failed authentications per client address in fixed one-minute windows.
 * In-process: each API replica counts its own, so N replicas allow N times
 * the rate, still a constant that makes guessing a 128-bit key hopeless.
 */
class FailureCounter {
  private readonly windows = new Map<string, { startMs: number; failures: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly clock: () => number,
  ) {}

  /** A 429 problem when this address has used up its failures in the current window. */
  blocked(address: string): ProblemError | undefined {
    const window = this.current(address);
    if (!window || window.failures < this.perMinute) return undefined;
    const retryAfterSeconds = Math.max(1, Math.ceil((window.startMs + FAILURE_WINDOW_MS - this.clock()) / 1000));
    return problems.authenticationsBlocked(this.perMinute, retryAfterSeconds);
  }

  /** Counts one failure; returns the 429 instead of the 401 once the address is over its limit. */
  refuse(address: string): ProblemError | undefined {
    const window = this.current(address) ?? { startMs: this.clock(), failures: 0 };
    window.failures += 1;
    this.windows.delete(address);
    if (this.windows.size >= MAX_TRACKED_ADDRESSES) this.windows.delete(this.windows.keys().next().value!);
    this.windows.set(address, window);
    return window.failures > this.perMinute ? this.blocked(address) : undefined;
  }

  private current(address: string): { startMs: number; failures: number } | undefined {
    const window = this.windows.get(address);
    if (window && window.startMs + FAILURE_WINDOW_MS > this.clock()) return window;
    if (window) this.windows.delete(address);
    return undefined;
  }
}

/**
 * The authenticated tenant of a request inside the /v1 scope of app.ts. Throws
 * (answered 401) if a route was registered outside that scope by mistake, so a
 * route can never run unscoped.
 */
export function requireTenant(request: FastifyRequest): string {
  if (!request.tenantId) throw problems.unauthorized('this route needs Authorization: Bearer <api key>');
  return request.tenantId;
}
