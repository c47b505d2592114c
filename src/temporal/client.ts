import { Client, type ClientPlugin } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
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
  /** Encrypts every payload the client sends and decrypts what it reads (payloadCodecFromConfig); default none, payloads in clear. */
  payloadCodec?: PayloadCodec;
}

/**
 * Connects a Temporal client over a NativeConnection: the SDK's Rust (Core)
 * gRPC stack, the one its workers use. A facade start is one gRPC call per
 * request; over the pure-JS `Connection` (grpc-js) a start cost the api
 * 6.3 ms of CPU on our 2-core benchmark machine, over Core's 5.4 ms
 * (bench/README.md). Core also retries UNAVAILABLE within the call's
 * deadline, so a Temporal frontend that restarts within it costs a client no
 * 503. Install the runtime first (src/temporal/runtime.ts). Throws when the
 * frontend is unreachable or does not answer within the connect timeout.
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
  return new Client({
    connection,
    namespace: options.namespace,
    plugins: options.plugins ?? [],
    ...(options.payloadCodec ? { dataConverter: { payloadCodecs: [options.payloadCodec] } } : {}),
  });
}

/** Deep link to a workflow execution in the Temporal Web UI. */
export function temporalUiLink(uiBaseUrl: string, namespace: string, workflowId: string, runId?: string | null): string {
  const base = `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}/history` : base;
}
