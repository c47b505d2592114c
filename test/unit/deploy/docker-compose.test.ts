import { execSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { envSchema } from '../../../src/config';
import { allSearchAttributes } from '../../../workflows/definitions';

/**
 * No Docker engine runs on the build machines, so the compose file is checked
 * by parsing it: every service, port and variable the code needs is there.
 */
const root = path.resolve(__dirname, '../../..');
// merge: true resolves the YAML merge keys (<<: *onceflow-env) as Compose does
const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, {
    image?: string; build?: string; command?: string[]; ports?: string[]; profiles?: string[];
    environment?: Record<string, string>; healthcheck?: unknown; depends_on?: Record<string, unknown>;
  }>;
};
const services = compose.services;

describe('docker-compose.yml', () => {
  it('describes postgres, Temporal with its UI, and the three Onceflow roles', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['postgres', 'temporal', 'temporal-ui', 'temporal-setup', 'api', 'worker', 'relay']),
    );
  });

  it('persists Temporal to PostgreSQL, not SQLite', () => {
    expect(services.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-postgres' });
  });

  it('exposes the API, Temporal frontend and UI ports', () => {
    expect(services.api!.ports).toContain('3000:3000');
    expect(services.temporal!.ports).toContain('7233:7233');
    expect(services['temporal-ui']!.ports).toContain('8233:8080');
  });

  it('gives every long-running service a health check', () => {
    for (const name of ['postgres', 'temporal', 'api', 'worker', 'relay']) {
      expect({ name, healthcheck: services[name]!.healthcheck }).toEqual({ name, healthcheck: expect.anything() });
    }
  });

  it('registers every search attribute the workflows carry', () => {
    const setup = JSON.stringify(services['temporal-setup']!.command);
    for (const key of allSearchAttributes) expect(setup).toContain(`--name ${key.name} --type Keyword`);
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
});
