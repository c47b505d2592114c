import type { FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { findTenantByApiKey, hashApiKey } from '../tenants/api-keys';
import { ProblemError } from './errors';

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
}

const MAX_CACHED_KEYS = 10_000;

/**
 * An onRequest hook for /v1 routes: `Authorization: Bearer <api key>` → the
 * tenant, or 401 before the body is read. Lookups are cached in-process so the
 * replay path costs one database read, not two.
 */
export function createAuthHook(options: AuthOptions) {
  const ttlMs = options.cacheTtlMs ?? 30_000;
  const clock = options.clock ?? Date.now;
  const cache = new Map<string, { tenantId: string; expiresAtMs: number }>();

  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer ([\x21-\x7E]{1,512})$/.exec(header) : null;
    if (!match) throw unauthorized('send Authorization: Bearer <api key>');
    const apiKey = match[1]!;
    const cacheKey = hashApiKey(apiKey).toString('base64');
    const cached = cache.get(cacheKey);
    if (cached && cached.expiresAtMs > clock()) {
      request.tenantId = cached.tenantId;
      return;
    }
    const tenantId = await findTenantByApiKey(options.pool, apiKey);
    if (!tenantId) throw unauthorized('the API key is unknown or revoked');
    if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value!);
    cache.set(cacheKey, { tenantId, expiresAtMs: clock() + ttlMs });
    request.tenantId = tenantId;
  };
}

function unauthorized(detail: string): ProblemError {
  return new ProblemError({
    status: 401,
    type: 'unauthorized',
    title: 'Unauthorized',
    detail,
    headers: { 'WWW-Authenticate': 'Bearer realm="onceflow"' },
  });
}

/**
 * The authenticated tenant of a request inside the /v1 scope of app.ts. Throws
 * (answered 401) if a route was registered outside that scope by mistake, so a
 * route can never run unscoped.
 */
export function requireTenant(request: FastifyRequest): string {
  if (!request.tenantId) throw unauthorized('this route needs Authorization: Bearer <api key>');
  return request.tenantId;
}
