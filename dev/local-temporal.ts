import { allSearchAttributes } from '../workflows/definitions';
import { LocalStackError } from './errors';
import { noTemporalBinaryError, type TemporalBinary } from './temporal-binary';

export interface LocalTemporal {
  address: string;
  namespace: string;
  uiUrl: string | undefined;
  stop(): Promise<void>;
}

export interface StartLocalTemporalOptions {
  binary: TemporalBinary;
  port: number;
  /** Web UI port; undefined turns the UI off (tests). */
  uiPort?: number;
  /** SQLite file that keeps state across restarts; undefined keeps it in memory. */
  dbFilename?: string;
  namespace?: string;
  /** Where the SDK download lands if it comes to that. */
  downloadDir: string;
  /** Dynamic config on top of LOCAL_TEMPORAL_DYNAMIC_CONFIG (the benchmarks turn eager workflow start on); default none. */
  dynamicConfig?: Readonly<Record<string, number | boolean>>;
}

/**
 * Server settings of the local dev server (`temporal server start-dev` takes
 * no dynamic-config file; each value is a --dynamic-config-value flag).
 *
 * - history.transferProcessorMaxPollRPS: the dev server has one history
 *   shard, and its transfer-queue reader polls at most this many times a
 *   second (default 20). Every activity task and every workflow task after an
 *   activity goes through it, so from about 20 tasks a second (one sequential
 *   client) each waits up to 50 ms for the reader: measured here, a bare
 *   one-activity workflow took 100 ms at the median with the default and
 *   17-20 ms with 1000 (/work/shared/ENVIRONMENT.md). A cluster spreads tasks
 *   over hundreds of shards and rarely meets this limit.
 * - matching.numTaskqueue{Read,Write}Partitions = 1: a local stack has one
 *   worker process; with the default four partitions its few pollers and the
 *   tasks spread over four, and a task may wait to be forwarded to a partition
 *   that has a poller.
 */
export const LOCAL_TEMPORAL_DYNAMIC_CONFIG: Readonly<Record<string, number | boolean>> = {
  'history.transferProcessorMaxPollRPS': 1000,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

/**
 * SQLite pragmas for the persistent file of `make start` (dbFilename): a
 * write-ahead log and NORMAL sync, the usual settings for a local SQLite file.
 * A power loss may lose the last transactions of the dev server (never
 * corrupt the file); production runs a real cluster on PostgreSQL.
 */
export const LOCAL_TEMPORAL_SQLITE_PRAGMAS: Readonly<Record<string, string>> = {
  journal_mode: 'wal',
  synchronous: 'normal',
};

/** The CLI flags of both tables (and of `dynamicConfig`); pragmas only with a file (the in-memory store ignores them). */
export function localTemporalServerArgs(options: { persistent: boolean; dynamicConfig?: Readonly<Record<string, number | boolean>> }): string[] {
  return [
    ...Object.entries({ ...LOCAL_TEMPORAL_DYNAMIC_CONFIG, ...options.dynamicConfig }).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]),
    ...(options.persistent ? Object.entries(LOCAL_TEMPORAL_SQLITE_PRAGMAS).flatMap(([key, value]) => ['--sqlite-pragma', `${key}=${value}`]) : []),
  ];
}

/**
 * Runs the real Temporal dev server (the `temporal` CLI) through the SDK's own
 * ephemeral-server manager, with Onceflow's search attributes registered.
 */
export async function startLocalTemporal(options: StartLocalTemporalOptions): Promise<LocalTemporal> {
  const namespace = options.namespace ?? 'default';
  const { TestWorkflowEnvironment } = await loadTemporalTesting();
  try {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: options.binary.path
          ? { type: 'existing-path', path: options.binary.path }
          : { type: 'cached-download', downloadDir: options.downloadDir },
        ip: '127.0.0.1',
        port: options.port,
        ui: options.uiPort !== undefined,
        uiPort: options.uiPort,
        dbFilename: options.dbFilename,
        namespace,
        searchAttributes: allSearchAttributes,
        log: { format: 'json', level: 'error' },
        extraArgs: localTemporalServerArgs({ persistent: options.dbFilename !== undefined, dynamicConfig: options.dynamicConfig }),
      },
    });
    return {
      address: `127.0.0.1:${options.port}`,
      namespace,
      uiUrl: options.uiPort !== undefined ? `http://localhost:${options.uiPort}` : undefined,
      stop: () => env.teardown(),
    };
  } catch (cause) {
    // No binary and no download: a port hint here would send the user the wrong way.
    if (!options.binary.path && /failed to download/i.test((cause as Error)?.message ?? '')) throw noTemporalBinaryError(options.binary, cause);
    throw new LocalStackError(
      `the Temporal dev server did not start on port ${options.port}: ${(cause as Error).message.split('\n')[0]}`,
      'check that TEMPORAL_DEV_PORT and TEMPORAL_UI_PORT are free, or set TEMPORAL_CLI_PATH to a working `temporal` binary',
      { cause },
    );
  }
}

/**
 * The SDK's ephemeral-server manager: an optional dependency of the package,
 * needed only by `onceflow start` (and the tests), so an install without
 * optional dependencies still runs api, worker and relay.
 */
async function loadTemporalTesting() {
  try {
    return await import('@temporalio/testing');
  } catch (cause) {
    throw new LocalStackError(
      'the local Temporal dev server needs @temporalio/testing, which is not installed',
      'install the package with its optional dependencies (npm install without --omit=optional), or run api, worker and relay against your own Temporal',
      { cause },
    );
  }
}
