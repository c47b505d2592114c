import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves a prom-client registry at `/metrics` for processes without an HTTP
 * API of their own (worker, relay). node:http is enough for one read-only route.
 */
export async function startMetricsServer(options: {
  registry: Registry;
  port: number;
  host?: string;
  /** Bearer token /metrics requires (ONCEFLOW_METRICS_TOKEN); default none. */
  token?: string;
}): Promise<MetricsServer> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || (request.url !== '/metrics' && request.url !== '/healthz')) {
      response.writeHead(404).end();
      return;
    }
    if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (options.token && !bearerMatches(request.headers.authorization, options.token)) {
      response.writeHead(401, { 'www-authenticate': 'Bearer realm="onceflow-metrics"' }).end();
      return;
    }
    options.registry
      .metrics()
      .then((text) => response.writeHead(200, { 'content-type': options.registry.contentType }).end(text))
      .catch(() => response.writeHead(500).end());
  });
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Constant-time comparison of `Authorization: Bearer <token>` (digests first, so lengths leak nothing either). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return presented.length > 0 && timingSafeEqual(digest(presented), digest(token));
}
