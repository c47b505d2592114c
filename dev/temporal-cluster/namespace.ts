/**
 * What an operator does once per cluster before Onceflow's first start:
 * register the namespace with its retention, and register the custom search
 * attributes the workflows carry. The dev server takes both as flags; a real
 * cluster needs them through the operator API (what `temporal operator
 * namespace create` and `temporal operator search-attribute create` call).
 * Idempotent: a second run changes nothing that is already right.
 */
import { Client, Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { msToTs } from '@temporalio/common/lib/time';
import { LocalStackError } from '../errors';
import { allSearchAttributes } from '../../workflows/definitions';

export interface NamespaceSetup {
  address: string;
  /** Default `default`. */
  namespace?: string;
  /** How long closed workflows stay queryable; default 72. */
  retentionHours?: number;
  /** Give up at this time (ms since epoch); default 60 s from now. */
  deadline?: number;
}

const GRPC_ALREADY_EXISTS = 6;

export async function ensureNamespace(setup: NamespaceSetup): Promise<void> {
  const namespace = setup.namespace ?? 'default';
  const retentionSeconds = (setup.retentionHours ?? 72) * 3600;
  const deadline = setup.deadline ?? Date.now() + 60_000;
  // The frontend may still be joining the ring; every step below is safe to repeat.
  await retry(deadline, `namespace ${namespace} on ${setup.address}`, async () => {
    const connection = await Connection.connect({ address: setup.address, connectTimeout: 5_000 });
    try {
      const service = connection.workflowService;
      try {
        await service.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(retentionSeconds * 1000) });
      } catch (error) {
        if ((error as { code?: number }).code !== GRPC_ALREADY_EXISTS) throw error;
        const described = await service.describeNamespace({ namespace });
        if (Number(described.config?.workflowExecutionRetentionTtl?.seconds ?? 0) !== retentionSeconds) {
          await service.updateNamespace({ namespace, config: { workflowExecutionRetentionTtl: msToTs(retentionSeconds * 1000) } });
        }
      }
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = allSearchAttributes.filter((key) => !customAttributes || !(key.name in customAttributes));
      if (missing.length > 0) {
        await connection.operatorService.addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(missing.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!])),
        });
      }
      await probe(connection, namespace);
    } finally {
      await connection.close();
    }
  });
}

/**
 * The proof that the namespace serves: a workflow started with every search
 * attribute is accepted (the frontend's namespace and search-attribute caches
 * caught up, history owns the shard), then terminated. No worker is needed.
 */
async function probe(connection: Connection, namespace: string): Promise<void> {
  const client = new Client({ connection, namespace });
  const handle = await client.workflow.start('onceflowClusterProbe', {
    taskQueue: 'onceflow-cluster-probe',
    workflowId: `onceflow-cluster-probe-${Date.now()}`,
    typedSearchAttributes: new TypedSearchAttributes(allSearchAttributes.map((key) => ({ key, value: 'probe' }) as never)),
  });
  await handle.terminate('cluster readiness probe');
}

async function retry(deadline: number, what: string, attempt: () => Promise<void>): Promise<void> {
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) {
        throw new LocalStackError(`could not set up ${what}: ${(error as Error).message.split('\n')[0]}`, 'see the frontend and history logs of the cluster', { cause: error });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
