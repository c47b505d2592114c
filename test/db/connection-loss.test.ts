/**
 * PostgreSQL ending a connection that is checked out of the pool but has no
 * query running (a transaction waiting on other work, a held lock) emits
 * 'error' on that client. With nothing listening, Node turns that into an
 * uncaught exception and the process dies: this is how the fault suite's
 * PostgreSQL restart once killed its own harness. The holder must instead see
 * the loss on its next query, and the pool must carry on with new connections.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { withTransaction } from '../../src/db/transaction';
import { createTestPool } from '../helpers/db';

describe('a checked-out connection that PostgreSQL ends', () => {
  const pool = createTestPool();
  afterAll(() => pool.end());

  async function terminateBackend(pid: number): Promise<void> {
    // pg_terminate_backend sends the backend SIGTERM: the client receives
    // 57P01 "terminating connection due to administrator command", exactly
    // what a fast shutdown or restart of PostgreSQL sends every session.
    await pool.query('SELECT pg_terminate_backend($1)', [pid]);
  }

  it('fails the transaction that held it, not the process, and the pool keeps serving', async () => {
    const outcome = withTransaction(pool, async (tx) => {
      const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await terminateBackend(rows[0]!.pid);
      // No query is running on `tx` while the termination arrives.
      await sleep(300);
      await tx.query('SELECT 1');
    });
    await expect(outcome).rejects.toThrow(/connection|terminat/i);
    const { rows } = await pool.query<{ ok: number }>('SELECT 1 AS ok');
    expect(rows[0]!.ok).toBe(1);
  });

  it('ends a held client quietly too, and it is not handed out again', async () => {
    const client = await pool.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await terminateBackend(rows[0]!.pid);
    await sleep(300);
    await expect(client.query('SELECT 1')).rejects.toThrow();
    client.release(true);
    const next = await pool.connect();
    try {
      const { rows: again } = await next.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      expect(again[0]!.pid).not.toBe(rows[0]!.pid);
    } finally {
      next.release();
    }
  });
});
