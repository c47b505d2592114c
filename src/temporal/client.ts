import { Client, type ClientPlugin } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';

export interface TemporalClientOptions {
  address: string;
  namespace: string;
  /** Default 10 s; how long the first connect may take. */
  connectTimeoutMs?: number;
  /** gRPC compression of requests (TEMPORAL_GRPC_COMPRESSION). Default `none`. */
  compression?: 'none' | 'gzip';
  /** E.g. the OpenTelemetry plugin; default none. */
  plugins?: ClientPlugin[];
}

/**
 * Connects a Temporal client over a NativeConnection: the SDK's Rust (Core)
 * gRPC stack, the one its workers use. A facade start is one gRPC call per
 * request, and the pure-JS `Connection` (grpc-js) spent about 3 ms of the
 * api's CPU on each one on our 2-core benchmark machine, more than the
 * facade's own work; Core's costs less (bench/README.md). Install the
 * runtime first (src/temporal/runtime.ts). Throws when the frontend is
 * unreachable or does not answer within the connect timeout.
 */
export async function connectTemporalClient(options: TemporalClientOptions): Promise<Client> {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const connecting = NativeConnection.connect({ address: options.address, grpcCompression: { codec: options.compression ?? 'none' } });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Temporal at ${options.address} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  let connection: NativeConnection;
  try {
    connection = await Promise.race([connecting, timedOut]);
  } catch (error) {
    // A connection that arrives after the timeout would keep the process alive.
    connecting.then((late) => late.close(), () => undefined);
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return new Client({ connection, namespace: options.namespace, plugins: options.plugins ?? [] });
}

/** Deep link to a workflow execution in the Temporal Web UI. */
export function temporalUiLink(uiBaseUrl: string, namespace: string, workflowId: string, runId?: string | null): string {
  const base = `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}/history` : base;
}
