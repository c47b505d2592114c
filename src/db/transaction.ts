import type pg from 'pg';

/**
 * Runs `work` inside one transaction on one connection. Commits when it
 * resolves, rolls back when it throws. If the process dies before COMMIT,
 * PostgreSQL rolls back: nothing of `work` is visible.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    try {
      await client.query('ROLLBACK');
    } catch {
      // the connection itself failed; make sure it is not reused
      broken = true;
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
