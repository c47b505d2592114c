import type { Config } from '../../config';
import { ConfigError } from '../../config';
import { createGeminiClient, type GeminiClient } from './client';

/**
 * The Gemini client of a process: the real API with GEMINI_API_KEY (through
 * GEMINI_BASE_URL if set), or the offline server at GEMINI_BASE_URL, which
 * takes any key.
 */
export function geminiClientFromConfig(config: Pick<Config, 'GEMINI_API_KEY' | 'GEMINI_BASE_URL' | 'GEMINI_REQUEST_TIMEOUT_MS'>): GeminiClient {
  if (!config.GEMINI_API_KEY && !config.GEMINI_BASE_URL) {
    throw new ConfigError([{ variable: 'GEMINI_API_KEY', message: 'set GEMINI_API_KEY, or GEMINI_BASE_URL to an offline model server (`npm start` starts one)' }]);
  }
  return createGeminiClient({
    apiKey: config.GEMINI_API_KEY ?? 'offline-model-server',
    baseUrl: config.GEMINI_BASE_URL,
    timeoutMs: config.GEMINI_REQUEST_TIMEOUT_MS,
  });
}
