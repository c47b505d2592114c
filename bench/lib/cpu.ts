/**
 * CPU time by process group, from /proc (Linux only): which process a
 * benchmark's work costs, so a ratio can be read as "who spends the cores".
 * On a saturated 2-core machine throughput is CPU divided by CPU per
 * operation, and that figure is the one that carries over to other machines.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** A named group: processes picked by pid or by their command name (`comm`), e.g. every `postgres` backend. */
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
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (!stat) continue;
    const pidGroup = byPid.get(pid);
    const commGroup = pidGroup ? undefined : byComm.get(stat.comm);
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

/**
 * The PostgreSQL server of one data directory: its postmaster (the first line
 * of postmaster.pid) and the backends it forked. Picking PostgreSQL by command
 * name instead would count every cluster on the host, other runs' and other
 * sessions' tests included.
 */
export function postgresClusterPids(dataDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // After comm: state, then ppid.
    if (Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) pids.push(pid);
  }
  return pids;
}

function readStat(pid: number): { comm: string; cpuMs: number; reapedChildrenCpuMs: number } | undefined {
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
  // After comm: state is field 3, utime 14, stime 15, cutime 16, cstime 17
  // (1-based in proc(5)); here index 0 is state.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const childTicks = Number(fields[13]) + Number(fields[14]);
  return { comm, cpuMs: (ticks * 1000) / TICKS_PER_SECOND, reapedChildrenCpuMs: (childTicks * 1000) / TICKS_PER_SECOND };
}
