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
  const home = path.join(options.toolsDir, 'temporal-server', TEMPORAL_SERVER_VERSION);
  const bin = path.join(home, 'bin');
  const tools = { server: path.join(bin, 'server'), sqlTool: path.join(bin, 'sql'), schemaDir: path.join(home, 'schema') };
  const ready = async () =>
    (await exists(tools.server, constants.X_OK)) &&
    (await exists(tools.sqlTool, constants.X_OK)) &&
    (await exists(path.join(tools.schemaDir, 'visibility', 'versioned')));
  if (await ready()) return { ...tools, built: false };

  const env = { ...(options.env ?? process.env), GOTOOLCHAIN: GO_TOOLCHAIN, GOBIN: bin };
  const go = await findGo(env);
  await mkdir(bin, { recursive: true });
  for (const command of ['server', 'tools/sql']) {
    const target = `${MODULE}/cmd/${command}@${TEMPORAL_SERVER_VERSION}`;
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
  // The schema files ship inside the module, not the binaries; copy them next
  // to the binaries so a later run needs neither the module cache nor go.
  const { stdout } = await exec(go, ['env', 'GOMODCACHE'], { env });
  const source = path.join(stdout.trim(), `${MODULE}@${TEMPORAL_SERVER_VERSION}`, 'schema', 'postgresql', 'v12');
  await rm(tools.schemaDir, { recursive: true, force: true });
  await cp(source, tools.schemaDir, { recursive: true });
  if (!(await ready())) throw new LocalStackError(`the Temporal server build in ${home} is incomplete`, `delete ${home} and start again`);
  return { ...tools, built: true };
}

async function findGo(env: NodeJS.ProcessEnv): Promise<string> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'go');
    if (await exists(candidate, constants.X_OK)) return candidate;
  }
  throw new LocalStackError(
    `the Temporal cluster mode builds the Temporal server ${TEMPORAL_SERVER_VERSION} from source, and there is no \`go\` on PATH`,
    `install Go 1.22 or later (it fetches ${GO_TOOLCHAIN} itself), or run the server yourself and point TEMPORAL_ADDRESS at its frontend`,
  );
}

function lastLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  const lines = (e.stderr?.trim() || e.message || String(error)).split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? 'unknown error';
}
