/**
 * The Gemini REST routes @google/genai 2.x calls, as a Fastify plugin:
 * `models.generateContent` (`POST /v1beta/models/{model}:generateContent`),
 * its streaming form (`:streamGenerateContent?alt=sse`), and the background
 * Interactions API (`POST /v1beta/interactions`, `GET /v1beta/interactions/{id}`,
 * `POST /v1beta/interactions/{id}/cancel`).
 * Errors use Gemini's body, `{error: {code, message, status, details}}`; a 429
 * carries a google.rpc.RetryInfo `retryDelay` when the script gives one.
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { type Behaviour, type CallOperation, type OfflineModel, responseId, type StoredInteraction } from './model';

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

/** Gemini's error body. */
export function geminiError(code: number, message: string, details: unknown[] = []) {
  return { error: { code, message, status: STATUS_NAMES[code] ?? 'UNKNOWN', details } };
}

export const geminiRoutes: FastifyPluginAsync<{ model: OfflineModel }> = async (app, { model: state }) => {
  // The raw bytes: a call is recorded by the sha256 of its body, and a body that
  // is not JSON must still be counted (the paid call happened) rather than refused.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const bodyOf = (request: FastifyRequest): Buffer => (Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0));

  /**
   * Records the call and plays its behaviour; `ok` answers through `answer`.
   * Returns the payload to send, or nothing when the reply was taken over
   * (a hang, a drop).
   */
  const play = async (
    request: FastifyRequest,
    reply: FastifyReply,
    call: { operation: CallOperation; model: string; body: Buffer },
    onOk: (behaviour: Extract<Behaviour, { kind: 'ok' }>, requestHash: string) => Promise<unknown>,
    onSafety: () => unknown,
    onDrop: () => void,
  ): Promise<unknown> => {
    const behaviour = state.nextBehaviour(call.model);
    const requestHash = createHash('sha256').update(call.body).digest('hex');
    const record = (status: number) =>
      state.calls.push({ operation: call.operation, model: call.model, requestHash, outcome: behaviour.kind, status, atMs: Date.now() });
    switch (behaviour.kind) {
      case 'hang':
        record(0);
        // The client's timeout ends it; a server close destroys the socket.
        reply.hijack();
        return undefined;
      case 'drop':
        record(200);
        // The work is done (and would be billed); the answer never arrives.
        onDrop();
        reply.hijack();
        request.raw.socket.destroy();
        return undefined;
      case 'error': {
        record(behaviour.status);
        const details: object[] = [
          ...(behaviour.retryDelaySeconds ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${behaviour.retryDelaySeconds}s` }] : []),
          // As Gemini refuses a bad key: an ErrorInfo whose reason names it (API_KEY_INVALID).
          ...(behaviour.reason ? [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: behaviour.reason, domain: 'googleapis.com' }] : []),
        ];
        return reply.code(behaviour.status).send(geminiError(behaviour.status, behaviour.message ?? `offline model server: scripted ${behaviour.status}`, details));
      }
      case 'safety':
        record(200);
        return onSafety();
      case 'ok':
        record(200);
        return onOk(behaviour, requestHash);
    }
  };

  /** Holds or delays an `ok` answer as its behaviour says. */
  const when = async <T>(behaviour: Extract<Behaviour, { kind: 'ok' }>, answer: () => T): Promise<T> => {
    if (behaviour.hold) return state.hold(undefined).then(answer);
    if (behaviour.delayMs) await state.delay(behaviour.delayMs);
    return answer();
  };

  const generateAnswer = (body: Buffer, model: string, text: string, requestHash: string) => {
    const promptTokens = countPromptTokens(body);
    const outputTokens = Math.max(1, Math.ceil(text.length / 4));
    return {
      candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: promptTokens, candidatesTokenCount: outputTokens, totalTokenCount: promptTokens + outputTokens },
      modelVersion: model,
      responseId: responseId(requestHash, state.calls.length),
    };
  };

  const safetyAnswer = (body: Buffer, model: string) => {
    const promptTokens = countPromptTokens(body);
    return { promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: promptTokens, totalTokenCount: promptTokens }, modelVersion: model };
  };

  const generateContent = async (request: FastifyRequest, reply: FastifyReply, model: string) => {
    const body = bodyOf(request);
    return play(
      request,
      reply,
      { operation: 'generateContent', model, body },
      (behaviour, requestHash) => when(behaviour, () => generateAnswer(body, model, behaviour.text ?? offlineAnswer(body), requestHash)),
      () => safetyAnswer(body, model),
      () => undefined,
    );
  };

  // Server-sent events as the SDK reads them (`alt=sse`): the text in two
  // chunks, usage and finish reason on the last one.
  const streamGenerateContent = async (request: FastifyRequest, reply: FastifyReply, model: string) => {
    const body = bodyOf(request);
    const stream = (chunks: unknown[]) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (const chunk of chunks) reply.raw.write(`data: ${JSON.stringify(chunk)}\r\n\r\n`);
      reply.raw.end();
    };
    return play(
      request,
      reply,
      { operation: 'streamGenerateContent', model, body },
      (behaviour, requestHash) =>
        when(behaviour, () => {
          const whole = generateAnswer(body, model, behaviour.text ?? offlineAnswer(body), requestHash);
          const text = whole.candidates[0]!.content.parts[0]!.text;
          const half = Math.ceil(text.length / 2);
          stream([
            { candidates: [{ content: { role: 'model', parts: [{ text: text.slice(0, half) }] }, index: 0 }], modelVersion: model, responseId: whole.responseId },
            { ...whole, candidates: [{ ...whole.candidates[0]!, content: { role: 'model', parts: [{ text: text.slice(half) }] } }] },
          ]);
        }),
      () => stream([safetyAnswer(body, model)]),
      () => undefined,
    );
  };

  // `{model}:{method}` is one path segment, which find-my-way cannot split by
  // its static suffix: one route, dispatched on the method after the last colon.
  app.post<{ Params: { modelMethod: string } }>('/v1beta/models/:modelMethod', async (request, reply) => {
    const { modelMethod } = request.params;
    const colon = modelMethod.lastIndexOf(':');
    const model = modelMethod.slice(0, colon);
    const method = modelMethod.slice(colon + 1);
    if (colon > 0 && method === 'generateContent') return generateContent(request, reply, model);
    if (colon > 0 && method === 'streamGenerateContent') return streamGenerateContent(request, reply, model);
    return reply.code(404).send(geminiError(404, `offline model server: no route POST ${request.url.split('?')[0]}`));
  });

  app.post('/v1beta/interactions', async (request, reply) => {
    const body = bodyOf(request);
    const create = parseInteractionRequest(body);
    const newInteraction = (finalStatus: 'completed' | 'failed', text?: string) =>
      state.createInteraction({ model: create.model, prompt: create.prompt, system: create.system, finalStatus, text });
    return play(
      request,
      reply,
      { operation: 'interactions.create', model: create.model, body },
      async (behaviour) => {
        if (create.background !== true) {
          return reply.code(400).send(geminiError(400, 'offline model server: only background interactions are modelled'));
        }
        const created = newInteraction(behaviour.finalStatus ?? 'completed', behaviour.text);
        // Created now; a held answer (its id) is sent as it was at creation.
        const resource = interactionResource(created);
        return behaviour.hold ? state.hold(resource) : resource;
      },
      // The Interactions API refuses a blocked prompt at create time.
      () => reply.code(400).send(geminiError(400, 'offline model server: prompt blocked for safety (SAFETY)')),
      () => newInteraction('completed'),
    );
  });

  app.get<{ Params: { id: string } }>('/v1beta/interactions/:id', async (request, reply) => {
    const interaction = state.interactions.get(request.params.id);
    // A read error scripted under `interactions.get` (a key revoked while a report runs).
    const readError = state.nextReadError();
    if (readError) {
      state.calls.push({ operation: 'interactions.get', model: interaction?.model ?? '', requestHash: '', outcome: 'error', status: readError.status, atMs: Date.now() });
      const details = readError.reason ? [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: readError.reason, domain: 'googleapis.com' }] : [];
      return reply.code(readError.status).send(geminiError(readError.status, readError.message ?? `offline model server: scripted ${readError.status}`, details));
    }
    state.calls.push({ operation: 'interactions.get', model: interaction?.model ?? '', requestHash: '', outcome: 'ok', status: interaction ? 200 : 404, atMs: Date.now() });
    if (!interaction) return reply.code(404).send(geminiError(404, 'interaction not found'));
    // Read on arrival: a held read answers with the state it saw then.
    const resource = interactionResource(interaction);
    return state.interactionSettings.holdReads ? state.hold(resource) : resource;
  });

  // Cancel of a background interaction: only a running one can be stopped;
  // one that already ended is refused with 400 (FAILED_PRECONDITION is not in
  // Gemini's REST error table; its INVALID_ARGUMENT carries the same meaning here).
  app.post<{ Params: { id: string } }>('/v1beta/interactions/:id/cancel', async (request, reply) => {
    const interaction = state.interactions.get(request.params.id);
    const cancelled = interaction ? state.cancelInteraction(interaction) : false;
    state.calls.push({ operation: 'interactions.cancel', model: interaction?.model ?? '', requestHash: '', outcome: cancelled ? 'ok' : 'error', status: interaction ? (cancelled ? 200 : 400) : 404, atMs: Date.now() });
    if (!interaction) return reply.code(404).send(geminiError(404, 'interaction not found'));
    if (!cancelled) return reply.code(400).send(geminiError(400, `interaction ${interaction.id} is ${interaction.status}; only a running interaction can be cancelled`));
    return interactionResource(interaction);
  });
};

/** Roughly four characters a token, as Gemini's own estimate for English text. */
function countPromptTokens(body: Buffer): number {
  return Math.max(1, Math.ceil(promptText(body).length / 4));
}

function promptText(body: Buffer): string {
  try {
    const request = JSON.parse(body.toString('utf8')) as { contents?: { parts?: { text?: string }[] }[] };
    return (request.contents ?? []).flatMap((c) => c.parts ?? []).map((p) => p.text ?? '').join('\n');
  } catch {
    return '';
  }
}

/** A canned, clearly offline answer that still depends on the prompt (so results differ per request). */
function offlineAnswer(body: Buffer): string {
  const prompt = promptText(body);
  const digest = createHash('sha256').update(prompt).digest('hex').slice(0, 8);
  return `[offline model] This is a canned answer from Onceflow's offline model server (no GEMINI_API_KEY set). Prompt of ${prompt.length} characters, digest ${digest}.`;
}

/** The part of a create request the offline server models. */
function parseInteractionRequest(body: Buffer): { model: string; prompt: string; system?: string; background?: boolean } {
  try {
    const request = JSON.parse(body.toString('utf8')) as { model?: string; input?: unknown; system_instruction?: string; background?: boolean };
    return { model: request.model ?? '', prompt: inputText(request.input), system: request.system_instruction, background: request.background };
  } catch {
    return { model: '', prompt: '' };
  }
}

/** `input` is a string, a content block, or a list of blocks/steps; only text is kept. */
function inputText(input: unknown): string {
  if (typeof input === 'string') return input;
  if (Array.isArray(input)) return input.map(inputText).join('\n');
  if (input && typeof input === 'object') {
    const block = input as { text?: unknown; content?: unknown };
    if (typeof block.text === 'string') return block.text;
    if (block.content !== undefined) return inputText(block.content);
  }
  return '';
}

/** The Interaction resource as the REST API returns it (snake_case, steps, usage). */
function interactionResource(interaction: StoredInteraction) {
  const done = interaction.status === 'completed';
  const text = interaction.text ?? offlineReport(interaction.prompt);
  const inputTokens = Math.max(1, Math.ceil(interaction.prompt.length / 4));
  const outputTokens = Math.max(1, Math.ceil(text.length / 4));
  return {
    id: interaction.id,
    model: interaction.model,
    status: interaction.status,
    created: interaction.created,
    updated: interaction.updated,
    ...(done ? {
      steps: [{ type: 'model_output', content: [{ type: 'text', text }] }],
      usage: { total_input_tokens: inputTokens, total_output_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
    } : {}),
    ...(interaction.status === 'failed' ? { errors: [{ code: 13, message: 'offline model server: scripted interaction failure' }] } : {}),
  };
}

function offlineReport(prompt: string): string {
  const digest = createHash('sha256').update(prompt).digest('hex').slice(0, 8);
  return `[offline model] A canned report from Onceflow's offline model server (no GEMINI_API_KEY set). Prompt of ${prompt.length} characters, digest ${digest}.`;
}
