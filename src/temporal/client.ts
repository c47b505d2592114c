import { Client, Connection } from '@temporalio/client';

export interface TemporalClientOptions {
  address: string;
  namespace: string;
  /** Default 10 s; how long the first connect may take. */
  connectTimeoutMs?: number;
}

/** Connects a Temporal client. Throws when the frontend is unreachable. */
export async function connectTemporalClient(options: TemporalClientOptions): Promise<Client> {
  const connection = await Connection.connect({
    address: options.address,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
  });
  return new Client({ connection, namespace: options.namespace });
}

/** Deep link to a workflow execution in the Temporal Web UI. */
export function temporalUiLink(uiBaseUrl: string, namespace: string, workflowId: string, runId?: string | null): string {
  const base = `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}/history` : base;
}
