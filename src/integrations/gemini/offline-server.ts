/**
 * The offline model server: a local HTTP server that speaks the REST shapes
 * @google/genai uses for `models.generateContent`, so the real SDK runs end to
 * end with no network. It is the offline model of `make start` (canned
 * answers, clearly labelled) and the test double of every Gemini test: it
 * counts each call it receives and can be scripted per model to fail.
 *
 * It also models the Interactions API of long reports: `POST /v1beta/interactions`
 * with `background: true` answers at once with an `in_progress` interaction
 * that completes after `durationMs` (or when told to), `GET
 * /v1beta/interactions/{id}` reads it, and on completion a Standard-Webhooks
 * signed `interaction.completed` event is POSTed to the configured webhook URL,
 * as Gemini's static webhooks do.
 *
 * Control API (tests and the fault suite):
 *   POST /__control/script  {"model": "gemini-2.5-flash", "responses": [Behaviour, …]}
 *        queues behaviours for the next paid calls (generateContent or an
 *        interaction create) to that model ("*" for any model); when the queue
 *        is empty, calls succeed.
 *   POST /__control/interactions {"durationMs": 300, "hold": false, "holdReads": false,
 *        "webhook": {"url": "…", "secret": "whsec_…", "deliveries": 1} | null}
 *        how new interactions behave; `hold` keeps them running until completed by hand
 *   GET  /__control/interactions            every interaction (id, model, status)
 *   POST /__control/interactions/{id}/complete   completes a held interaction (delivers its webhook)
 *   POST /__control/release   sends every held answer (`ok` with `hold`, reads under `holdReads`); answers {released: n}
 *   POST /__control/interactions/{id}/deliver {"times": 2, "badSignature": false}
 *        (re)delivers the completion webhook of a finished interaction now
 *   GET  /__control/webhooks   every webhook delivery attempt and the receiver's status
 *   POST /__control/chaos   {"failureRate": 0.3, "dropRate": 0.05} random 429/503 and dropped answers
 *   GET  /__control/calls   every call so far: model, outcome, prompt hash
 *   POST /__control/reset   forget calls, scripts and chaos
 *   GET  /__control/health
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { DEV_GEMINI_WEBHOOK_SECRET, signGeminiWebhook } from './webhooks';

/** What one call does. */
export type Behaviour =
  /**
   * Answers, after `delayMs` if set, or (`hold`) only when POST
   * /__control/release says so; the call is counted, and an interaction
   * created, on arrival. An interaction created so ends with `finalStatus`
   * (default completed).
   */
  | { kind: 'ok'; text?: string; finalStatus?: 'completed' | 'failed'; delayMs?: number; hold?: boolean }
  /**
   * An error body; 429 carries a google.rpc.RetryInfo retryDelay when `retryDelaySeconds` is set,
   * and a google.rpc.ErrorInfo with `reason` when set (e.g. API_KEY_INVALID, as Gemini refuses a bad key).
   */
  | { kind: 'error'; status: number; retryDelaySeconds?: number; message?: string; reason?: string }
  /** The prompt is blocked for safety (promptFeedback.blockReason). */
  | { kind: 'safety' }
  /** Never answers (until the client gives up). */
  | { kind: 'hang' }
  /** Does the work (counted, billed) and then drops the connection before answering. */
  | { kind: 'drop' };

/** Which endpoint a call hit: the first two are paid, a get is free. */
export type CallOperation = 'generateContent' | 'interactions.create' | 'interactions.get';

export interface RecordedCall {
  operation: CallOperation;
  model: string;
  /** sha256 of the request body: tests match calls to prompts without the server keeping prompts. */
  requestHash: string;
  outcome: Behaviour['kind'];
  status: number;
  atMs: number;
}

/** Where completion webhooks go, signed with `secret` (Standard Webhooks). */
export interface WebhookTarget {
  url: string;
  /** Default: the development secret (DEV_GEMINI_WEBHOOK_SECRET). */
  secret?: string;
  /** How many times each completion event is delivered (same webhook-id): redeliveries. Default 1. */
  deliveries?: number;
}

export interface InteractionSettings {
  /** Time from create to completion, in ms. Default 300. */
  durationMs: number;
  /** Keep new interactions running until POST /__control/interactions/{id}/complete. Default false. */
  hold: boolean;
  /** Hold the answers of interaction reads until POST /__control/release; each answers with the state it read on arrival. Default false. */
  holdReads: boolean;
  webhook: WebhookTarget | null;
}

export interface WebhookDelivery {
  interactionId: string;
  webhookId: string;
  /** The receiver's HTTP status; 0 when it could not be reached. */
  status: number;
  badSignature: boolean;
  atMs: number;
}

interface StoredInteraction {
  id: string;
  model: string;
  prompt: string;
  system?: string;
  status: 'in_progress' | 'completed' | 'failed';
  finalStatus: 'completed' | 'failed';
  text?: string;
  created: string;
  updated: string;
}

export interface OfflineGeminiServer {
  url: string;
  port: number;
  calls(): RecordedCall[];
  close(): Promise<void>;
}

export interface StartOfflineGeminiServerOptions {
  port?: number;
  host?: string;
  /** Initial interaction behaviour; the control API changes it. Default: 300 ms, no hold, no webhook. */
  interactions?: Partial<InteractionSettings>;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

const DEFAULT_INTERACTIONS: InteractionSettings = { durationMs: 300, hold: false, holdReads: false, webhook: null };

export async function startOfflineGeminiServer(options: StartOfflineGeminiServerOptions = {}): Promise<OfflineGeminiServer> {
  const calls: RecordedCall[] = [];
  const scripts = new Map<string, Behaviour[]>();
  let chaos = { failureRate: 0, dropRate: 0 };
  const initialInteractions = { ...DEFAULT_INTERACTIONS, ...options.interactions };
  let interactionSettings = { ...initialInteractions };
  const interactions = new Map<string, StoredInteraction>();
  const deliveries: WebhookDelivery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  // Answers of `hold` behaviours, sent by POST /__control/release.
  const heldAnswers: (() => void)[] = [];

  const deliverWebhook = async (interaction: StoredInteraction, target: WebhookTarget, badSignature: boolean) => {
    const webhookId = `whevt_${interaction.id}_${interaction.status}`;
    const body = JSON.stringify({
      type: `interaction.${interaction.status}`,
      timestamp: new Date().toISOString(),
      data: { id: interaction.id, status: interaction.status, model: interaction.model },
    });
    const secret = badSignature ? `whsec_${Buffer.from('not-the-secret-at-all-not-it!').toString('base64')}` : target.secret ?? DEV_GEMINI_WEBHOOK_SECRET;
    let status = 0;
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signGeminiWebhook(secret, { id: webhookId, at: new Date(), body }) },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      status = response.status;
      await response.arrayBuffer();
    } catch {
      status = 0;
    }
    deliveries.push({ interactionId: interaction.id, webhookId, status, badSignature, atMs: Date.now() });
  };

  const deliverAll = async (interaction: StoredInteraction, times: number, badSignature = false) => {
    const target = interactionSettings.webhook;
    if (!target) return;
    // Sequential, like a sender retrying the same event: each one carries the same webhook-id.
    for (let i = 0; i < times; i += 1) await deliverWebhook(interaction, target, badSignature);
  };

  const completeInteraction = (interaction: StoredInteraction) => {
    if (interaction.status !== 'in_progress') return;
    interaction.status = interaction.finalStatus;
    interaction.updated = new Date().toISOString();
    void deliverAll(interaction, interactionSettings.webhook?.deliveries ?? 1);
  };

  const nextBehaviour = (model: string): Behaviour => {
    for (const key of [model, '*']) {
      const queue = scripts.get(key);
      if (queue && queue.length > 0) return queue.shift()!;
    }
    const roll = Math.random();
    if (roll < chaos.dropRate) return { kind: 'drop' };
    if (roll < chaos.dropRate + chaos.failureRate) {
      return Math.random() < 0.5 ? { kind: 'error', status: 429, retryDelaySeconds: 1 } : { kind: 'error', status: 503 };
    }
    return { kind: 'ok' };
  };

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(request.url ?? '/', 'http://offline');
      const send = (status: number, payload: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      };

      if (url.pathname.startsWith('/__control/')) {
        const command = url.pathname.slice('/__control/'.length);
        const input = () => (body.length > 0 ? JSON.parse(body.toString('utf8')) : {}) as Record<string, unknown>;
        if (command === 'health') return send(200, { status: 'ok', offline: true });
        if (command === 'calls') return send(200, { calls });
        if (command === 'webhooks') return send(200, { deliveries });
        if (command === 'reset' && request.method === 'POST') {
          calls.length = 0;
          scripts.clear();
          chaos = { failureRate: 0, dropRate: 0 };
          interactionSettings = { ...initialInteractions };
          deliveries.length = 0;
          interactions.clear();
          heldAnswers.length = 0;
          for (const timer of timers) clearTimeout(timer);
          timers.clear();
          return send(200, { reset: true });
        }
        if (command === 'script' && request.method === 'POST') {
          const { model, responses } = input() as { model?: string; responses: Behaviour[] };
          const key = model ?? '*';
          scripts.set(key, [...(scripts.get(key) ?? []), ...responses]);
          return send(200, { queued: scripts.get(key)!.length });
        }
        if (command === 'release' && request.method === 'POST') {
          const answers = heldAnswers.splice(0);
          for (const answer of answers) answer();
          return send(200, { released: answers.length });
        }
        if (command === 'chaos' && request.method === 'POST') {
          chaos = { failureRate: 0, dropRate: 0, ...(input() as Partial<typeof chaos>) };
          return send(200, chaos);
        }
        if (command === 'interactions' && request.method === 'POST') {
          interactionSettings = { ...interactionSettings, ...(input() as Partial<InteractionSettings>) };
          return send(200, interactionSettings);
        }
        if (command === 'interactions' && request.method === 'GET') {
          return send(200, { interactions: [...interactions.values()].map(({ id, model, status }) => ({ id, model, status })) });
        }
        const perInteraction = /^interactions\/([^/]+)\/(complete|deliver)$/.exec(command);
        if (perInteraction && request.method === 'POST') {
          const interaction = interactions.get(decodeURIComponent(perInteraction[1]!));
          if (!interaction) return send(404, { error: { code: 404, message: 'no such interaction', status: 'NOT_FOUND' } });
          if (perInteraction[2] === 'complete') {
            completeInteraction(interaction);
            return send(200, { id: interaction.id, status: interaction.status });
          }
          const { times, badSignature } = input() as { times?: number; badSignature?: boolean };
          // Answers once every delivery has been attempted, so a test can assert right after.
          void deliverAll(interaction, times ?? 1, badSignature ?? false).then(() => send(200, { delivered: times ?? 1 }));
          return;
        }
        return send(404, { error: { code: 404, message: `unknown control command ${command}`, status: 'NOT_FOUND' } });
      }

      const getInteraction = /^\/v1beta\/interactions\/([^/:]+)$/.exec(url.pathname);
      if (getInteraction && request.method === 'GET') {
        const interaction = interactions.get(decodeURIComponent(getInteraction[1]!));
        calls.push({ operation: 'interactions.get', model: interaction?.model ?? '', requestHash: '', outcome: 'ok', status: interaction ? 200 : 404, atMs: Date.now() });
        if (!interaction) return send(404, { error: { code: 404, message: 'interaction not found', status: 'NOT_FOUND', details: [] } });
        const resource = interactionResource(interaction);
        if (interactionSettings.holdReads) {
          heldAnswers.push(() => send(200, resource));
          return;
        }
        return send(200, resource);
      }

      const generate = /^\/v1beta\/models\/([^/:]+):generateContent$/.exec(url.pathname);
      const create = url.pathname === '/v1beta/interactions' && request.method === 'POST';
      if (!(generate && request.method === 'POST') && !create) {
        return send(404, { error: { code: 404, message: `offline model server: no route ${request.method} ${url.pathname}`, status: 'NOT_FOUND' } });
      }
      const operation: CallOperation = create ? 'interactions.create' : 'generateContent';
      const createBody = create ? parseInteractionRequest(body) : undefined;
      const model = create ? createBody!.model : decodeURIComponent(generate![1]!);
      const behaviour = nextBehaviour(model);
      const requestHash = createHash('sha256').update(body).digest('hex');
      const record = (status: number) => calls.push({ operation, model, requestHash, outcome: behaviour.kind, status, atMs: Date.now() });
      const newInteraction = (finalStatus: 'completed' | 'failed', text?: string): StoredInteraction => {
        const now = new Date().toISOString();
        const interaction: StoredInteraction = {
          id: `offline-int-${randomUUID()}`, model, prompt: createBody!.prompt, system: createBody!.system,
          status: 'in_progress', finalStatus, text, created: now, updated: now,
        };
        interactions.set(interaction.id, interaction);
        if (!interactionSettings.hold) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            completeInteraction(interaction);
          }, interactionSettings.durationMs);
          timers.add(timer);
        }
        return interaction;
      };

      switch (behaviour.kind) {
        case 'hang':
          record(0);
          return; // the client's timeout ends it
        case 'drop':
          record(200);
          // The work is done (and would be billed); the answer never arrives.
          if (create) newInteraction('completed');
          request.socket.destroy();
          return;
        case 'error': {
          record(behaviour.status);
          const details: object[] = [
            ...(behaviour.retryDelaySeconds ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${behaviour.retryDelaySeconds}s` }] : []),
            ...(behaviour.reason ? [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: behaviour.reason, domain: 'googleapis.com' }] : []),
          ];
          return send(behaviour.status, {
            error: {
              code: behaviour.status,
              message: behaviour.message ?? `offline model server: scripted ${behaviour.status}`,
              status: STATUS_NAMES[behaviour.status] ?? 'UNKNOWN',
              details,
            },
          });
        }
        case 'safety': {
          record(200);
          if (create) {
            // The Interactions API refuses a blocked prompt at create time.
            return send(400, { error: { code: 400, message: 'offline model server: prompt blocked for safety (SAFETY)', status: 'INVALID_ARGUMENT', details: [] } });
          }
          const promptTokens = countPromptTokens(body);
          return send(200, {
            promptFeedback: { blockReason: 'SAFETY' },
            usageMetadata: { promptTokenCount: promptTokens, totalTokenCount: promptTokens },
            modelVersion: model,
          });
        }
        case 'ok': {
          record(200);
          if (create) {
            if (createBody!.background !== true) {
              return send(400, { error: { code: 400, message: 'offline model server: only background interactions are modelled', status: 'INVALID_ARGUMENT', details: [] } });
            }
            const created = newInteraction(behaviour.finalStatus ?? 'completed', behaviour.text);
            if (behaviour.hold) {
              // Created now; the answer (its id) is sent as it was at creation.
              const resource = interactionResource(created);
              heldAnswers.push(() => send(200, resource));
              return;
            }
            return send(200, interactionResource(created));
          }
          const promptTokens = countPromptTokens(body);
          const text = behaviour.text ?? offlineAnswer(body);
          const outputTokens = Math.max(1, Math.ceil(text.length / 4));
          const answer = () => send(200, {
            candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
            usageMetadata: { promptTokenCount: promptTokens, candidatesTokenCount: outputTokens, totalTokenCount: promptTokens + outputTokens },
            modelVersion: model,
            responseId: createHash('sha256').update(`${requestHash}:${calls.length}`).digest('hex').slice(0, 24),
          });
          if (behaviour.hold) {
            heldAnswers.push(answer);
            return;
          }
          if (!behaviour.delayMs) return answer();
          const timer = setTimeout(() => {
            timers.delete(timer);
            answer();
          }, behaviour.delayMs);
          timers.add(timer);
          return;
        }
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port ?? 0;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    calls: () => [...calls],
    close: () =>
      new Promise((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

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
