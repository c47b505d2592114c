import { Client, Connection } from '@temporalio/client';
import { Registry } from 'prom-client';
import { createPool, type Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { startMetricsServer } from '../../src/observability/metrics-server';
import { startTestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

describe('/readyz and /metrics tell the public nothing about the inside', () => {
  let pool: Pool;
  let temporal: Client;
  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
  });
  afterAll(async () => {
    await temporal.connection.close();
    await pool.end();
  });

  it('names the dependency that is down, never its address or the driver’s error', async () => {
    const [deadPgPort, deadTemporalPort] = [await findFreePort(), await findFreePort()];
    const deadPool = createPool({ connectionString: `postgres://onceflow:hunter2@127.0.0.1:${deadPgPort}/secretdb`, max: 1 });
    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${deadTemporalPort}` }), namespace: testInfra().temporalNamespace });
    const api = await startTestApi({ pool: deadPool, temporal: deadTemporal, taskQueue: uniqueTaskQueue('exposure') });
    try {
      const response = await fetch(`${api.baseUrl}/readyz`);
      expect(response.status).toBe(503);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ status: 'unavailable', postgres: 'unreachable', temporal: 'unreachable' });
      for (const secret of [String(deadPgPort), String(deadTemporalPort), '127.0.0.1', 'ECONNREFUSED', 'secretdb']) expect(text).not.toContain(secret);
    } finally {
      await api.close();
      await deadPool.end();
    }
  });

  it('protects /metrics with ONCEFLOW_METRICS_TOKEN', async () => {
    const api = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('metrics'), config: { ONCEFLOW_METRICS_TOKEN: 'scrape-secret-7f3a' } });
    try {
      expect((await fetch(`${api.baseUrl}/metrics`)).status).toBe(401);
      expect((await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      const scraped = await fetch(`${api.baseUrl}/metrics`, { headers: { authorization: 'Bearer scrape-secret-7f3a' } });
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('# TYPE');
    } finally {
      await api.close();
    }
  });

  it('moves /metrics off the public listener when API_METRICS_PORT is set', async () => {
    const port = await findFreePort();
    const api = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('metrics-port'), config: { API_METRICS_PORT: port } });
    // What src/http/server.ts starts for that setting, on the same registry.
    const metrics = await startMetricsServer({ registry: api.metricsRegistry, port, host: '127.0.0.1', token: 'private-scrape' });
    try {
      expect((await fetch(`${api.baseUrl}/metrics`)).status).toBe(404);
      expect((await fetch(metrics.url)).status).toBe(401);
      const scraped = await fetch(metrics.url, { headers: { authorization: 'Bearer private-scrape' } });
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('onceflow_');
    } finally {
      await metrics.close();
      await api.close();
    }
  });
});

describe('startMetricsServer without a token', () => {
  it('serves the registry as before', async () => {
    const registry = new Registry();
    const metrics = await startMetricsServer({ registry, port: 0, host: '127.0.0.1' });
    try {
      expect((await fetch(metrics.url)).status).toBe(200);
    } finally {
      await metrics.close();
    }
  });
});
