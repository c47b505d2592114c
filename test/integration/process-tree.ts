/**
 * The processes a test started, read from /proc (Linux), so a test can prove
 * that none of them outlives the stack: pid plus start time identifies a
 * process even if its pid is reused later.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcessEntry {
  pid: number;
  ppid: number;
  /** Executable name as the kernel reports it (`node`, `postgres`, `temporal`, …). */
  comm: string;
  /** Clock ticks since boot; with pid, a unique identity. */
  startTime: string;
  /** Command line, arguments joined by spaces. */
  args: string;
}

function readEntry(pid: number): (ProcessEntry & { state: string }) | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    // fields[0] is field 3 of proc(5): state; ppid is field 4, starttime field 22
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, comm: stat.slice(open + 1, close), state: fields[0]!, ppid: Number(fields[1]), startTime: fields[19]!, args };
  } catch {
    return undefined;
  }
}

function allProcesses(): ProcessEntry[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readEntry(Number(name)))
    .filter((entry): entry is ProcessEntry & { state: string } => entry !== undefined && entry.state !== 'Z');
}

/** Every live process below rootPid (not rootPid itself). */
export function descendantsOf(rootPid: number): ProcessEntry[] {
  const all = allProcesses();
  const found: ProcessEntry[] = [];
  const frontier = [rootPid];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const entry of all.filter((e) => e.ppid === parent)) {
      found.push(entry);
      frontier.push(entry.pid);
    }
  }
  return found;
}

/** The entries that still run (same pid, same start time, not a zombie). */
export function survivors(entries: readonly ProcessEntry[]): ProcessEntry[] {
  return entries.filter((entry) => {
    const now = readEntry(entry.pid);
    return now !== undefined && now.state !== 'Z' && now.startTime === entry.startTime;
  });
}

/** Resolves with the survivors once none are left, or when timeoutMs has passed. */
export async function waitUntilGone(entries: readonly ProcessEntry[], timeoutMs: number): Promise<ProcessEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = survivors(entries);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The TCP ports the given processes listen on (IPv4 and IPv6), from their socket fds and /proc/net/tcp{,6}. */
export function listeningPorts(pids: readonly number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match) inodes.add(match[1]!);
      } catch {
        // closed while we looked
      }
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is fields[1] (hex ip:port), st fields[3] (0A is LISTEN), inode fields[9]
      if (fields[3] === '0A' && inodes.has(fields[9]!)) ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}
