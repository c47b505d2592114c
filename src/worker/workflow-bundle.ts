/**
 * The workflow bundle, built once per version of the workflow code and kept in
 * the state directory. Bundling workflows/ with webpack costs seconds of CPU
 * (about 2 s on an idle 2-core machine, several times that under load), which
 * every worker restart (a crash, a deploy, a scale-up) would otherwise pay
 * before it polls again: in the fault suite, where a worker is killed seconds
 * after each start, it was most of the time a worker took to come back.
 *
 * Content-addressed: the key hashes every file under workflows/ (the lint
 * rule forbids value imports from outside it, so nothing else reaches the
 * bundle's own code), the version of the Temporal workflow SDK, and the names
 * of the plugins (tracing adds interceptors to the bundle). A stale file can
 * therefore never be loaded; old ones are simply left behind.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode, type WorkerPlugin } from '@temporalio/worker';
import type { Logger } from '../observability/logger';

const WORKFLOWS_DIR = path.resolve(__dirname, '../../workflows');

export interface WorkflowBundleOptions {
  /** Where bundles are kept, e.g. `<ONCEFLOW_STATE_DIR>/cache`. */
  cacheDir: string;
  /** The worker's plugins; the bundle must be built with the same ones. Default none. */
  plugins?: WorkerPlugin[];
  logger: Logger;
}

/**
 * For Worker.create's `workflowBundle`: the cached file (`{ codePath }`), built
 * now if no current one exists; the code itself when the cache directory
 * cannot be written (a read-only file system), so the worker still starts.
 */
export async function loadWorkflowBundle(options: WorkflowBundleOptions): Promise<{ codePath: string } | { code: string }> {
  const plugins = options.plugins ?? [];
  const key = await workflowBundleKey(WORKFLOWS_DIR, plugins);
  const codePath = path.join(options.cacheDir, `workflow-bundle-${key}.js`);
  if (await exists(codePath)) {
    options.logger.debug({ codePath }, 'workflow bundle loaded from the cache');
    return { codePath };
  }
  const startedMs = Date.now();
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_DIR, plugins, logger: webpackLogger(options.logger) });
  try {
    await mkdir(options.cacheDir, { recursive: true });
    // Written aside and renamed: a worker starting at the same moment never
    // loads a half-written file, and two that both built it write the same bytes.
    const partial = `${codePath}.${process.pid}.partial`;
    await writeFile(partial, code);
    await rename(partial, codePath);
  } catch (error) {
    options.logger.warn({ err: (error as Error).message, cacheDir: options.cacheDir }, 'could not cache the workflow bundle; every start bundles again');
    return { code };
  }
  options.logger.info({ codePath, durationMs: Date.now() - startedMs }, 'workflow bundle built and cached');
  return { codePath };
}

/** The cache key of the bundle of `workflowsDir` built with `plugins` (exported for its test). */
export async function workflowBundleKey(workflowsDir: string, plugins: readonly Pick<WorkerPlugin, 'name'>[]): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`@temporalio/workflow ${await workflowSdkVersion()}\n`);
  hash.update(`plugins ${plugins.map((plugin) => plugin.name).join(',')}\n`);
  for (const file of await filesUnder(workflowsDir)) {
    hash.update(`${path.relative(workflowsDir, file)}\n`);
    hash.update(await readFile(file));
  }
  return hash.digest('hex').slice(0, 24);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? filesUnder(path.join(dir, entry.name)) : Promise.resolve([path.join(dir, entry.name)]))),
  );
  return files.flat().sort();
}

async function workflowSdkVersion(): Promise<string> {
  return (JSON.parse(await readFile(require.resolve('@temporalio/workflow/package.json'), 'utf8')) as { version: string }).version;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile() && s.size > 0,
    () => false,
  );
}

/** webpack's warnings and errors, in our log; its progress lines are not worth one each. */
function webpackLogger(logger: Logger) {
  const drop = () => undefined;
  return {
    trace: drop, debug: drop, info: drop, log: drop,
    warn: (message: string) => logger.warn({ component: 'workflow-bundle' }, message),
    error: (message: string) => logger.error({ component: 'workflow-bundle' }, message),
  };
}
