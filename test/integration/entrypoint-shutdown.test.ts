import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

describe('process entry points', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('run every cleanup to its end before exiting on %s', async (signal) => {
    const marker = path.join(mkdtempSync(path.join(tmpdir(), 'onceflow-shutdown-')), 'done');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures/slow-cleanup-main.ts'), marker], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    expect(await exited).toBe(0);
    expect(existsSync(marker)).toBe(true);
  });
});
