import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { Registry } from 'prom-client';
import { loadConfig, type Config } from '../../src/config';
import type { Pool } from '../../src/db/pool';
import { buildApp, type AppDeps, type OnceflowApp } from '../../src/http/app';
import { TEST_WEBHOOK_ALLOWED_HOSTS } from './relay';
import { createLogger } from '../../src/observability/logger';
import { provisionTenants } from '../../src/tenants/api-keys';
import { testInfra } from './infra';

export interface TestApi {
  app: OnceflowApp;
  baseUrl: string;
  metricsRegistry: Registry;
  close(): Promise<void>;
}

export interface StartTestApiOptions {
  pool: Pool;
  temporal: Client;
  taskQueue: string;
  clock?: () => number;
  /** Overrides of the parsed configuration (rate limit, body limit, …). */
  config?: Partial<Config>;
  /** Resolves subscription hosts (a test stages DNS rebinding with it); default the system resolver. */
  resolveHost?: AppDeps['resolveHost'];
  /** The tracing of the test, when it checks spans. */
  tracing?: AppDeps['tracing'];
}

/** The real facade (buildApp) on a free port, against the run's PostgreSQL and Temporal. */
export async function startTestApi(options: StartTestApiOptions): Promise<TestApi> {
  const infra = testInfra();
  const config = {
    ...loadConfig({}),
    DATABASE_URL: infra.databaseUrl,
    TEMPORAL_NAMESPACE: infra.temporalNamespace,
    TEMPORAL_UI_URL: infra.temporalUiUrl,
    TEMPORAL_TASK_QUEUE: options.taskQueue,
    ONCEFLOW_RATE_LIMIT_PER_MINUTE: 100_000,
    // The tests' subscribers listen on loopback, which the API refuses unless allowlisted.
    WEBHOOK_ALLOWED_HOSTS: TEST_WEBHOOK_ALLOWED_HOSTS,
    ...options.config,
  };
  const metricsRegistry = new Registry();
  const app = await buildApp({
    config,
    pool: options.pool,
    temporal: options.temporal,
    logger: createLogger({ service: 'test-api', level: process.env.LOG_LEVEL ?? 'warn' }),
    metricsRegistry,
    clock: options.clock,
    tracing: options.tracing,
    resolveHost: options.resolveHost,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { app, baseUrl: `http://127.0.0.1:${port}`, metricsRegistry, close: () => app.close() };
}

/** A tenant with a fresh API key, provisioned the way ONCEFLOW_TENANTS is. */
export async function createApiTenant(pool: Pool, prefix = 'tenant'): Promise<{ tenantId: string; apiKey: string }> {
  const tenant = { tenantId: `${prefix}-${randomBytes(4).toString('hex')}`, apiKey: `key-${randomBytes(16).toString('hex')}` };
  await provisionTenants(pool, [tenant]);
  return tenant;
}

export interface PostOptions {
  apiKey?: string;
  key?: string | null;
  body?: unknown;
  rawBody?: string;
  contentType?: string;
  headers?: Record<string, string>;
  type?: string;
}

/** POST /v1/operations/{type} over real HTTP; returns status, headers and the raw and parsed body. */
export async function postOperation(baseUrl: string, options: PostOptions) {
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json', ...options.headers };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  if (options.key !== null && options.key !== undefined) headers['idempotency-key'] = options.key;
  const response = await fetch(`${baseUrl}/v1/operations/${options.type ?? 'generate-content'}`, {
    method: 'POST',
    headers,
    body: options.rawBody ?? JSON.stringify(options.body ?? { prompt: 'Say hello' }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

/** Any tenant API call over real HTTP, JSON in and out; status, content type and the parsed body. */
export async function callApi(baseUrl: string, apiKey: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), body: (text ? JSON.parse(text) : undefined) as Record<string, any> };
}

/**
 * POST with full control of the bytes (duplicate, non-ASCII or control
 * characters in headers), written on a socket: fetch refuses to send those.
 */
export async function rawPost(baseUrl: string, options: { apiKey: string; keys: string[]; body?: string }) {
  const net = await import('node:net');
  const url = new URL(baseUrl);
  const body = options.body ?? JSON.stringify({ prompt: 'hi' });
  const lines = [
    'POST /v1/operations/generate-content HTTP/1.1',
    `Host: ${url.host}`,
    `Authorization: Bearer ${options.apiKey}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...options.keys.map((key) => `Idempotency-Key: ${key}`),
  ];
  // latin1: each character is one byte, so callers choose the exact bytes of header values
  const request = Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');
  return new Promise<{ status: number; contentType: string | undefined; json: Record<string, any> | undefined }>((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.end(request));
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (raw += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]);
      const contentType = /\r\ncontent-type: ([^\r]*)/i.exec(raw)?.[1];
      const text = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      let json: Record<string, any> | undefined;
      try {
        json = JSON.parse(text) as Record<string, any>;
      } catch {
        json = undefined;
      }
      resolve({ status, contentType, json });
    });
  });
}
