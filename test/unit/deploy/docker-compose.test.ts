import { execSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { envSchema } from '../../../src/config';
import { allSearchAttributes } from '../../../workflows/definitions';
import { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from '../../../dev/temporal-cluster/build';
import { clusterConfig } from '../../../dev/temporal-cluster/config';
import { CLUSTER_DATABASES } from '../../../dev/temporal-cluster/schema';

/**
 * No Docker engine runs on the build machines, so the compose file is checked
 * by parsing it: every service, port and variable the code needs is there.
 */
const root = path.resolve(__dirname, '../../..');
// merge: true resolves the YAML merge keys (<<: *onceflow-env) as Compose does
const composeText = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
const compose = parse(composeText, { merge: true }) as {
  services: Record<string, {
    image?: string; build?: string; command?: string[]; ports?: string[]; profiles?: string[];
    environment?: Record<string, string>; healthcheck?: { test?: string[] }; depends_on?: Record<string, { condition?: string }>;
    deploy?: { replicas?: number };
  }>;
};
const services = compose.services;
const prometheus = parse(readFileSync(path.join(root, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
  scrape_configs: { job_name: string; static_configs?: unknown; dns_sd_configs?: { names: string[]; type: string; port: number }[] }[];
};

describe('docker-compose.yml', () => {
  it('describes postgres, Temporal with its UI, and the three Onceflow roles', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['postgres', 'temporal', 'temporal-ui', 'temporal-setup', 'api', 'worker', 'relay']),
    );
  });

  it('persists Temporal to PostgreSQL, not SQLite', () => {
    expect(services.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-postgres' });
  });

  it('runs Temporal’s own PostgreSQL with the credentials Temporal uses, and starts Temporal only once it is healthy', () => {
    const database = services['temporal-postgres']!;
    expect(database.image).toMatch(/^postgres:\d+/);
    expect(database.environment).toMatchObject({ POSTGRES_USER: services.temporal!.environment!.POSTGRES_USER, POSTGRES_PASSWORD: services.temporal!.environment!.POSTGRES_PWD });
    expect(JSON.stringify(database.healthcheck?.test)).toContain(`pg_isready -U ${database.environment!.POSTGRES_USER}`);
    expect(services.temporal!.depends_on).toMatchObject({ 'temporal-postgres': { condition: 'service_healthy' } });
  });

  it('exposes the API, Temporal frontend and UI ports', () => {
    expect(services.api!.ports).toContain('3000:3000');
    expect(services.temporal!.ports).toContain('7233:7233');
    expect(services['temporal-ui']!.ports).toContain('8233:8080');
  });

  it('gives every long-running service a health check', () => {
    for (const name of ['postgres', 'temporal-postgres', 'temporal', 'temporal-ui', 'api', 'worker', 'relay']) {
      expect({ name, healthcheck: services[name]!.healthcheck?.test }).toEqual({ name, healthcheck: expect.any(Array) });
    }
  });

  it('checks the Temporal UI on its health route, at the port the container publishes', () => {
    const containerPort = services['temporal-ui']!.ports![0]!.split(':').at(-1);
    // /healthz: any other path gets the UI's HTML with 200, even when the server behind it is broken
    expect(services['temporal-ui']!.healthcheck!.test!.join(' ')).toContain(`http://127.0.0.1:${containerPort}/healthz`);
  });

  it('runs the Web UI version the local cluster builds, on the frontend, with the codec endpoint', () => {
    const ui = services['temporal-ui']!;
    expect(ui.image).toBe(`temporalio/ui:${TEMPORAL_UI_VERSION.replace(/^v/, '')}`);
    expect(ui.environment).toMatchObject({ TEMPORAL_ADDRESS: services.temporal!.environment!.PUBLIC_FRONTEND_ADDRESS, TEMPORAL_CODEC_INCLUDE_CREDENTIALS: 'true' });
    expect(ui.environment!.TEMPORAL_CODEC_ENDPOINT).toMatch(/\/codec$/);
  });

  it.each(['api', 'worker', 'relay'])('makes the operator set %s’s secrets: no development default slips into production', (name) => {
    const env = services[name]!.environment!;
    expect(env.NODE_ENV).toBe('production');
    for (const secret of ['GEMINI_WEBHOOK_SECRET', 'ONCEFLOW_SECRET_KEY', 'GEMINI_API_KEY', 'ONCEFLOW_PAYLOAD_KEYS']) {
      expect(Object.keys(env)).toContain(secret);
      // `${VAR:?message}`: compose refuses to start when it is unset or empty
      expect(composeText).toMatch(new RegExp(`^\\s+${secret}: \\$\\{${secret}:\\?[^}]+\\}$`, 'm'));
    }
  });

  it.each([
    ['api', 'onceflow-api', 'API_METRICS_PORT'],
    ['worker', 'onceflow-worker', 'WORKER_METRICS_PORT'],
    ['worker', 'onceflow-worker-sdk', 'WORKER_SDK_METRICS_PORT'],
    ['relay', 'onceflow-relay', 'RELAY_METRICS_PORT'],
  ])('lets Prometheus find every %s replica by DNS (%s), on the port the service is given', (service, job, portVariable) => {
    const config = prometheus.scrape_configs.find((c) => c.job_name === job);
    expect(config?.static_configs).toBeUndefined();
    expect(config?.dns_sd_configs).toEqual([{ names: [service], type: 'A', port: Number(services[service]!.environment![portVariable]) }]);
  });

  it('registers every search attribute the workflows carry', () => {
    const setup = JSON.stringify(services['temporal-setup']!.command);
    for (const key of allSearchAttributes) expect(setup).toContain(`--name ${key.name} --type Keyword`);
  });

  // The topology `onceflow start --temporal cluster` and the cluster test tier run (dev/temporal-cluster).
  const temporalServices = { temporal: 'frontend', 'temporal-history': 'history', 'temporal-matching': 'matching', 'temporal-worker': 'worker' };
  const localCluster = clusterConfig({
    postgres: { host: 'h', port: 1, user: 'u', password: 'p' },
    ports: { frontend: { grpc: 1, membership: 2, http: 3 }, history: { grpc: 4, membership: 5 }, matching: { grpc: 6, membership: 7 }, worker: { grpc: 8, membership: 9 } },
    dynamicConfigFile: '/dev/null',
  }) as { persistence: { numHistoryShards: number; datastores: Record<string, { sql: { pluginName: string; databaseName: string } }> } };

  it.each(Object.entries(temporalServices))('runs %s as the %s service of the same server version the local cluster builds', (name, service) => {
    expect(services[name]!.image).toBe(`temporalio/server:${TEMPORAL_SERVER_VERSION.replace(/^v/, '')}`);
    expect(services[name]!.environment).toMatchObject({ TEMPORAL_SERVICES: service, DB: 'postgres12', POSTGRES_SEEDS: 'temporal-postgres' });
    expect(services[name]!.depends_on).toMatchObject({ 'temporal-schema': { condition: 'service_completed_successfully' } });
  });

  it('gives the cluster the local cluster’s shard count and PostgreSQL plugin', () => {
    expect(Number(services.temporal!.environment!.NUM_HISTORY_SHARDS)).toBe(localCluster.persistence.numHistoryShards);
    expect(Object.values(localCluster.persistence.datastores).map((d) => d.sql.pluginName)).toEqual([services.temporal!.environment!.DB, services.temporal!.environment!.DB]);
  });

  it('applies the schema to the same two databases with the same versioned schema dirs as the local cluster', () => {
    const schema = services['temporal-schema']!;
    expect(schema.image).toBe(`temporalio/admin-tools:${TEMPORAL_SERVER_VERSION.replace(/^v/, '')}`);
    const command = JSON.stringify(schema.command);
    expect(command).toContain(`${CLUSTER_DATABASES.persistence}:temporal ${CLUSTER_DATABASES.visibility}:visibility`);
    expect(command).toContain('update-schema -d \\"/etc/temporal/schema/postgresql/v12/$$dir/versioned\\"');
    expect(Object.values(localCluster.persistence.datastores).map((d) => d.sql.databaseName)).toEqual([CLUSTER_DATABASES.persistence, CLUSTER_DATABASES.visibility]);
  });

  it('creates the namespace with the local cluster’s retention before registering the search attributes', () => {
    const setup = JSON.stringify(services['temporal-setup']!.command);
    expect(setup).toMatch(/namespace create --namespace default --retention 72h;.*search-attribute create/);
  });

  it.each(['api', 'worker', 'relay'])('builds %s from the repo and runs an entry that exists', (name) => {
    const service = services[name]!;
    expect(service.build).toBe('.');
    const entry = service.command!.at(-1)!;
    const source = entry.replace(/^dist\//, '').replace(/\.js$/, '.ts');
    expect(existsSync(path.join(root, source))).toBe(true);
  });

  it.each(['api', 'worker', 'relay'])('hands %s every connection variable, all of them known to src/config.ts', (name) => {
    const env = services[name]!.environment!;
    for (const required of ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_TASK_QUEUE', 'ONCEFLOW_SECRET_KEY']) {
      expect(Object.keys(env)).toContain(required);
    }
    const known = Object.keys(envSchema.shape);
    for (const variable of Object.keys(env)) expect(known).toContain(variable);
  });

  it('offers Prometheus and Grafana only under the observability profile', () => {
    expect(services.prometheus!.profiles).toEqual(['observability']);
    expect(services.grafana!.profiles).toEqual(['observability']);
  });
});

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(path.join(root, 'deploy/grafana/dashboards/onceflow.json'), 'utf8')) as {
    panels: { type: string; targets?: { expr: string }[] }[];
  };
  const sources = ['src', 'activities'].map((dir) => path.join(root, dir));
  const allSource = execSync(`grep -rhoE "name: 'onceflow_[a-z_]+'" ${sources.join(' ')}`).toString();
  const defined = new Set([...allSource.matchAll(/onceflow_[a-z_]+/g)].map((m) => m[0]));

  it('only charts metrics the code defines (a renamed metric breaks this test, not the dashboard)', () => {
    const used = dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/onceflow_[a-z_]+/g)].map((m) => m[0]));
    expect(used.length).toBeGreaterThan(10);
    const base = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    expect(used.map(base).filter((name) => !defined.has(name))).toEqual([]);
  });

  it('keeps the api’s metrics off the published port and guards the codec endpoint', () => {
    const api = services.api!;
    expect(api.environment!.API_METRICS_PORT).toBeDefined();
    expect(api.ports!.some((port) => port.endsWith(`:${api.environment!.API_METRICS_PORT}`))).toBe(false);
    expect(composeText).toMatch(/^\s+ONCEFLOW_CODEC_TOKEN: \$\{ONCEFLOW_CODEC_TOKEN:\?[^}]+\}$/m);
    expect(services['temporal-ui']!.environment!.TEMPORAL_CODEC_ENDPOINT).toBe('http://localhost:3000/codec');
  });
});
