/**
 * The smallest correct subscriber: verifies each delivery's Standard Webhooks
 * signature and answers 200, nothing else. It has no inbox, so unlike
 * consumer.ts it applies a redelivered event again; it exists to measure the
 * relay against a subscriber that costs as little as a correct one can
 * (bench/arms/outbox.ts), and as a template.
 *   WEBHOOK_SECRET=whsec_… PORT=8082 node --import tsx examples/consumer/verify-only.ts
 * GET /stats answers {"received": n, "distinct": n}: deliveries that passed
 * the signature check, and distinct webhook-ids among them.
 */
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

function main(): void {
  const { WEBHOOK_SECRET, PORT } = process.env;
  if (!WEBHOOK_SECRET?.startsWith('whsec_')) throw new Error('set WEBHOOK_SECRET (the whsec_… secret POST /v1/subscriptions returned)');
  const webhook = new Webhook(WEBHOOK_SECRET);
  const seen = new Set<string>();
  let received = 0;
  const server = http.createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/stats') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ received, distinct: seen.size }));
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      try {
        webhook.verify(Buffer.concat(chunks).toString('utf8'), request.headers as Record<string, string>);
      } catch {
        response.writeHead(401).end('bad signature');
        return;
      }
      received++;
      seen.add(String(request.headers['webhook-id']));
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  // Longer than the relay's idle-connection timeout (4 s), so the relay, not
  // we, closes idle kept-alive connections.
  server.keepAliveTimeout = 10_000;
  server.listen(Number(PORT ?? 8082), '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    process.stdout.write(`verifying subscriber listening on http://127.0.0.1:${port}/webhooks\n`);
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
  process.stderr.write(`verifying subscriber: ${(error as Error).message}\n`);
  process.exit(1);
}
