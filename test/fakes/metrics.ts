import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

const matches = (series: Labels, wanted: Labels) => Object.entries(wanted).every(([name, value]) => series[name] === value);

/** Sum of a metric's series whose labels include `labels`, read from a worker's own registry (0 when absent). */
export async function metricValue(registry: Registry, name: string, labels: Labels = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => matches(v.labels as Labels, labels)).reduce((sum, v) => sum + v.value, 0);
}

/** The same, scraped from a process's Prometheus endpoint (text format). */
export async function scrapedMetricValue(metricsUrl: string, name: string, labels: Labels = {}): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const series: Labels = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) series[pair[1]!] = pair[2]!;
    if (matches(series, labels)) sum += Number(match[3]);
  }
  return sum;
}
