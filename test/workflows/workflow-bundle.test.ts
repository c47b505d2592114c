import { cp, mkdtemp, readdir, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../src/observability/logger';
import { loadWorkflowBundle, workflowBundleKey } from '../../src/worker/workflow-bundle';

/** A logger that keeps the messages it was given. */
function recordingLogger(): Logger & { messages: string[] } {
  const messages: string[] = [];
  const record = (_fields: unknown, message: string) => void messages.push(message);
  return { messages, debug: record, info: record, warn: record, error: record } as unknown as Logger & { messages: string[] };
}

describe('the cached workflow bundle', () => {
  it('is built once per version of the workflow code and loaded from the cache on every later start', async () => {
    const cacheDir = await mkdtemp(path.join(tmpdir(), 'onceflow-bundle-'));
    const first = recordingLogger();
    const built = await loadWorkflowBundle({ cacheDir, logger: first });
    expect(first.messages).toEqual(['workflow bundle built and cached']);
    expect('codePath' in built && (await stat(built.codePath)).size).toBeGreaterThan(100_000);
    const builtAt = 'codePath' in built ? (await stat(built.codePath)).mtimeMs : 0;

    const second = recordingLogger();
    const loaded = await loadWorkflowBundle({ cacheDir, logger: second });
    expect(loaded).toEqual(built);
    expect(second.messages).toEqual(['workflow bundle loaded from the cache']);
    expect('codePath' in loaded && (await stat(loaded.codePath)).mtimeMs).toBe(builtAt);
    expect((await readdir(cacheDir)).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('keys the bundle by the workflow sources and the plugins, so a changed workflow is never served from an old file', async () => {
    const copy = await mkdtemp(path.join(tmpdir(), 'onceflow-workflows-'));
    await cp(path.resolve(__dirname, '../../workflows'), copy, { recursive: true });
    const original = await workflowBundleKey(copy, []);
    expect(await workflowBundleKey(copy, [])).toBe(original);
    expect(await workflowBundleKey(copy, [{ name: 'OpenTelemetryPlugin' }])).not.toBe(original);
    await appendFile(path.join(copy, 'generate-content.workflow.ts'), '\n// changed\n');
    expect(await workflowBundleKey(copy, [])).not.toBe(original);
    await writeFile(path.join(copy, 'new.workflow.ts'), 'export {};\n');
    const withNewFile = await workflowBundleKey(copy, []);
    expect(withNewFile).not.toBe(original);
  });

  it('still gives the worker its code when the cache cannot be written (a read-only state directory)', async () => {
    const parent = await mkdtemp(path.join(tmpdir(), 'onceflow-bundle-ro-'));
    const notADirectory = path.join(parent, 'file');
    await writeFile(notADirectory, 'in the way');
    const logger = recordingLogger();
    const bundle = await loadWorkflowBundle({ cacheDir: path.join(notADirectory, 'cache'), logger });
    expect('code' in bundle && bundle.code.length).toBeGreaterThan(100_000);
    expect(logger.messages).toEqual(['could not cache the workflow bundle; every start bundles again']);
  });
});
