import type { ChildProcess } from 'node:child_process';
import { findFreePort } from '../../dev/ports';
import { spawnRole, type Role } from '../../dev/supervisor';
import { SUPERVISOR_PID_ENV } from '../../src/config';
import { testInfra } from './infra';

export interface RunningProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** Resolves once a line matching `pattern` appeared in stdout or stderr. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts a real Onceflow process (api, worker, relay, gemini-offline) as the
 * supervisor would; it stops when this jest worker is gone (SIGKILLed with
 * the run), as a role does when `onceflow start` dies.
 */
export function startProcess(role: Role, env: NodeJS.ProcessEnv): RunningProcess {
  const child = spawnRole(role, { ...process.env, [SUPERVISOR_PID_ENV]: String(process.pid), ...env });
  let output = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(output)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (pattern, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(output)) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern} in:\n${output}`)), timeoutMs);
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before ${pattern} appeared:\n${output}`));
        });
      }),
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

export interface WorkerProcessOptions {
  taskQueue: string;
  /** The fake Gemini the worker calls (GEMINI_API_KEY stays empty). */
  geminiUrl: string;
  /** Default: the test run's PostgreSQL. */
  databaseUrl?: string;
  /** Default: the test run's Temporal dev server (a partition proxy in front of it, for some tests). */
  temporalAddress?: string;
  /** Default: a free port. */
  metricsPort?: number;
  /** Anything else the test needs set (timeouts, kill points). */
  env?: NodeJS.ProcessEnv;
}

/**
 * A real worker process, as `onceflow worker` runs it, on the test's own task
 * queue; resolves once it polls. The crash tests start these so they can
 * SIGKILL them.
 */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<RunningProcess> {
  const infra = testInfra();
  const worker = startProcess('worker', {
    DATABASE_URL: options.databaseUrl ?? infra.databaseUrl,
    TEMPORAL_ADDRESS: options.temporalAddress ?? infra.temporalAddress,
    TEMPORAL_NAMESPACE: infra.temporalNamespace,
    TEMPORAL_TASK_QUEUE: options.taskQueue,
    GEMINI_BASE_URL: options.geminiUrl,
    GEMINI_API_KEY: '',
    WORKER_METRICS_PORT: String(options.metricsPort ?? (await findFreePort())),
    WORKER_SDK_METRICS_PORT: String(await findFreePort()),
    // info at least: readiness is its `worker polling` line
    LOG_LEVEL: 'info',
    ...options.env,
  });
  await worker.waitForOutput(/worker polling/, 120_000);
  return worker;
}

/** Waits for a child started with piped stdout and stderr to exit; its exit code and everything it printed. */
export async function outputUntilExit(child: ChildProcess): Promise<{ code: number | null; output: string }> {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  return { code, output };
}
