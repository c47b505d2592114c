import { GoogleGenAI } from '@google/genai';
import { GeminiSafetyBlockError } from './errors';

export interface GenerateRequest {
  model: string;
  prompt: string;
  system?: string;
  temperature?: number;
  maxOutputTokens?: number;
}

export interface GenerateResponse {
  text: string;
  model: string;
  usage: { promptTokens: number; outputTokens: number; totalTokens: number };
  responseId?: string;
}

/** The one way Onceflow reaches Gemini; activities get it injected. */
export interface GeminiClient {
  generate(request: GenerateRequest): Promise<GenerateResponse>;
}

export interface CreateGeminiClientOptions {
  /** GEMINI_API_KEY; the offline server accepts any key. */
  apiKey: string;
  /** GEMINI_BASE_URL: a proxy or the offline server; default Google's endpoint. */
  baseUrl?: string;
  /** Per-call timeout, so a hung call fails and Temporal retries it. */
  timeoutMs: number;
}

const SAFETY_REASONS = new Set(['SAFETY', 'PROHIBITED_CONTENT', 'BLOCKLIST', 'SPII', 'IMAGE_SAFETY']);

export function createGeminiClient(options: CreateGeminiClientOptions): GeminiClient {
  const ai = new GoogleGenAI({
    apiKey: options.apiKey,
    // No retryOptions: the SDK makes exactly one HTTP call per invocation, so
    // every paid call is one Temporal activity attempt we record and count.
    httpOptions: { ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}), timeout: options.timeoutMs },
  });
  return {
    async generate(request) {
      const response = await ai.models.generateContent({
        model: request.model,
        contents: request.prompt,
        config: {
          ...(request.system ? { systemInstruction: request.system } : {}),
          ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
          ...(request.maxOutputTokens !== undefined ? { maxOutputTokens: request.maxOutputTokens } : {}),
        },
      });
      const blockReason = response.promptFeedback?.blockReason;
      if (blockReason) throw new GeminiSafetyBlockError(`prompt blocked (${blockReason})`);
      const finishReason = response.candidates?.[0]?.finishReason;
      if (finishReason && SAFETY_REASONS.has(finishReason)) throw new GeminiSafetyBlockError(`answer blocked (${finishReason})`);
      const usage = response.usageMetadata;
      const promptTokens = usage?.promptTokenCount ?? 0;
      const outputTokens = usage?.candidatesTokenCount ?? 0;
      return {
        text: response.text ?? '',
        model: response.modelVersion ?? request.model,
        usage: { promptTokens, outputTokens, totalTokens: usage?.totalTokenCount ?? promptTokens + outputTokens },
        responseId: response.responseId,
      };
    },
  };
}
