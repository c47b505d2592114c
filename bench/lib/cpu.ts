/**
 * CPU time by process group, from /proc (Linux only): which process a
 * benchmark's work costs, so a ratio can be read as "who spends the cores".
 * On a saturated 2-core machine throughput is CPU divided by CPU per
 * operation, and that figure is the one that carries over to other machines.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/**
 * A named group: processes picked by pid or by their command name (`comm`),
 * e.g. every `postgres` backend. A group by command counts only this run's
 * own processes (descendants of the harness): a test suite running beside the
 * benchmark has `postgres` and `temporal` processes of its own.
 */
export interface CpuGroup {
  name: string;
  pids?: () => number[];
  comm?: string;
}

export type CpuSnapshot = Map<string, number>;

/** Milliseconds of CPU (user + system) each group has used so far; exited processes drop out, so snapshot around a run. */
export function snapshotCpu(groups: CpuGroup[]): CpuSnapshot {
  const totals = new Map(groups.map((g) => [g.name, 0]));
  const byPid = new Map<number, string>();
  for (const group of groups) for (const pid of group.pids?.() ?? []) byPid.set(pid, group.name);
  const byComm = new Map(groups.filter((g) => g.comm).map((g) => [g.comm!, g.name]));
  const stats = new Map<number, ProcStat>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat) stats.set(pid, stat);
  }
  const ours = (pid: number): boolean => {
    for (let at: number | undefined = pid, hops = 0; at !== undefined && at > 1 && hops < 64; at = stats.get(at)?.ppid, hops++) {
      if (at === process.pid) return true;
    }
    return false;
  };
  for (const [pid, stat] of stats) {
    const pidGroup = byPid.get(pid);
    const commGroup = pidGroup || !byComm.has(stat.comm) || !ours(pid) ? undefined : byComm.get(stat.comm);
    // A process that exits between two snapshots drops out of the later one;
    // for a group named by command (PostgreSQL's backends) its CPU is not lost
    // but moves to the parent that reaped it (the postmaster), which is in the
    // same group. Not for a group named by pid: the harness's reaped children
    // (servers it started and stopped) are not the harness's own work.
    if (pidGroup) totals.set(pidGroup, totals.get(pidGroup)! + stat.cpuMs);
    else if (commGroup) totals.set(commGroup, totals.get(commGroup)! + stat.cpuMs + stat.reapedChildrenCpuMs);
  }
  return totals;
}

/** CPU milliseconds per group between two snapshots, divided by `operations`. */
export function cpuPerOperation(before: CpuSnapshot, after: CpuSnapshot, operations: number): Record<string, number> {
  const perOperation: Record<string, number> = {};
  for (const [name, end] of after) perOperation[name] = operations > 0 ? (end - (before.get(name) ?? 0)) / operations : Number.NaN;
  return perOperation;
}

interface ProcStat {
  comm: string;
  ppid: number;
  cpuMs: number;
  reapedChildrenCpuMs: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // exited between readdir and read
  }
  // comm is in parentheses and may itself contain spaces or parentheses: split at the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const fields = text.slice(close + 2).split(' ');
  // After comm: state is field 3, ppid 4, utime 14, stime 15, cutime 16,
  // cstime 17 (1-based in proc(5)); here index 0 is state.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const childTicks = Number(fields[13]) + Number(fields[14]);
  return { comm, ppid: Number(fields[1]), cpuMs: (ticks * 1000) / TICKS_PER_SECOND, reapedChildrenCpuMs: (childTicks * 1000) / TICKS_PER_SECOND };
}
