/**
 * Requests against the facade as a client would send them, over kept-alive
 * `node:http` connections. The load generator shares the machine's cores with
 * the arms it measures, so it must cost as little as the bare arms' drivers:
 * `fetch` (undici) spent about 0.7 ms of CPU per request here, several times
 * what `node:http` spends, and that time was charged to the facade arm.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { BENCH_TENANT } from './stack';

export const AUTH = { authorization: `Bearer ${BENCH_TENANT.apiKey}` };

/** One pool of connections for the harness; a closed-loop driver reuses one connection per concurrent client. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface FacadeAnswer {
  status: number;
  body: any;
  headers: IncomingHttpHeaders;
}

export function postOperation(
  apiUrl: string,
  key: string,
  body: unknown,
  options: { waitSeconds?: number; type?: string; timeoutMs?: number } = {},
): Promise<FacadeAnswer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${apiUrl}/v1/operations/${options.type ?? 'generate-content'}`,
      {
        method: 'POST',
        agent,
        headers: {
          ...AUTH,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          'idempotency-key': key,
          ...(options.waitSeconds ? { prefer: `wait=${options.waitSeconds}` } : {}),
        },
        timeout: options.timeoutMs ?? 60_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // keep the text
          }
          resolve({ status: response.statusCode ?? 0, body: parsed, headers: response.headers });
        });
      },
    );
    // `timeout` is idle time on the socket; a request that sees none for that long is abandoned.
    request.on('timeout', () => request.destroy(new Error(`POST ${key}: no answer within ${options.timeoutMs ?? 60_000} ms`)));
    request.on('error', reject);
    request.end(payload);
  });
}
