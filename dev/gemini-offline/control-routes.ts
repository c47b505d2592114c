/**
 * The offline model's control API, a Fastify plugin registered under
 * `/__control` (tests, the fault suite and the benchmarks drive it):
 *
 *   POST /script  {"model": "gemini-2.5-flash", "responses": [Behaviour, …]}
 *        queues behaviours for the next paid calls (generateContent or an
 *        interaction create) to that model ("*" for any model); when the queue
 *        is empty, calls succeed.
 *   POST /interactions {"durationMs": 300, "hold": false, "holdReads": false,
 *        "webhook": {"url": "…", "secret": "whsec_…", "deliveries": 1} | null}
 *        how new interactions behave; `hold` keeps them running until completed by hand
 *   GET  /interactions            every interaction (id, model, status)
 *   POST /interactions/{id}/complete   completes a held interaction (delivers its webhook)
 *   POST /interactions/{id}/deliver {"times": 2, "badSignature": false}
 *        (re)delivers the completion webhook of a finished interaction now
 *   POST /release   sends every held answer (`ok` with `hold`, reads under `holdReads`); answers {released: n}
 *   GET  /webhooks   every webhook delivery attempt and the receiver's status
 *   POST /chaos   {"failureRate": 0.3, "dropRate": 0.05} random 429/503 and dropped answers
 *   GET  /calls   every call so far: model, outcome, prompt hash
 *   POST /reset   forget calls, scripts and chaos
 *   GET  /health
 */
import type { FastifyPluginAsync } from 'fastify';
import { geminiError } from './gemini-routes';
import type { Behaviour, Chaos, InteractionSettings, OfflineModel } from './model';

export const controlRoutes: FastifyPluginAsync<{ model: OfflineModel }> = async (app, { model: state }) => {
  // Callers post `{}`, nothing, or nothing with a JSON content type; all mean "no settings".
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, body.length > 0 ? JSON.parse(body as string) : {});
    } catch (error) {
      done(Object.assign(error as Error, { statusCode: 400 }), undefined);
    }
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(geminiError(404, `unknown control command ${request.url.replace(/^\/__control\//, '')}`)),
  );

  app.get('/health', async () => ({ status: 'ok', offline: true }));
  app.get('/calls', async () => ({ calls: state.calls }));
  app.get('/webhooks', async () => ({ deliveries: state.deliveries }));

  app.post('/reset', async () => {
    state.reset();
    return { reset: true };
  });

  app.post<{ Body: { model?: string; responses: Behaviour[] } }>('/script', async (request) => ({
    queued: state.script(request.body.model ?? '*', request.body.responses),
  }));

  app.post('/release', async () => ({ released: state.release() }));

  app.post<{ Body: Partial<Chaos> | undefined }>('/chaos', async (request) => {
    state.chaos = { failureRate: 0, dropRate: 0, ...request.body };
    return state.chaos;
  });

  app.post<{ Body: Partial<InteractionSettings> | undefined }>('/interactions', async (request) => {
    state.interactionSettings = { ...state.interactionSettings, ...request.body };
    return state.interactionSettings;
  });

  app.get('/interactions', async () => ({
    interactions: [...state.interactions.values()].map(({ id, model, status }) => ({ id, model, status })),
  }));

  app.post<{ Params: { id: string } }>('/interactions/:id/complete', async (request, reply) => {
    const interaction = state.interactions.get(request.params.id);
    if (!interaction) return reply.code(404).send(geminiError(404, 'no such interaction'));
    state.completeInteraction(interaction);
    return { id: interaction.id, status: interaction.status };
  });

  app.post<{ Params: { id: string }; Body: { times?: number; badSignature?: boolean } | undefined }>(
    '/interactions/:id/deliver',
    async (request, reply) => {
      const interaction = state.interactions.get(request.params.id);
      if (!interaction) return reply.code(404).send(geminiError(404, 'no such interaction'));
      const times = request.body?.times ?? 1;
      // Answers once every delivery has been attempted, so a test can assert right after.
      await state.deliverWebhooks(interaction, times, request.body?.badSignature ?? false);
      return { delivered: times };
    },
  );
};
