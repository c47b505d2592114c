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
