import type { Infra, ManagedProcess } from './stack';

/** One line of the final table: an Onceflow figure against its reference, measured in the same run. */
export interface Figure {
  benchmark: string;
  metric: string;
  onceflow: number;
  reference: number;
  /** onceflow / reference (or as stated in `note`). */
  ratio: number;
  /** Human description of the target, e.g. "≥ 0.8"; empty when none. */
  target: string;
  /** Whether the target is met; undefined when there is none. */
  met?: boolean;
  unit: string;
  referenceName: string;
  note?: string;
}

export interface BenchContext {
  infra: Infra;
  log: (line: string) => void;
  /** Measured runs per arm (the median is reported). */
  runs: number;
  /** Seconds per measured run of a throughput arm. */
  seconds: number;
  /**
   * Paired arms (repeat path, starts): this many back-to-back runs of each arm,
   * in alternating order, each `pairSeconds` long; the ratio reported is the
   * median of the per-pair ratios, so a slow drift of the host (CPU steal on a
   * shared VM) moves both runs of a pair alike and cancels out.
   */
  pairs: number;
  pairSeconds: number;
  geminiUrl: string;
  apiUrl: string;
  processes: Record<string, ManagedProcess>;
  figures: Figure[];
  raw: Record<string, unknown>;
  memory: MemorySampler;
}

export interface MemorySampler {
  /** Adds a process to sample (by name). */
  watch(name: string, process: ManagedProcess): void;
  /** The average RSS of each watched process (or of `names`) over `ms`, recorded as idle. */
  sampleIdle(ms?: number, names?: string[]): Promise<void>;
  /** Samples every 250 ms until the returned function is called; the peak counts as under load. */
  underLoad(): () => void;
  report(): Record<string, { idleMiB: number; loadPeakMiB: number }>;
}

export function createMemorySampler(): MemorySampler {
  const watched = new Map<string, ManagedProcess>();
  const idle = new Map<string, number>();
  const peak = new Map<string, number>();
  const sampleAll = () => {
    for (const [name, process] of watched) {
      const rss = process.rssMiB();
      if (rss > (peak.get(name) ?? 0)) peak.set(name, rss);
    }
  };
  return {
    watch: (name, process) => void watched.set(name, process),
    sampleIdle: async (ms = 1000, names) => {
      const sums = new Map<string, number[]>();
      for (let i = 0; i < 5; i++) {
        for (const [name, process] of watched) if (!names || names.includes(name)) sums.set(name, [...(sums.get(name) ?? []), process.rssMiB()]);
        await new Promise((r) => setTimeout(r, ms / 5));
      }
      for (const [name, values] of sums) idle.set(name, Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 10) / 10);
    },
    underLoad: () => {
      const timer = setInterval(sampleAll, 250);
      return () => clearInterval(timer);
    },
    report: () =>
      Object.fromEntries([...watched.keys()].map((name) => [name, { idleMiB: idle.get(name) ?? Number.NaN, loadPeakMiB: peak.get(name) ?? Number.NaN }])),
  };
}
