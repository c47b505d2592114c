import { Client, type ClientPlugin, Connection } from '@temporalio/client';

export interface TemporalClientOptions {
  address: string;
  namespace: string;
  /** Default 10 s; how long the first connect may take. */
  connectTimeoutMs?: number;
  /** E.g. the OpenTelemetry plugin; default none. */
  plugins?: ClientPlugin[];
}

/** Connects a Temporal client. Throws when the frontend is unreachable. */
export async function connectTemporalClient(options: TemporalClientOptions): Promise<Client> {
  const connection = await Connection.connect({
    address: options.address,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
  });
  return new Client({ connection, namespace: options.namespace, plugins: options.plugins ?? [] });
}

/** Deep link to a workflow execution in the Temporal Web UI. */
export function temporalUiLink(uiBaseUrl: string, namespace: string, workflowId: string, runId?: string | null): string {
  const base = `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}/history` : base;
}
