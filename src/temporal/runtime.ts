import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../observability/logger';

export interface TemporalRuntimeOptions {
  /** Where Core's own log lines go (at WARN and above). */
  logger: Logger;
  /** Port for Core's Prometheus exporter (task slots, poll and RPC latencies). Default: no exporter. */
  sdkMetricsPort?: number;
}

/**
 * Installs the Temporal Core runtime behind every NativeConnection (the
 * worker's, and the api's client connection) before anything creates the
 * default one. The default runtime shuts itself down on SIGINT/SIGTERM: its
 * connections would close while runEntrypoint still drains requests and
 * tasks in order. Call once per process, first.
 */
export function installTemporalRuntime(options: TemporalRuntimeOptions): void {
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error',
  };
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => options.logger[levels[entry.level]]({ sdk: entry.meta }, entry.message)),
    shutdownSignals: [],
    ...(options.sdkMetricsPort !== undefined
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `0.0.0.0:${options.sdkMetricsPort}` }, metricPrefix: 'temporal_' } } }
      : {}),
  });
}
