/** Requests against the facade as a client would send them. */
import { BENCH_TENANT } from './stack';

export const AUTH = { authorization: `Bearer ${BENCH_TENANT.apiKey}` };

export interface FacadeAnswer {
  status: number;
  body: any;
  headers: Headers;
}

export async function postOperation(
  apiUrl: string,
  key: string,
  body: unknown,
  options: { waitSeconds?: number; type?: string; timeoutMs?: number } = {},
): Promise<FacadeAnswer> {
  const response = await fetch(`${apiUrl}/v1/operations/${options.type ?? 'generate-content'}`, {
    method: 'POST',
    headers: {
      ...AUTH,
      'content-type': 'application/json',
      'idempotency-key': key,
      ...(options.waitSeconds ? { prefer: `wait=${options.waitSeconds}` } : {}),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}
