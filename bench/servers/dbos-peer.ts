/**
 * The peer arm: the same idempotent one-step operation built on DBOS Transact
 * (@dbos-inc/dbos-sdk) against the same PostgreSQL server. POST /peer/ops with
 * an Idempotency-Key starts a DBOS workflow whose workflow ID is the key, so a
 * duplicate attaches to the first workflow. The workflow calls the same
 * offline Gemini server through the same @google/genai client (one step), then
 * writes the business row and the outbox row in one transaction (a second
 * step; ON CONFLICT keeps it at-most-once if the step is retried).
 * Usage: node --import tsx bench/servers/dbos-peer.ts <appDatabaseUrl> <systemDatabaseUrl> <port> <geminiBaseUrl>
 */
import { DBOS } from '@dbos-inc/dbos-sdk';
import Fastify from 'fastify';
import { createPool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { createGeminiClient } from '../../src/integrations/gemini/client';

async function main(): Promise<void> {
  const [appDatabaseUrl, systemDatabaseUrl, port, geminiBaseUrl] = process.argv.slice(2);
  if (!appDatabaseUrl || !systemDatabaseUrl || !port || !geminiBaseUrl) throw new Error('usage: dbos-peer.ts <appDb> <systemDb> <port> <geminiBaseUrl>');
  const pool = createPool({ connectionString: appDatabaseUrl, max: 10, applicationName: 'onceflow-bench-dbos-peer' });
  await pool.query(`CREATE TABLE IF NOT EXISTS peer_operations (
    idempotency_key text PRIMARY KEY, text text NOT NULL, total_tokens integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  await pool.query(`CREATE TABLE IF NOT EXISTS peer_outbox (
    event_id text PRIMARY KEY, idempotency_key text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  const gemini = createGeminiClient({ apiKey: 'offline-model-server', baseUrl: geminiBaseUrl, timeoutMs: 30_000 });

  const operation = DBOS.registerWorkflow(
    async (key: string, prompt: string) => {
      const answer = await DBOS.runStep(() => gemini.generate({ prompt, model: 'gemini-2.5-flash' }), {
        name: 'gemini',
        retriesAllowed: true,
        maxAttempts: 5,
        intervalSeconds: 0.2,
      });
      await DBOS.runStep(
        () =>
          withTransaction(pool, async (tx) => {
            await tx.query('INSERT INTO peer_operations (idempotency_key, text, total_tokens) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
              key, answer.text, answer.usage.totalTokens,
            ]);
            await tx.query('INSERT INTO peer_outbox (event_id, idempotency_key, payload) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
              `${key}:operation.succeeded`, key, JSON.stringify({ key, totalTokens: answer.usage.totalTokens }),
            ]);
          }),
        { name: 'commit' },
      );
      return { text: answer.text };
    },
    { name: 'peerOperation' },
  );

  DBOS.setConfig({ name: 'onceflow-bench-peer', systemDatabaseUrl, logLevel: 'error', applicationVersion: '0.1.0' });
  await DBOS.launch();

  const app = Fastify({ logger: false });
  app.post<{ Body: { prompt: string } }>('/peer/ops', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length === 0) return reply.code(400).send({ error: 'Idempotency-Key required' });
    // Starting with an existing workflow ID returns the existing workflow: the duplicate is absorbed here.
    const handle = await DBOS.startWorkflow(operation, { workflowID: key })(key, request.body.prompt);
    return reply.code(202).send({ workflowId: handle.workflowID });
  });
  await app.listen({ host: '127.0.0.1', port: Number(port) });
  process.stdout.write(`dbos-peer listening on ${port}\n`);
  const stop = () =>
    void app
      .close()
      .then(() => DBOS.shutdown())
      .then(() => pool.end())
      .then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`dbos-peer: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
