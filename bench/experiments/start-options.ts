/**
 * What the facade's start and activity options cost the Temporal dev server,
 * one option group at a time against the bare one-activity workflow. Arm 6
 * showed the dev server spending 1-5 ms more CPU per facade operation than
 * per bare workflow; this isolates Temporal from the rest of the stack (no
 * HTTP, no PostgreSQL, an activity that answers at once).
 *
 *   npx tsx bench/experiments/start-options.ts        (ROUNDS=8 by default, about 6 min)
 *   PREFILL=20000 ONLY=bare,everything,+\ 3 npx tsx bench/experiments/start-options.ts
 *
 * PREFILL first starts that many workflows with every facade option on a task
 * queue no worker polls, as the full benchmark's starts arm leaves them, so
 * the variants run against a store that already holds them. ONLY keeps the
 * variants whose names start with one of its comma-separated prefixes.
 *
 * Each round runs 200 workflows of every variant (16 concurrent, start +
 * result()), in an order rotated per round; CPU of the `temporal` process
 * from /proc per workflow, including 1.2 s after each batch so that the
 * dressed variants' 1 s heartbeat timers fire inside its window. Reported:
 * the median over rounds, and the median of each round's difference to the
 * bare variant (the host drifts by more than the effects within minutes).
 * Results are in bench/README.md.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, type WorkflowStartOptions } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { keepTemporal } from '../../dev/keeper';
import { findFreePort } from '../../dev/ports';
import { resolveTemporalBinary } from '../../dev/temporal-binary';
import { searchAttributes } from '../../workflows/definitions';
import { snapshotCpu, type CpuGroup } from '../lib/cpu';
import { runClosedLoop } from '../lib/load';
import { installQuietTemporalRuntime } from '../lib/stack';
import { median } from '../lib/stats';
import type { StartOptionsActivities } from './start-options.workflows';

interface Variant {
  name: string;
  workflow: 'plainWorkflow' | 'dressedWorkflow';
  /** The facade's workflow ID shape, `onceflow/<tenant>/<type>/<32 hex>`, instead of 12 characters. */
  longId?: boolean;
  /** USE_EXISTING on conflict, ALLOW_DUPLICATE on reuse (src/operations/starter.ts). */
  policies?: boolean;
  searchAttributes?: boolean;
  /** Static summary and details of the facade's size. */
  metadata?: boolean;
  executionTimeout?: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'bare', workflow: 'plainWorkflow' },
  { name: 'everything the facade sets', workflow: 'dressedWorkflow', longId: true, policies: true, searchAttributes: true, metadata: true, executionTimeout: true },
  { name: '+ 3 search attributes', workflow: 'plainWorkflow', searchAttributes: true },
  { name: '+ summary and details', workflow: 'plainWorkflow', metadata: true },
  { name: '+ execution timeout', workflow: 'plainWorkflow', executionTimeout: true },
  { name: '+ activity options', workflow: 'dressedWorkflow' },
  { name: '+ long ID', workflow: 'plainWorkflow', longId: true },
  { name: '+ ID policies', workflow: 'plainWorkflow', policies: true },
];
const BATCH = 200;
const CONCURRENCY = 16;

function startOptions(variant: Variant, taskQueue: string): WorkflowStartOptions {
  const key = randomUUID().replace(/-/g, '');
  const tenant = `tenant-${key.slice(0, 8)}`;
  return {
    workflowId: variant.longId ? `onceflow/${tenant}/generate-content/${key}` : key.slice(0, 12),
    taskQueue,
    args: [`prompt ${key}`],
    ...(variant.policies ? { workflowIdConflictPolicy: 'USE_EXISTING', workflowIdReusePolicy: 'ALLOW_DUPLICATE' } : {}),
    ...(variant.executionTimeout ? { workflowExecutionTimeout: '24 hours' } : {}),
    ...(variant.searchAttributes
      ? { typedSearchAttributes: [
        { key: searchAttributes.tenant, value: tenant },
        { key: searchAttributes.operationType, value: 'generate-content' },
        { key: searchAttributes.idempotencyKey, value: key },
      ] }
      : {}),
    ...(variant.metadata
      ? {
        staticSummary: `generate-content gemini-2.5-flash · tenant ${tenant} · key ${key}`,
        staticDetails: [
          '**Onceflow operation** `generate-content`', `- tenant: \`${tenant}\``, `- idempotency key: \`${key}\``,
          `- operation id: \`${randomUUID()}\``, '- payload fingerprint: `0123456789abcdef…`', `- first seen: ${new Date().toISOString()}`,
        ].join('\n'),
      }
      : {}),
  };
}

async function main(): Promise<void> {
  installQuietTemporalRuntime();
  const root = path.resolve(__dirname, '../..');
  const toolsDir = path.join(root, '.onceflow', 'tools');
  const binary = await resolveTemporalBinary({ explicitPath: process.env.TEMPORAL_CLI_PATH || undefined, toolsDir, log: () => undefined });
  // The benchmark's dev server settings (bench/lib/stack.ts), in memory.
  const server = await keepTemporal(
    { binary, port: await findFreePort(), dynamicConfig: { 'system.enableEagerWorkflowStart': true }, downloadDir: toolsDir },
    { logFile: path.join(root, '.onceflow', 'start-options-temporal.log') },
  );
  const connection = await NativeConnection.connect({ address: server.info.address });
  const client = new Client({ connection, namespace: server.info.namespace });
  const taskQueue = `start-options-${randomUUID().slice(0, 8)}`;
  const activities: StartOptionsActivities = {
    answer: async (prompt) => ({ text: `answer to ${prompt}`, attempts: [{ model: 'gemini-2.5-flash', attempt: 1, outcome: 'succeeded' }] }),
  };
  const worker = await Worker.create({ connection, namespace: server.info.namespace, taskQueue, workflowsPath: require.resolve('./start-options.workflows'), activities });
  const running = worker.run();
  const temporalCpu: CpuGroup[] = [{ name: 'temporal', comm: 'temporal' }];
  const run = (variant: Variant) => async () => {
    const options = startOptions(variant, taskQueue);
    await (await client.workflow.start(variant.workflow, options)).result();
  };
  const only = process.env.ONLY?.split(',');
  const variants = VARIANTS.filter((v) => v.name === 'bare' || !only || only.some((prefix) => v.name.startsWith(prefix)));
  try {
    const prefill = Number(process.env.PREFILL ?? 0);
    if (prefill > 0) {
      const everything = VARIANTS[1]!;
      const idle = `start-options-unpolled-${randomUUID().slice(0, 8)}`;
      const filled = await runClosedLoop({ concurrency: CONCURRENCY, total: prefill, op: () => client.workflow.start(everything.workflow, startOptions(everything, idle)).then(() => undefined) });
      console.log(`prefilled ${filled.ok} open workflows with every facade option (${filled.throughput.toFixed(0)}/s)`);
    }
    for (const variant of variants) await runClosedLoop({ concurrency: CONCURRENCY, total: 60, op: run(variant) });
    const perWorkflow = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    const rounds = Number(process.env.ROUNDS ?? 8);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < variants.length; i++) {
        const variant = variants[(i + round) % variants.length]!;
        const before = snapshotCpu(temporalCpu);
        const result = await runClosedLoop({ concurrency: CONCURRENCY, total: BATCH, op: run(variant) });
        await new Promise((resolve) => setTimeout(resolve, 1_200));
        const after = snapshotCpu(temporalCpu);
        perWorkflow.get(variant.name)!.push((after.get('temporal')! - before.get('temporal')!) / result.ok);
      }
      console.log(`round ${round + 1}: ${variants.map((v) => `${v.name} ${perWorkflow.get(v.name)!.at(-1)!.toFixed(1)}`).join(', ')}`);
    }
    const bare = perWorkflow.get('bare')!;
    console.log(`Temporal dev server CPU per workflow (ms), ${rounds} rounds of ${BATCH}:`);
    for (const variant of variants) {
      const values = perWorkflow.get(variant.name)!;
      const differences = values.map((value, round) => value - bare[round]!);
      console.log(`  ${variant.name.padEnd(28)} median ${median(values).toFixed(1)}  difference to bare: median ${median(differences).toFixed(1)} (${Math.min(...differences).toFixed(1)} to ${Math.max(...differences).toFixed(1)})`);
    }
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
