/** Entry of the offline model server that `make start` runs when GEMINI_API_KEY is unset. */
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { runEntrypoint } from '../../src/process/entrypoint';
import { startOfflineGeminiServer } from './server';
import { geminiWebhookSecretFromConfig } from '../../src/integrations/gemini/webhooks';

runEntrypoint('gemini-offline', async ({ onShutdown, stopped }) => {
  const config = loadConfig();
  const logger = createLogger({ service: 'gemini-offline', level: config.LOG_LEVEL });
  // Completion webhooks of background interactions go to the local API, signed
  // with the same secret the API verifies with, like a static Gemini webhook.
  const apiHost = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
  const secret = geminiWebhookSecretFromConfig(config);
  const webhook = secret ? { url: `http://${apiHost}:${config.PORT}/v1/webhooks/gemini`, secret } : null;
  const server = await startOfflineGeminiServer({ port: config.GEMINI_OFFLINE_PORT, interactions: { webhook } });
  onShutdown(() => server.close());
  logger.info({ url: server.url, offline: true, webhook: webhook?.url ?? null }, 'OFFLINE model server listening: canned answers, nothing reaches Google');
  await stopped;
});
