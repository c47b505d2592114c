import { InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError, loadConfig, startupSettings, type Config } from '../config';
import { createPool, type Pool } from '../db/pool';
import { describeStartupError } from '../process/entrypoint';
import { CliError, ExitCode } from './errors';
import { createOutput, type Output } from './output';

export interface CommandContext {
  config: Config;
  out: Output;
  /** `--json` was given: print machine-readable output only. */
  json: boolean;
}

/** Adds `--json` to a command. */
export function withJson(command: Command): Command {
  return command.addOption(new Option('--json', 'print JSON instead of a table (for scripts)'));
}

/**
 * Runs a command action: config parsed once, every error printed as one line
 * on stderr, and the documented exit code. Never a stack trace unless
 * LOG_LEVEL=debug.
 */
export async function runCommand(options: { json?: boolean }, action: (context: CommandContext) => Promise<ExitCode | void>): Promise<void> {
  let code: number;
  try {
    const config = loadConfig();
    const returned = await action({ config, out: createOutput(), json: options.json === true });
    code = typeof returned === 'number' ? returned : ExitCode.Ok;
  } catch (error) {
    code = error instanceof CliError ? error.exitCode : error instanceof ConfigError ? ExitCode.Usage : ExitCode.Failure;
    const message = error instanceof CliError ? error.message : describeStartupError(error);
    process.stderr.write(`onceflow: ${message}\n`);
    if (startupSettings().debug) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
  }
  process.exitCode = code;
}

/** A pool for one CLI command; DATABASE_URL is required (exit 2 with one line otherwise). */
export async function withPool<T>(config: Config, use: (pool: Pool) => Promise<T>): Promise<T> {
  if (!config.DATABASE_URL) {
    throw new CliError('DATABASE_URL is not set — point it at Onceflow’s PostgreSQL (`npm start` prints the one it uses)', ExitCode.Usage);
  }
  const pool = createPool({ connectionString: config.DATABASE_URL, max: 2, applicationName: 'onceflow-cli' });
  try {
    return await use(pool);
  } finally {
    await pool.end();
  }
}

/** Parses a positive integer option, or exits 2 naming the option. */
export function positiveInt(name: string): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return parsed;
  };
}

/** Parses an option that takes a JSON object (an operation's input), or exits 2 naming the option. */
export function jsonObject(name: string): (value: string) => Record<string, unknown> {
  return (value: string) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch (error) {
      throw new InvalidArgumentError(`${name} is not JSON: ${(error as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`${name} must be a JSON object`);
    return parsed as Record<string, unknown>;
  };
}
