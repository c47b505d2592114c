import { chmod, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalStackError } from './errors';

/** Resolves when nothing listens on host:port; otherwise throws a LocalStackError naming the variable to change. */
export async function assertPortFree(port: number, variable: string, host = '127.0.0.1'): Promise<void> {
  const error = await bindError(port, host);
  if (error) {
    throw new LocalStackError(`port ${port} is already in use (${error.code ?? error.message})`, `stop whatever listens there, or set ${variable} to a free port`);
  }
}

/** Why host:port cannot be bound right now, or undefined when it can (the probe closes at once). */
function bindError(port: number, host: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/**
 * A port nothing listens on and no other Onceflow harness on this machine has
 * picked in the last few minutes (tests, benchmarks, local stacks).
 *
 * Why not `listen(0)`: that port comes from the kernel's ephemeral range
 * (32768–60999 here), the same range every outgoing connection takes its
 * local port from. Between picking a port and the role binding it (a cluster
 * stack binds its api a minute later), a pg or gRPC connection of any process
 * could take it, or a parallel test could be handed the same number: the role
 * then exits with EADDRINUSE, or worse, a readiness probe is answered by
 * another test's api. So ports are picked below the ephemeral range and
 * reserved with an exclusive file per port, which concurrent jest workers and
 * separate processes all see. Written by hand because get-port and portfinder
 * only lock within one process and pick from the ephemeral range.
 */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const [low, high] = await pickableRange();
  await ensureReservationsDir();
  for (let attempt = 0; ; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if ((await reserve(port)) && !(await bindError(port, host))) return port;
    if (attempt >= 500) throw new Error(`no free port between ${low} and ${high} after ${attempt} tries`);
  }
}

/** Where reservations live: one empty file per port, its mtime the moment it was picked. */
const RESERVATIONS_DIR = path.join(tmpdir(), 'onceflow-port-reservations');
/** Long enough for the slowest pick-to-bind (a cluster's api after the four services start); by then the port is bound and the listen check refuses it. */
const RESERVATION_TTL_MS = 15 * 60_000;

/** Shared by every user of the machine, like /tmp itself: world-writable with the sticky bit. */
async function ensureReservationsDir(): Promise<void> {
  await mkdir(RESERVATIONS_DIR, { recursive: true, mode: 0o1777 });
  await chmod(RESERVATIONS_DIR, 0o1777).catch(() => undefined); // the umask strips mkdir's mode; another user's dir is theirs to set
}

async function reserve(port: number): Promise<boolean> {
  const file = path.join(RESERVATIONS_DIR, String(port));
  try {
    await (await open(file, 'wx')).close();
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A directory we may not write (another user's, made before the mode above):
    // no reservation across processes, only the listen check below.
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return true;
    if (code !== 'EEXIST') throw error;
  }
  const picked = await stat(file).then((s) => s.mtimeMs, () => Date.now());
  if (Date.now() - picked < RESERVATION_TTL_MS) return false;
  // Stale: take it over. Two pickers racing here both unlink; only one wins the 'wx'.
  await unlink(file).catch(() => undefined);
  try {
    await (await open(file, 'wx')).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Below the kernel's ephemeral range, and below 32768 in any case: Temporal's
 * cluster_membership.rpc_port is a smallint, so one range serves every port.
 */
async function pickableRange(): Promise<[number, number]> {
  const ephemeralLow = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').then(
    (text) => Number(text.trim().split(/\s+/)[0]),
    () => 32_768,
  );
  const high = Math.min(32_768, Number.isFinite(ephemeralLow) && ephemeralLow > 12_000 ? ephemeralLow : 32_768);
  return [Math.max(10_000, high - 12_768), high];
}
