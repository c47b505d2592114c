/**
 * `npm run faults:cluster` (`--ci` for the short form `make test` runs): the
 * fault scenarios that only a Temporal cluster has. The stack is the fault
 * suite's (faults/lib/harness.ts) with Temporal as the server on PostgreSQL,
 * 4 shards and frontend, history, matching and worker as separate processes.
 * Each scenario loads it with clients insisting on their keys, injects a real
 * fault, and checks the fault suite's invariants (faults/lib/invariants.ts).
 * Writes faults/results/cluster-latest.json; exits 1 when an invariant broke.
 *
 * Flags: --ci   --only history-kill,matching-kill,postgres-restart
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../bench/lib/stack';
import { machineInfo, sleep } from '../bench/lib/stats';
import type { ClusterService } from '../dev/temporal-cluster/config';
import { TEMPORAL_SERVER_VERSION } from '../dev/temporal-cluster';
import { geminiControl, startFaultStack, type FaultStack } from './lib/harness';
import { checkInvariants } from './lib/invariants';
import { clientCounts, insistUnderFault, merge, type ScenarioResult, type ScenarioSettings } from './lib/load';

const body = (key: string) => ({ prompt: `cluster fault suite: ${key}` });

function clusterOf(stack: FaultStack) {
  if (!stack.infra.cluster) throw new Error('the cluster scenarios need a stack started with temporal: cluster');
  return stack.infra.cluster;
}

/**
 * SIGKILLs one service while clients insist on their keys, leaves it down for
 * `downMs`, restarts it, and repeats. History owns the shards (its restart
 * means shard ownership moves and in-flight tasks are reloaded from
 * PostgreSQL); matching owns the task queues (pollers and sync-matched tasks
 * in its memory are lost and must come back from history's transfer queue).
 */
async function killService(stack: FaultStack, settings: ScenarioSettings, service: ClusterService): Promise<ScenarioResult> {
  const startedAt = Date.now();
  const cluster = clusterOf(stack);
  await geminiControl(stack, 'reset');
  const targetKills = settings.ci ? 2 : 5;
  const keys = Array.from({ length: settings.ci ? 80 : 300 }, (_, i) => `${service.slice(0, 2)}k-${i}-${randomUUID().slice(0, 6)}`);
  const { outcomes, injected: kills } = await insistUnderFault(stack, {
    keys, body, concurrency: 10, staggerMs: 4000, times: targetKills,
    inject: async (n) => {
      await sleep(1000 + Math.random() * 2000);
      // Through the keeper, which runs the services: it waits for the exit and does not take it for a crash.
      const process = cluster.services[service];
      await process.kill('SIGKILL');
      stack.log(`  ${service} SIGKILL ${n}/${targetKills}`);
      await sleep(2000);
      await process.start();
      await cluster.waitUntilServing();
      stack.log(`  ${service} restarted and serving`);
    },
  });
  const client = clientCounts(outcomes);
  client.counts[`${service} SIGKILLs`] = kills;
  return merge(`Temporal ${service} service SIGKILLed under load`, `${kills} ${service} SIGKILLs, down 2 s, restarted`, startedAt, client, await checkInvariants(stack, keys));
}

/**
 * PostgreSQL stopped and started under Temporal and Onceflow at once: one
 * database server holds Temporal's persistence and visibility and Onceflow's
 * records, as on a small production install. Any Temporal service that gave
 * up while it was down is started again, as its process manager would.
 */
async function postgresRestart(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  const cluster = clusterOf(stack);
  await geminiControl(stack, 'reset');
  const restarts = settings.ci ? 1 : 3;
  const keys = Array.from({ length: settings.ci ? 60 : 200 }, (_, i) => `cpg-${i}-${randomUUID().slice(0, 6)}`);
  let serviceRestarts = 0;
  const { outcomes, injected: count } = await insistUnderFault(stack, {
    keys, body, concurrency: 10, staggerMs: 4000, times: restarts,
    inject: async (n) => {
      await sleep(1500 + Math.random() * 1500);
      await stack.infra.postgres.stop();
      stack.log(`  PostgreSQL stopped under Temporal and Onceflow (${n}/${restarts})`);
      await sleep(3000);
      await stack.infra.postgres.start();
      for (const process of Object.values(cluster.services)) {
        if (!process.alive()) {
          serviceRestarts++;
          stack.log(`  Temporal ${process.service} exited while PostgreSQL was down; starting it again`);
          await process.start();
        }
      }
      await cluster.waitUntilServing();
      stack.log('  PostgreSQL started; cluster serving');
    },
  });
  const client = clientCounts(outcomes);
  client.counts['PostgreSQL restarts'] = count;
  client.counts['Temporal services restarted after it'] = serviceRestarts;
  return merge('PostgreSQL restarted under Temporal cluster and Onceflow', `${count} PostgreSQL stops of 3 s`, startedAt, client, await checkInvariants(stack, keys));
}

export const clusterScenarios = {
  'history-kill': (stack: FaultStack, settings: ScenarioSettings) => killService(stack, settings, 'history'),
  'matching-kill': (stack: FaultStack, settings: ScenarioSettings) => killService(stack, settings, 'matching'),
  'postgres-restart': postgresRestart,
} as const;
type ScenarioName = keyof typeof clusterScenarios;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const ci = argv.includes('--ci');
  const onlyIndex = argv.indexOf('--only');
  const names = (onlyIndex >= 0 ? argv[onlyIndex + 1]!.split(',') : Object.keys(clusterScenarios)) as ScenarioName[];
  for (const name of names) if (!(name in clusterScenarios)) throw new Error(`unknown scenario ${name}; known: ${Object.keys(clusterScenarios).join(', ')}`);
  const startedAt = Date.now();
  const log = (line: string) => process.stdout.write(`[faults:cluster +${Math.round((Date.now() - startedAt) / 1000)}s] ${line}\n`);
  log(`${ci ? 'CI (reduced)' : 'full'} cluster fault suite on Temporal server ${TEMPORAL_SERVER_VERSION}: ${names.join(', ')}`);
  await mkdir(path.join(ROOT, 'faults/results'), { recursive: true });
  const stack = await startFaultStack(log, { temporal: 'cluster' });
  const results: ScenarioResult[] = [];
  try {
    for (const name of names) {
      log(`── ${name} ──`);
      try {
        const result = await clusterScenarios[name](stack, { ci });
        results.push({ ...result, name: `cluster ${name}` });
        log(`${name}: ${result.violations.length === 0 ? 'all invariants held' : `BROKEN: ${result.violations.join('; ')}`} (${result.durationSeconds} s)`);
      } catch (error) {
        results.push({ name: `cluster ${name}`, injected: '(scenario crashed)', durationSeconds: 0, counts: {}, violations: [`scenario failed to run: ${(error as Error).message}`] });
        log(`${name} CRASHED: ${(error as Error).stack}`);
        for (const process of Object.values(stack.infra.cluster?.services ?? {})) if (!process.alive()) await process.start().catch(() => undefined);
        for (const role of ['worker', 'relay', 'api'] as const) if (!stack.processes[role]?.alive()) await stack.startRole(role).catch(() => undefined);
      }
    }
  } finally {
    log('stopping');
    await stack.stop();
  }
  const lines = ['| scenario | injected | counted | invariants |', '| --- | --- | --- | --- |'];
  for (const r of results) {
    const counts = Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`| ${r.name} (${r.durationSeconds} s) | ${r.injected} | ${counts} | ${r.violations.length === 0 ? 'held ✅' : `BROKEN ❌ ${r.violations.join('; ')}`} |`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);
  await writeFile(
    path.join(ROOT, 'faults/results/cluster-latest.json'),
    `${JSON.stringify({ finishedAt: new Date().toISOString(), ci, temporal: `server ${TEMPORAL_SERVER_VERSION}, 4 shards, 4 service processes`, durationSeconds: Math.round((Date.now() - startedAt) / 1000), machine: machineInfo(), results }, null, 2)}\n`,
  );
  const broken = results.filter((r) => r.violations.length > 0);
  process.stdout.write(broken.length ? `\n${broken.length} cluster scenario(s) broke an invariant\n` : '\nevery invariant held in every cluster scenario\n');
  process.exit(broken.length > 0 ? 1 : 0);
}

main().catch((error: unknown) => {
  process.stderr.write(`faults:cluster: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
