import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/dev/ports';

/**
 * A PostgreSQL of the test's own that it can stop and start for real (an
 * outage, not a mock), run by test/outbox/fixtures/restartable-postgres.ts in
 * a child process. Stopping it touches no other test file's database.
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
  await chmod(dir, 0o755);
  const root = path.resolve(__dirname, '../..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/outbox/fixtures/restartable-postgres.ts'), path.join(dir, 'pg'), String(await findFreePort())], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  /** Resolves with the first line after `from` (an offset into stdout) that starts with `word`. */
  const lineStartingWith = (word: string, from: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = stdout.slice(from).split('\n').find((l) => l.startsWith(word));
        if (line === undefined) return false;
        child.stdout.off('data', check);
        resolve(line);
        return true;
      };
      if (check()) return;
      child.stdout.on('data', check);
      void exited.then(() => reject(new Error(`own PostgreSQL exited before "${word}": ${stderr}`)));
    });
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const command = async (line: string, word: string) => {
    const answer = lineStartingWith(word, stdout.length);
    child.stdin.write(`${line}\n`);
    await answer;
  };
  const connectionString = (await lineStartingWith('ready ', 0)).slice('ready '.length);
  return {
    connectionString,
    stop: () => command('stop', 'stopped'),
    start: () => command('start', 'started'),
    close: async () => {
      child.stdin.end('exit\n');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
