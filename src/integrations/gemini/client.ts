import { GoogleGenAI } from '@google/genai';
import { GeminiSafetyBlockError } from './errors';
import { storableText } from './text';

export interface GenerateRequest {
  model: string;
  prompt: string;
  system?: string;
  temperature?: number;
  maxOutputTokens?: number;
  /** Aborts the HTTP call: the activity's cancellation signal, so an attempt Temporal cancelled or timed out stops waiting for its answer. */
  signal?: AbortSignal;
}

export interface GenerateResponse {
  text: string;
  model: string;
  usage: { promptTokens: number; outputTokens: number; totalTokens: number };
  responseId?: string;
}

export interface InteractionRequest {
  model: string;
  prompt: string;
  system?: string;
  /** Aborts the create call (see GenerateRequest.signal). */
  signal?: AbortSignal;
}

/** A background interaction as Onceflow needs it: terminal or not, and its answer once done. */
export interface InteractionState {
  id: string;
  /** Gemini's status: in_progress, completed, failed, cancelled, incomplete, … */
  status: string;
  /** True once the status can no longer change. */
  terminal: boolean;
  model: string;
  text?: string;
  usage?: { promptTokens: number; outputTokens: number; totalTokens: number };
  error?: string;
}

/** The one way Onceflow reaches Gemini; activities get it injected. */
export interface GeminiClient {
  generate(request: GenerateRequest): Promise<GenerateResponse>;
  /** One paid call: creates a background interaction (`background: true`) and returns at once. */
  submitInteraction(request: InteractionRequest): Promise<InteractionState>;
  /** A free read of an interaction's state. */
  getInteraction(id: string, options?: { signal?: AbortSignal }): Promise<InteractionState>;
  /** Asks Gemini to stop a running background interaction; answers its state after the request. */
  cancelInteraction(id: string, options?: { signal?: AbortSignal }): Promise<InteractionState>;
}

const TERMINAL_INTERACTION_STATUSES = new Set(['completed', 'failed', 'cancelled', 'incomplete', 'budget_exceeded']);

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
          ...(request.signal ? { abortSignal: request.signal } : {}),
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
        text: storableText(response.text ?? ''),
        model: response.modelVersion ?? request.model,
        usage: { promptTokens, outputTokens, totalTokens: usage?.totalTokenCount ?? promptTokens + outputTokens },
        responseId: response.responseId,
      };
    },
    async submitInteraction(request) {
      const interaction = await ai.interactions.create(
        {
          model: request.model,
          input: request.prompt,
          ...(request.system ? { system_instruction: request.system } : {}),
          background: true,
        },
        // The interactions client retries 429/5xx/connection errors four times by
        // default: each retry could be another paid submission behind the
        // ledger's back. One HTTP call per activity attempt, like generate().
        { maxRetries: 0, timeout: options.timeoutMs, ...(request.signal ? { signal: request.signal } : {}) },
      );
      return interactionState(interaction, request.model);
    },
    async getInteraction(id, { signal } = {}) {
      // A read is free and idempotent; the SDK's own retries are harmless here.
      return interactionState(await ai.interactions.get(id, {}, { timeout: options.timeoutMs, ...(signal ? { signal } : {}) }), '');
    },
    async cancelInteraction(id, { signal } = {}) {
      // Stopping is idempotent at Gemini (a second cancel of the same id changes nothing): SDK retries are harmless.
      return interactionState(await ai.interactions.cancel(id, {}, { timeout: options.timeoutMs, ...(signal ? { signal } : {}) }), '');
    },
  };
}

function interactionState(
  interaction: { id: string; status: string; model?: string; output_text?: string; usage?: { total_input_tokens?: number; total_output_tokens?: number; total_tokens?: number }; errors?: { message?: string }[] },
  fallbackModel: string,
): InteractionState {
  const terminal = TERMINAL_INTERACTION_STATUSES.has(interaction.status);
  const promptTokens = interaction.usage?.total_input_tokens ?? 0;
  const outputTokens = interaction.usage?.total_output_tokens ?? 0;
  return {
    id: interaction.id,
    status: interaction.status,
    terminal,
    model: interaction.model ?? fallbackModel,
    ...(interaction.status === 'completed' ? { text: storableText(interaction.output_text ?? '') } : {}),
    ...(interaction.usage ? { usage: { promptTokens, outputTokens, totalTokens: interaction.usage.total_tokens ?? promptTokens + outputTokens } } : {}),
    ...(terminal && interaction.status !== 'completed'
      ? { error: storableText(interaction.errors?.map((e) => e.message).filter(Boolean).join('; ') || `interaction ended ${interaction.status}`) }
      : {}),
  };
}

