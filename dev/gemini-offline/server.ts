/**
 * The offline model server: a local Fastify server that speaks the REST shapes
 * @google/genai uses (gemini-routes.ts), so the real SDK runs end to end with
 * no network. It is the offline model of `onceflow start` (canned answers,
 * clearly labelled) and the test double of every Gemini test: it counts each
 * call it receives and can be scripted per model to fail, through its control
 * API (control-routes.ts, under /__control).
 *
 * It also models the Interactions API of long reports: `POST /v1beta/interactions`
 * with `background: true` answers at once with an `in_progress` interaction
 * that completes after `durationMs` (or when told to), `GET
 * /v1beta/interactions/{id}` reads it, and on completion a Standard-Webhooks
 * signed `interaction.completed` event is POSTed to the configured webhook URL,
 * as Gemini's static webhooks do.
 */
import Fastify from 'fastify';
import { controlRoutes } from './control-routes';
import { geminiError, geminiRoutes } from './gemini-routes';
import { DEFAULT_INTERACTIONS, type InteractionSettings, OfflineModel, type RecordedCall } from './model';

export type { Behaviour, CallOperation, Chaos, InteractionSettings, RecordedCall, WebhookDelivery, WebhookTarget } from './model';

export interface OfflineGeminiServer {
  url: string;
  port: number;
  calls(): RecordedCall[];
  close(): Promise<void>;
}

export interface StartOfflineGeminiServerOptions {
  /** Default: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Initial interaction behaviour; the control API changes it. Default: 300 ms, no hold, no webhook. */
  interactions?: Partial<InteractionSettings>;
}

export async function startOfflineGeminiServer(options: StartOfflineGeminiServerOptions = {}): Promise<OfflineGeminiServer> {
  const model = new OfflineModel({ ...DEFAULT_INTERACTIONS, ...options.interactions });
  const app = Fastify({
    // Hanging and held calls never end on their own: close() must cut them, as a real outage would.
    forceCloseConnections: true,
    // The SDK keeps connections open; the benchmarks send thousands of calls on them.
    keepAliveTimeout: 60_000,
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(geminiError(404, `offline model server: no route ${request.method} ${request.url.split('?')[0]}`)),
  );
  app.setErrorHandler((error: { statusCode?: number; message?: string }, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    return reply.code(status).send(geminiError(status, `offline model server: ${error.message ?? 'error'}`));
  });
  await app.register(geminiRoutes, { model });
  await app.register(controlRoutes, { model, prefix: '/__control' });
  const host = options.host ?? '127.0.0.1';
  await app.listen({ port: options.port ?? 0, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port ?? 0;
  return {
    url: `http://${host}:${port}`,
    port,
    calls: () => [...model.calls],
    close: async () => {
      model.clearTimers();
      await app.close();
    },
  };
}
