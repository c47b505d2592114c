/**
 * `npm run faults` (full) and `npm run faults:ci` (reduced, under ~8 minutes):
 * starts a real stack, runs each fault scenario against it, prints the table
 * of what was injected and what was counted, writes faults/results/latest.json,
 * and exits 1 when any invariant broke.
 *
 * Flags: --ci   --only worker-kill,api-kill,postgres-restart,temporal-restart,relay-kill,gemini-chaos,schemathesis
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../bench/lib/stack';
import { machineInfo } from '../bench/lib/stats';
import { startFaultStack } from './lib/harness';
import type { ScenarioResult } from './lib/load';
import { scenarios } from './scenarios';

type ScenarioName = keyof typeof scenarios;

/** schemathesis lives in a project-local venv; installed from PyPI on first use. */
function ensureSchemathesis(log: (line: string) => void): void {
  const venv = path.join(ROOT, '.onceflow/tools/schemathesis-venv');
  if (existsSync(path.join(venv, 'bin/st'))) return;
  log(`installing schemathesis into ${venv} (pip, once)`);
  const steps: [string, string[]][] = [
    ['python3', ['-m', 'venv', venv]],
    [path.join(venv, 'bin/pip'), ['install', '--quiet', 'schemathesis>=4,<5']],
  ];
  for (const [command, args] of steps) {
    const result = spawnSync(command, args, { stdio: 'inherit', timeout: 300_000 });
    if (result.status !== 0) {
      log(`could not install schemathesis (${command} exited ${result.status}); the schemathesis scenario will report it`);
      return;
    }
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const ci = argv.includes('--ci');
  const onlyIndex = argv.indexOf('--only');
  const names = (onlyIndex >= 0 ? argv[onlyIndex + 1]!.split(',') : Object.keys(scenarios)) as ScenarioName[];
  for (const name of names) if (!(name in scenarios)) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  const startedAt = Date.now();
  const log = (line: string) => process.stdout.write(`[faults +${Math.round((Date.now() - startedAt) / 1000)}s] ${line}\n`);
  log(`${ci ? 'CI (reduced)' : 'full'} fault suite: ${names.join(', ')}`);
  if (names.includes('schemathesis')) ensureSchemathesis(log);
  await mkdir(path.join(ROOT, 'faults/results'), { recursive: true });

  log('starting PostgreSQL, Temporal (state file), gemini-offline, worker, relay, api, example consumer');
  const stack = await startFaultStack(log);
  const results: ScenarioResult[] = [];
  try {
    for (const name of names) {
      log(`── ${name} ──`);
      try {
        const result = await scenarios[name](stack, { ci });
        results.push(result);
        log(`${name}: ${result.violations.length === 0 ? 'all invariants held' : `BROKEN: ${result.violations.join('; ')}`} (${result.durationSeconds} s)`);
      } catch (error) {
        results.push({ name, injected: '(scenario crashed)', durationSeconds: 0, counts: {}, violations: [`scenario failed to run: ${(error as Error).message}`] });
        log(`${name} CRASHED: ${(error as Error).stack}`);
        // A crashed scenario may have left a role down; bring the stack back for the next one.
        for (const role of ['worker', 'relay', 'api'] as const) if (!stack.processes[role]?.alive()) await stack.startRole(role).catch(() => undefined);
      }
    }
  } finally {
    log('stopping');
    await stack.stop();
  }

  const table = render(results);
  process.stdout.write(`\n${table}\n`);
  await writeFile(
    path.join(ROOT, 'faults/results/latest.json'),
    `${JSON.stringify({ finishedAt: new Date().toISOString(), ci, durationSeconds: Math.round((Date.now() - startedAt) / 1000), machine: machineInfo(), results }, null, 2)}\n`,
  );
  const broken = results.filter((r) => r.violations.length > 0);
  if (broken.length > 0) {
    process.stdout.write(`\n${broken.length} scenario(s) broke an invariant: ${broken.map((r) => r.name).join('; ')}\n`);
  } else {
    process.stdout.write('\nevery invariant held in every scenario\n');
  }
  // Explicit: a dependency's exit hook would otherwise end the process with 0.
  process.exit(broken.length > 0 ? 1 : 0);
}

function render(results: ScenarioResult[]): string {
  const lines = ['| scenario | injected | counted | invariants |', '| --- | --- | --- | --- |'];
  for (const r of results) {
    const counts = Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`| ${r.name} (${r.durationSeconds} s) | ${r.injected} | ${counts} | ${r.violations.length === 0 ? 'held ✅' : `BROKEN ❌ ${r.violations.join('; ')}`} |`);
  }
  return lines.join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`faults: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
