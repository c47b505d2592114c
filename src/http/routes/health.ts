import type { Client } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { bearerMatches } from '../../observability/metrics-server';
import { problems } from '../problems';

export interface HealthRoutesOptions {
  pool: Pick<pg.Pool, 'query'>;
  temporal: Client;
  metricsRegistry: Registry;
  /** Serve /metrics on this listener; false when API_METRICS_PORT moves it to a listener of its own. Default true. */
  serveMetrics?: boolean;
  /** Bearer token /metrics requires (ONCEFLOW_METRICS_TOKEN); default none. */
  metricsToken?: string;
}

const dependencyState = z.enum(['ok', 'unreachable']);
const readiness = z.object({ status: z.enum(['ready', 'unavailable']), postgres: dependencyState, temporal: dependencyState });

export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, options) => {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['operations endpoints'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    { schema: { summary: 'PostgreSQL and Temporal are reachable', tags: ['operations endpoints'], response: { 200: readiness, 503: readiness } } },
    async (request, reply) => {
      // The public answer names the dependency that is down, never why: a
      // driver's message carries host names, ports and addresses of the
      // internal network. The operator reads the cause in the log.
      const unreachable = (dependency: string) => (error: Error) => {
        request.log.warn({ dependency, err: error.message }, 'readiness check failed');
        return 'unreachable' as const;
      };
      const [postgres, temporal] = await Promise.all([
        options.pool.query('SELECT 1').then(() => 'ok' as const, unreachable('postgres')),
        options.temporal.connection
          .withDeadline(Date.now() + 2_000, () => options.temporal.workflowService.getSystemInfo({}))
          .then(() => 'ok' as const, unreachable('temporal')),
      ]);
      const ready = postgres === 'ok' && temporal === 'ok';
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', postgres, temporal });
    },
  );

  if (options.serveMetrics ?? true) {
    app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations endpoints'], hide: true } }, async (request, reply) => {
      if (options.metricsToken && !bearerMatches(request.headers.authorization, options.metricsToken)) {
        throw problems.metricsUnauthorized();
      }
      return reply.type(options.metricsRegistry.contentType).send(await options.metricsRegistry.metrics());
    });
  }
};
