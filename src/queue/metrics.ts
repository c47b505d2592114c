import { Counter, type Registry } from 'prom-client';

/** The queue door's own counters (the request outcomes are DoorMetrics, entry_point=queue). */
export function createQueueMetrics(registry: Registry) {
  return {
    redeliveries: new Counter({
      name: 'onceflow_queue_redeliveries_total',
      help: 'Messages the broker delivered again (a consumer died or gave them back before acknowledging)',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'onceflow_queue_dead_letters_total',
      help: 'Messages moved to the dead-letter queue, by problem type',
      labelNames: ['queue', 'problem'] as const,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'onceflow_queue_retries_total',
      help: 'Messages given back to the broker because PostgreSQL or Temporal failed',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
  };
}
export type QueueMetrics = ReturnType<typeof createQueueMetrics>;
