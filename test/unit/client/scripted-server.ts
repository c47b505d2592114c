import http from 'node:http';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** What the server does with the n-th request (0-based); the last step repeats. */
export type Step = (request: SeenRequest, response: http.ServerResponse, socket: Socket) => void;

/** A real HTTP server on a free port that answers requests by a script; it records what it received. */
export async function startScriptedServer(steps: Step[]) {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      const step = steps[Math.min(seen.length, steps.length - 1)]!;
      seen.push(request);
      step(request, res, req.socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function resource(key: string, overrides: Record<string, unknown> = {}) {
  return {
    operationType: 'generate-content',
    idempotencyKey: key,
    status: 'succeeded',
    createdAt: '2026-11-22T10:00:00.000Z',
    completedAt: '2026-11-22T10:00:01.000Z',
    workflowId: `wf-${key}`,
    runId: 'run-1',
    result: { text: 'hello', model: 'gemini-2.5-flash', usage: { promptTokens: 1, outputTokens: 1, totalTokens: 2 }, attempts: [] },
    error: null,
    links: { self: `/v1/operations/generate-content/${key}`, temporalUi: 'http://localhost:8233' },
    ...overrides,
  };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Step {
  return (request, response) => {
    const payload = typeof body === 'function' ? (body as (r: SeenRequest) => unknown)(request) : body;
    response.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers });
    response.end(JSON.stringify(payload));
  };
}

export function problem(status: number, slug: string, headers: Record<string, string> = {}): Step {
  return json(status, { type: `https://onceflow.dev/problems/${slug}`, title: slug, status, detail: `scripted ${slug}` }, headers);
}

/** Succeeds with the resource for whatever key the request carried. */
export function ok(status = 200, headers: Record<string, string> = {}): Step {
  return json(status, (request: SeenRequest) => resource(String(request.headers['idempotency-key'])), headers);
}

/** Reads the whole request, then drops the connection without answering: the server accepted, the answer is lost. */
export const resetAfterAccept: Step = (_request, _response, socket) => {
  socket.resetAndDestroy();
};

/** Never answers (until the server closes). */
export const hang: Step = () => undefined;
