/**
 * The offline model server: a local HTTP server that speaks the REST shapes
 * @google/genai uses for `models.generateContent`, so the real SDK runs end to
 * end with no network. It is the offline model of `make start` (canned
 * answers, clearly labelled) and the test double of every Gemini test: it
 * counts each call it receives and can be scripted per model to fail.
 *
 * Control API (tests and the fault suite):
 *   POST /__control/script  {"model": "gemini-2.5-flash", "responses": [Behaviour, …]}
 *        queues behaviours for the next calls to that model ("*" for any model);
 *        when the queue is empty, calls succeed.
 *   POST /__control/chaos   {"failureRate": 0.3, "dropRate": 0.05} random 429/503 and dropped answers
 *   GET  /__control/calls   every call so far: model, outcome, prompt hash
 *   POST /__control/reset   forget calls, scripts and chaos
 *   GET  /__control/health
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

/** What one call does. */
export type Behaviour =
  | { kind: 'ok'; text?: string }
  /** An error body; 429 carries a google.rpc.RetryInfo retryDelay when `retryDelaySeconds` is set. */
  | { kind: 'error'; status: number; retryDelaySeconds?: number; message?: string }
  /** The prompt is blocked for safety (promptFeedback.blockReason). */
  | { kind: 'safety' }
  /** Never answers (until the client gives up). */
  | { kind: 'hang' }
  /** Does the work (counted, billed) and then drops the connection before answering. */
  | { kind: 'drop' };

export interface RecordedCall {
  model: string;
  /** sha256 of the request body: tests match calls to prompts without the server keeping prompts. */
  requestHash: string;
  outcome: Behaviour['kind'];
  status: number;
  atMs: number;
}

export interface OfflineGeminiServer {
  url: string;
  port: number;
  calls(): RecordedCall[];
  close(): Promise<void>;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

export async function startOfflineGeminiServer(options: { port?: number; host?: string } = {}): Promise<OfflineGeminiServer> {
  const calls: RecordedCall[] = [];
  const scripts = new Map<string, Behaviour[]>();
  let chaos = { failureRate: 0, dropRate: 0 };

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
        if (command === 'health') return send(200, { status: 'ok', offline: true });
        if (command === 'calls') return send(200, { calls });
        if (command === 'reset' && request.method === 'POST') {
          calls.length = 0;
          scripts.clear();
          chaos = { failureRate: 0, dropRate: 0 };
          return send(200, { reset: true });
        }
        if (command === 'script' && request.method === 'POST') {
          const { model, responses } = JSON.parse(body.toString('utf8')) as { model?: string; responses: Behaviour[] };
          const key = model ?? '*';
          scripts.set(key, [...(scripts.get(key) ?? []), ...responses]);
          return send(200, { queued: scripts.get(key)!.length });
        }
        if (command === 'chaos' && request.method === 'POST') {
          chaos = { failureRate: 0, dropRate: 0, ...(JSON.parse(body.toString('utf8')) as Partial<typeof chaos>) };
          return send(200, chaos);
        }
        return send(404, { error: { code: 404, message: `unknown control command ${command}`, status: 'NOT_FOUND' } });
      }

      const match = /^\/v1beta\/models\/([^/:]+):generateContent$/.exec(url.pathname);
      if (!match || request.method !== 'POST') {
        return send(404, { error: { code: 404, message: `offline model server: no route ${request.method} ${url.pathname}`, status: 'NOT_FOUND' } });
      }
      const model = decodeURIComponent(match[1]!);
      const behaviour = nextBehaviour(model);
      const requestHash = createHash('sha256').update(body).digest('hex');
      const record = (status: number) => calls.push({ model, requestHash, outcome: behaviour.kind, status, atMs: Date.now() });

      switch (behaviour.kind) {
        case 'hang':
          record(0);
          return; // the client's timeout ends it
        case 'drop':
          record(200);
          // The work is done (and would be billed); the answer never arrives.
          request.socket.destroy();
          return;
        case 'error': {
          record(behaviour.status);
          const details = behaviour.retryDelaySeconds
            ? [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${behaviour.retryDelaySeconds}s` }]
            : [];
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
          const promptTokens = countPromptTokens(body);
          return send(200, {
            promptFeedback: { blockReason: 'SAFETY' },
            usageMetadata: { promptTokenCount: promptTokens, totalTokenCount: promptTokens },
            modelVersion: model,
          });
        }
        case 'ok': {
          record(200);
          const promptTokens = countPromptTokens(body);
          const text = behaviour.text ?? offlineAnswer(body);
          const outputTokens = Math.max(1, Math.ceil(text.length / 4));
          return send(200, {
            candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
            usageMetadata: { promptTokenCount: promptTokens, candidatesTokenCount: outputTokens, totalTokenCount: promptTokens + outputTokens },
            modelVersion: model,
            responseId: createHash('sha256').update(`${requestHash}:${calls.length}`).digest('hex').slice(0, 24),
          });
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
