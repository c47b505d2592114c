/**
 * The reference arm of the repeat-path benchmark: a bare Fastify endpoint that
 * does one primary-key read of the operations table from the same PostgreSQL
 * and answers the row as JSON. No auth, no fingerprint, no problem+json.
 * Usage: node --import tsx bench/servers/bare-read.ts <databaseUrl> <port> [poolSize]
 */
import Fastify from 'fastify';
import { createPool } from '../../src/db/pool';

async function main(): Promise<void> {
  const [databaseUrl, port, poolSize] = process.argv.slice(2);
  if (!databaseUrl || !port) throw new Error('usage: bare-read.ts <databaseUrl> <port> [poolSize]');
  // Same pool size as the API's default (DATABASE_POOL_SIZE=10), so neither arm gets more connections.
  const pool = createPool({ connectionString: databaseUrl, max: Number(poolSize ?? 10), applicationName: 'onceflow-bench-bare' });
  const app = Fastify({ logger: false });
  app.get<{ Params: { tenant: string; type: string; key: string } }>('/ops/:tenant/:type/:key', async (request, reply) => {
    const { rows } = await pool.query(
      'SELECT * FROM operations WHERE tenant_id = $1 AND operation_type = $2 AND idempotency_key = $3',
      [request.params.tenant, request.params.type, request.params.key],
    );
    if (rows.length === 0) return reply.code(404).send({ error: 'not found' });
    return rows[0];
  });
  await app.listen({ host: '127.0.0.1', port: Number(port) });
  process.stdout.write(`bare-read listening on ${port}\n`);
  const stop = () => void app.close().then(() => pool.end()).then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`bare-read: ${(error as Error).message}\n`);
  process.exit(1);
});
