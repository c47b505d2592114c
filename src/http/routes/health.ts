import type { Client } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { z } from 'zod';

export interface HealthRoutesOptions {
  pool: Pick<pg.Pool, 'query'>;
  temporal: Client;
  metricsRegistry: Registry;
}

const readiness = z.object({ status: z.enum(['ready', 'unavailable']), postgres: z.string(), temporal: z.string() });

export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, options) => {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['operations endpoints'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    { schema: { summary: 'PostgreSQL and Temporal are reachable', tags: ['operations endpoints'], response: { 200: readiness, 503: readiness } } },
    async (_request, reply) => {
      const [postgres, temporal] = await Promise.all([
        options.pool.query('SELECT 1').then(() => 'ok', (error: Error) => `unreachable: ${error.message}`),
        options.temporal.connection
          .withDeadline(Date.now() + 2_000, () => options.temporal.workflowService.getSystemInfo({}))
          .then(() => 'ok', (error: Error) => `unreachable: ${error.message.split('\n')[0]}`),
      ]);
      const ready = postgres === 'ok' && temporal === 'ok';
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', postgres, temporal });
    },
  );

  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations endpoints'], hide: true } }, async (_request, reply) => {
    return reply.type(options.metricsRegistry.contentType).send(await options.metricsRegistry.metrics());
  });
};
