import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type pg from 'pg';

/**
 * Gauges read from the deliveries table at scrape time; registered by the relay and the API alike.
 * When PostgreSQL cannot be read, each keeps its last value: reading 0 would
 * report an empty backlog exactly while nothing can be delivered, hiding the
 * outage behind a healthy-looking graph (a scrape must not fail either).
 */
export function registerOutboxBacklogGauges(registry: Registry, db: Pick<pg.Pool, 'query'>): void {
  const read = async () => {
    const { rows } = await db.query<{ pending: number; oldest_age: number | null }>(
      `SELECT count(*)::int AS pending, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest_age
         FROM deliveries WHERE status = 'pending'`,
    );
    return rows[0] ?? { pending: 0, oldest_age: null };
  };
  new Gauge({
    name: 'onceflow_outbox_pending',
    help: 'Deliveries waiting to be delivered (including those waiting for a retry); the last value read while PostgreSQL is unreachable',
    registers: [registry],
    async collect() {
      try {
        this.set((await read()).pending);
      } catch {
        // keep the last value (see above)
      }
    },
  });
  new Gauge({
    name: 'onceflow_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest pending delivery (0 when none); the last value read while PostgreSQL is unreachable',
    registers: [registry],
    async collect() {
      try {
        this.set((await read()).oldest_age ?? 0);
      } catch {
        // keep the last value (see above)
      }
    },
  });
}

export function createRelayMetrics(registry: Registry) {
  return {
    delivered: new Counter({ name: 'onceflow_outbox_delivered_total', help: 'Deliveries a subscriber acknowledged (2xx)', labelNames: ['event_type'] as const, registers: [registry] }),
    retried: new Counter({ name: 'onceflow_outbox_retried_total', help: 'Delivery attempts that failed and were scheduled again', labelNames: ['reason'] as const, registers: [registry] }),
    deadLettered: new Counter({ name: 'onceflow_outbox_dead_lettered_total', help: 'Deliveries moved to the dead-letter state', labelNames: ['reason'] as const, registers: [registry] }),
    latency: new Histogram({
      name: 'onceflow_outbox_delivery_latency_seconds',
      help: 'From the event’s commit to the subscriber’s acknowledgement',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
