import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import type { Pool } from '../../src/db/pool';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createLogger } from '../../src/observability/logger';
import { createTracing, type Tracing } from '../../src/observability/tracing';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { uniqueTaskQueue } from '../helpers/temporal';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP SpanKind: 2 = SERVER, 3 = CLIENT. */
  kind: number;
}

/** A stand-in OTLP/HTTP collector: the exporter is configured only by the standard OTEL_* variable. */
async function startCollector() {
  const spans: ExportedSpan[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const payload = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[] };
      for (const resource of payload.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, close: () => new Promise((r) => server.close(r)) };
}

describe('OpenTelemetry tracing (ONCEFLOW_TRACING=true)', () => {
  let pool: Pool;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let tracing: Tracing;
  let gemini: OfflineGeminiServer;
  let worker: Worker;
  let running: Promise<void>;
  let api: TestApi;
  let temporal: Client;

  beforeAll(async () => {
    pool = createTestPool();
    collector = await startCollector();
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = collector.url;
    tracing = createTracing({ service: 'test' });
    gemini = await startOfflineGeminiServer();
    const taskQueue = uniqueTaskQueue('tracing');
    // The workflow interceptors are part of the bundle, so this test bundles with the plugin.
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), plugins: [tracing.plugin], logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } });
    const connection = await NativeConnection.connect({ address: testInfra().temporalAddress });
    worker = await createOnceflowWorker({
      connection,
      namespace: testInfra().temporalNamespace,
      taskQueue,
      workflowBundle: bundle,
      plugins: [tracing.plugin],
      activityDeps: {
        pool,
        logger: createLogger({ service: 'test-worker', level: 'warn' }),
        gemini: createGeminiClient({ apiKey: 'test', baseUrl: gemini.url, timeoutMs: 5_000 }),
        geminiMetrics: createGeminiMetrics(new Registry()),
        modelChain: ['gemini-2.5-flash'],
      },
    });
    running = worker.run();
    temporal = new Client({
      connection: await Connection.connect({ address: testInfra().temporalAddress }),
      namespace: testInfra().temporalNamespace,
      plugins: [tracing.plugin],
    });
    api = await startTestApi({ pool, temporal, taskQueue, tracing });
  });
  afterAll(async () => {
    await api.close();
    worker.shutdown();
    await running;
    await temporal.connection.close();
    await gemini.close();
    await collector.close();
    delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    await pool.end();
  });

  it('continues the caller’s traceparent from the facade’s request span through the workflow to the Gemini activity that makes the call and finishes', async () => {
    const tenant = await createApiTenant(pool);
    // The caller's own trace (W3C Trace Context), as a gateway or client SDK would send it.
    const callerTraceId = randomUUID().replace(/-/g, '');
    const callerSpanId = randomUUID().replace(/-/g, '').slice(0, 16);
    const response = await postOperation(api.baseUrl, {
      apiKey: tenant.apiKey,
      key: randomUUID(),
      headers: { prefer: 'wait=30', traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
    });
    expect(response.status).toBe(200);
    // The answer leaves at the finishing COMMIT inside the activity; the
    // workflow's own spans end with the workflow task that reads its result.
    await temporal.workflow.getHandle(response.json!.workflowId).result();
    await tracing.shutdown(); // flushes the batch processor
    const hex = (id: string) => (/^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex'));
    const spans = collector.spans.map((s) => ({ ...s, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: s.parentSpanId ? hex(s.parentSpanId) : undefined }));
    const named = (name: string) => spans.find((s) => s.name === name);
    // HTTP request (facade) → client (StartWorkflow) → workflow (StartActivity, inside the sandbox) → activities (RunActivity, on the worker)
    for (const expected of ['request', 'StartWorkflow:generateContentWorkflow', 'StartActivity:generateWithGemini', 'RunActivity:generateWithGemini']) {
      expect({ expected, traceId: named(expected)?.traceId }).toEqual({ expected, traceId: callerTraceId });
    }
    const request = named('request')!;
    expect(request.kind).toBe(2);
    expect(request.parentSpanId).toBe(callerSpanId);
    // The workflow start happened inside the request's span, not beside it.
    const ancestors = (span: (typeof spans)[number]): string[] => {
      const parent = spans.find((s) => s.spanId === span.parentSpanId);
      return parent ? [parent.spanId, ...ancestors(parent)] : [];
    };
    expect(ancestors(named('StartWorkflow:generateContentWorkflow')!)).toContain(request.spanId);
  });
});
