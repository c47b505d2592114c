/**
 * The Temporal server and its schema tool, built from the Go module proxy
 * into the project's state folder once and reused afterwards. No prebuilt
 * server binary can be downloaded on the machines Onceflow is tested on; the
 * module proxy is reachable, so `go install` is the one way in.
 */
import { execFile } from 'node:child_process';
import { access, constants, cp, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { LocalStackError } from '../errors';

const exec = promisify(execFile);

/** The server release the cluster runs; docker-compose.yml pins the same one. */
export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
/** 1.32.2 needs Go 1.26.10 or later; the go command fetches this toolchain from the proxy once. */
export const GO_TOOLCHAIN = 'go1.27.3';
const MODULE = 'go.temporal.io/server';
/**
 * The standalone Web UI server (its assets are embedded in the Go module).
 * 2.54.1 is the UI the `temporal` CLI 1.9.1 bundles with server 1.32, so the
 * pair is one Temporal itself ships together; docker-compose.yml pins the same.
 */
export const TEMPORAL_UI_VERSION = 'v2.54.1';
const UI_MODULE = 'github.com/temporalio/ui-server/v2';

export interface TemporalServerTools {
  /** The `server` binary (frontend, history, matching, worker in one executable). */
  server: string;
  /** The schema tool (`temporal-sql-tool` in release archives; `sql` when built with go install). */
  sqlTool: string;
  /** Copy of schema/postgresql/v12 from the module: `temporal/versioned` and `visibility/versioned`. */
  schemaDir: string;
  /** True when this call built them; false when an earlier build was reused. */
  built: boolean;
}

export interface EnsureTemporalServerOptions {
  /** `<stateDir>/tools`; the build lands in `<toolsDir>/temporal-server/<version>/`. */
  toolsDir: string;
  log?: (line: string) => void;
  /** Environment go runs with; default process.env. */
  env?: NodeJS.ProcessEnv;
}

async function exists(file: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(file, mode);
    return true;
  } catch {
    return false;
  }
}

/** Builds (first time) or finds (later) the server, the schema tool and the PostgreSQL schema files. */
export async function ensureTemporalServer(options: EnsureTemporalServerOptions): Promise<TemporalServerTools> {
  const log = options.log ?? (() => undefined);
  const home = path.resolve(options.toolsDir, 'temporal-server', TEMPORAL_SERVER_VERSION);
  const bin = path.join(home, 'bin');
  const tools = { server: path.join(bin, 'server'), sqlTool: path.join(bin, 'sql'), schemaDir: path.join(home, 'schema') };
  const ready = async () =>
    (await exists(tools.server, constants.X_OK)) &&
    (await exists(tools.sqlTool, constants.X_OK)) &&
    (await exists(path.join(tools.schemaDir, 'visibility', 'versioned')));
  if (await ready()) return { ...tools, built: false };

  const env = { ...(options.env ?? process.env), GOTOOLCHAIN: GO_TOOLCHAIN, GOBIN: bin };
  const go = await findGo(env, `builds the Temporal server ${TEMPORAL_SERVER_VERSION} from source`);
  for (const command of ['server', 'tools/sql']) {
    await goInstall(go, `${MODULE}/cmd/${command}@${TEMPORAL_SERVER_VERSION}`, env, log);
  }
  // The schema files ship inside the module, not the binaries; copy them next
  // to the binaries so a later run needs neither the module cache nor go.
  const { stdout } = await exec(go, ['env', 'GOMODCACHE'], { env });
  const source = path.join(stdout.trim(), `${MODULE}@${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12');
  await rm(tools.schemaDir, { recursive: true, force: true });
  await cp(source, tools.schemaDir, { recursive: true });
  if (!(await ready())) throw new LocalStackError(`the Temporal server build in ${home} is incomplete`, `delete ${home} and start again`);
  return { ...tools, built: true };
}

/** The Web UI server binary, built (first time) into `<toolsDir>/temporal-ui-server/<version>/bin/server` or found (later). */
export async function ensureTemporalUi(options: EnsureTemporalServerOptions): Promise<{ binary: string; built: boolean }> {
  const log = options.log ?? (() => undefined);
  const bin = path.resolve(options.toolsDir, 'temporal-ui-server', TEMPORAL_UI_VERSION, 'bin');
  const binary = path.join(bin, 'server');
  if (await exists(binary, constants.X_OK)) return { binary, built: false };
  const env = { ...(options.env ?? process.env), GOTOOLCHAIN: GO_TOOLCHAIN, GOBIN: bin };
  const go = await findGo(env, `builds the Temporal Web UI server ${TEMPORAL_UI_VERSION} from source`);
  await goInstall(go, `${UI_MODULE}/cmd/server@${TEMPORAL_UI_VERSION}`, env, log);
  if (!(await exists(binary, constants.X_OK))) throw new LocalStackError(`go install left no UI server at ${binary}`, `delete ${path.dirname(bin)} and start again`);
  return { binary, built: true };
}

async function goInstall(go: string, target: string, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  await mkdir(env.GOBIN!, { recursive: true });
  log(`building ${target} with go install (${GO_TOOLCHAIN}); the first build takes minutes on 2 cores …`);
  try {
    await exec(go, ['install', target], { env, maxBuffer: 64 * 1024 * 1024 });
  } catch (cause) {
    throw new LocalStackError(
      `go install ${target} failed: ${lastLine(cause)}`,
      `the build needs the Go module proxy (GOPROXY) and the ${GO_TOOLCHAIN} toolchain it serves; run the command above by hand to see the full output`,
      { cause },
    );
  }
}

async function findGo(env: NodeJS.ProcessEnv, what: string): Promise<string> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'go');
    if (await exists(candidate, constants.X_OK)) return candidate;
  }
  throw new LocalStackError(
    `the Temporal cluster mode ${what}, and there is no \`go\` on PATH`,
    `install Go 1.22 or later (it fetches ${GO_TOOLCHAIN} itself), or run the server yourself and point TEMPORAL_ADDRESS at its frontend`,
  );
}

function lastLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  const lines = (e.stderr?.trim() || e.message || String(error)).split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? 'unknown error';
}
