/** Entry of the offline model server that `make start` runs when GEMINI_API_KEY is unset. */
import { loadConfig } from '../../config';
import { createLogger } from '../../observability/logger';
import { runEntrypoint } from '../../process/entrypoint';
import { startOfflineGeminiServer } from './offline-server';

runEntrypoint('gemini-offline', async ({ onShutdown, stopped }) => {
  const config = loadConfig();
  const logger = createLogger({ service: 'gemini-offline', level: config.LOG_LEVEL });
  const server = await startOfflineGeminiServer({ port: config.GEMINI_OFFLINE_PORT });
  onShutdown(() => server.close());
  logger.info({ url: server.url, offline: true }, 'OFFLINE model server listening: canned answers, nothing reaches Google');
  await stopped;
});
