import type pg from 'pg';

const COUNTED = Symbol('onceflow-test-counted');

/**
 * Records every statement a pool's clients send, `pool.query` included (the
 * pool checks a client out for it too), so a test can count what one
 * operation costs PostgreSQL. Counted on the wire side of node-postgres, not
 * computed by the code under test.
 */
export function recordStatements(pool: pg.Pool): { statements: string[]; reset(): void } {
  const statements: string[] = [];
  pool.on('acquire', (client: pg.PoolClient & { [COUNTED]?: boolean }) => {
    if (client[COUNTED]) return;
    client[COUNTED] = true;
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text?: string };
      statements.push((typeof first === 'string' ? first : first?.text ?? '').replace(/\s+/g, ' ').trim());
      return query(...args);
    };
  });
  return { statements, reset: () => statements.splice(0) };
}
