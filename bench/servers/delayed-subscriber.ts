/**
 * A subscriber for the fairness arm (bench/arms/fairness.ts): verifies each
 * delivery's Standard Webhooks signature, then holds the answer DELAY_MS
 * before its 200. With DELAY_MS=5000 it is the slow subscriber; with
 * 0 the fast one. GET /stats answers {"received": n, "inFlight": n}: deliveries
 * that passed the check, and requests it holds right now.
 *   WEBHOOK_SECRET=whsec_… DELAY_MS=5000 PORT=0 node --import tsx bench/servers/delayed-subscriber.ts
 */
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

function main(): void {
  const { WEBHOOK_SECRET, PORT, DELAY_MS } = process.env;
  if (!WEBHOOK_SECRET?.startsWith('whsec_')) throw new Error('set WEBHOOK_SECRET');
  const delayMs = Number(DELAY_MS ?? 0);
  const webhook = new Webhook(WEBHOOK_SECRET);
  let received = 0;
  let inFlight = 0;
  const server = http.createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/stats') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ received, inFlight }));
      return;
    }
    inFlight++;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      try {
        webhook.verify(Buffer.concat(chunks).toString('utf8'), request.headers as Record<string, string>);
      } catch {
        inFlight--;
        response.writeHead(401).end('bad signature');
        return;
      }
      received++;
      const answer = () => {
        inFlight--;
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 10_000;
  server.listen(Number(PORT ?? 0), '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    process.stdout.write(`delayed subscriber (${delayMs} ms) listening on http://127.0.0.1:${port}/webhooks\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

try {
  main();
} catch (error) {
  process.stderr.write(`delayed subscriber: ${(error as Error).message}\n`);
  process.exit(1);
}
