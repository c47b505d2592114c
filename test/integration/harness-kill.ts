/**
 * The proof that a harness's servers die with it: run the harness's own start
 * function in a child process (fixtures/harness-stack.ts), SIGKILL that child
 * as a CI timeout or the OOM killer would, then look for every process it had
 * started and every port they listened on.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { assertPortFree } from '../../dev/ports';
import { descendantsOf, listeningPorts, waitUntilGone, type ProcessEntry } from './process-tree';

export const HARNESSES = ['test-tier', 'cluster-test-tier', 'bench', 'bench-cluster'] as const;
export type Harness = (typeof HARNESSES)[number];

/** What the fixture prints once its servers run. */
export interface HarnessReady {
  stateDir: string;
  temporalAddress: string;
  databaseUrl: string;
  /** bench-cluster: the history service's pid before and after its kill and start through the keeper. */
  historyPids?: [number | undefined, number | undefined];
}

export interface KilledHarness {
  ready: HarnessReady;
  /** Every process below the harness just before the kill. */
  processes: ProcessEntry[];
  /** The TCP ports those processes listened on. */
  ports: number[];
  /** Processes still running once the wait was over (SIGKILLed afterwards, so no test inherits them). */
  survivors: ProcessEntry[];
  /** Ports still taken then. */
  takenPorts: number[];
}

const ROOT = path.resolve(__dirname, '../..');

/** Starts `harness`, SIGKILLs it once its servers run, and waits up to `timeoutMs` for what it started to go. */
export async function killHarness(harness: Harness, timeoutMs = 120_000): Promise<KilledHarness> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'harness-stack.ts'), harness], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ready: HarnessReady | undefined;
  let processes: ProcessEntry[] = [];
  try {
    const deadline = Date.now() + 300_000;
    for (;;) {
      const line = stdout.split('\n').find((l) => l.startsWith('ready '));
      if (line) {
        ready = JSON.parse(line.slice('ready '.length)) as HarnessReady;
        break;
      }
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the ${harness} harness did not come up:\n${stderr.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    processes = descendantsOf(child.pid!);
    const ports = listeningPorts(processes.map((p) => p.pid));
    child.kill('SIGKILL');
    await exited;
    const survivors = await waitUntilGone(processes, timeoutMs);
    const takenPorts: number[] = [];
    for (const port of ports) await assertPortFree(port, 'a harness port').catch(() => takenPorts.push(port));
    return { ready, processes, ports, survivors, takenPorts };
  } finally {
    child.kill('SIGKILL');
    for (const entry of await waitUntilGone(processes, 0)) process.kill(entry.pid, 'SIGKILL');
    if (ready) await rm(ready.stateDir, { recursive: true, force: true });
  }
}

/**
 * What every harness must leave: the snapshot held its PostgreSQL and its
 * Temporal frontend listening (so "nothing left" proves something), and
 * after the kill no process of it runs and no port of it is taken.
 */
export function expectNothingLeft(killed: KilledHarness): void {
  expect(killed.processes.map((p) => p.comm)).toContain('postgres');
  expect(killed.ports).toEqual(expect.arrayContaining([Number(new URL(killed.ready.databaseUrl).port), Number(killed.ready.temporalAddress.split(':')[1])]));
  expect(killed.survivors).toEqual([]);
  expect(killed.takenPorts).toEqual([]);
}
