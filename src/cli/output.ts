/** Human-readable tables and `--json` output of the CLI. */

export interface Output {
  /** A line on stdout. */
  line(text?: string): void;
  /** A value as pretty JSON on stdout (`--json`). */
  json(value: unknown): void;
  table(rows: Record<string, unknown>[], columns: readonly Column[]): void;
  /** Label/value pairs, one per line. */
  fields(pairs: readonly [string, unknown][]): void;
}

export interface Column {
  key: string;
  header: string;
  /** Default: String(value), `-` for null/undefined. */
  format?: (value: unknown, row: Record<string, unknown>) => string;
  /** Longest cell, in characters; longer ones end with `…`. Default 60. */
  maxWidth?: number;
}

export function createOutput(stream: NodeJS.WritableStream = process.stdout): Output {
  const write = (text: string): void => {
    stream.write(`${text}\n`);
  };
  return {
    line: (text = '') => write(text),
    json: (value) => write(JSON.stringify(value, null, 2)),
    table(rows, columns) {
      if (rows.length === 0) return write('(none)');
      const cells = rows.map((row) => columns.map((c) => truncate(c.format ? c.format(row[c.key], row) : cell(row[c.key]), c.maxWidth ?? 60)));
      const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
      const render = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
      write(render(columns.map((c) => c.header)));
      for (const row of cells) write(render(row));
    },
    fields(pairs) {
      const width = Math.max(...pairs.map(([label]) => label.length));
      for (const [label, value] of pairs) write(`${`${label}:`.padEnd(width + 1)}  ${cell(value)}`);
    },
  };
}

export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** 950 → `950ms`, 12_300 → `12.3s`, 190_000 → `3m10s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
