/**
 * Gemini's completion webhooks follow the Standard Webhooks scheme
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`
 * over `id.timestamp.body`, secret `whsec_<base64>`), so both ends use the
 * `standardwebhooks` library: the offline model server signs, the facade verifies.
 */
import { Webhook } from 'standardwebhooks';
import type { Config } from '../../config';
import { AppError } from '../../errors';

/**
 * The offline model server's signing secret, used when GEMINI_WEBHOOK_SECRET is
 * unset. Public by design: it only authenticates the offline server of a local run.
 */
export const DEV_GEMINI_WEBHOOK_SECRET = `whsec_${Buffer.from('onceflow-offline-gemini-webhooks!').toString('base64')}`;

/** Event types the interaction webhooks carry (subset Onceflow acts on). */
export const INTERACTION_EVENT_TYPES = ['interaction.completed', 'interaction.failed', 'interaction.cancelled'] as const;

/** The body of an interaction webhook: `data.id` names the interaction. */
export interface InteractionWebhookEvent {
  type: string;
  timestamp: string;
  data: { id: string; status?: string };
}

/**
 * The secret completion webhooks are verified with. In production an unset
 * GEMINI_WEBHOOK_SECRET yields undefined: every delivery is refused (401) and
 * reports complete by polling, rather than trusting a secret printed in the source.
 */
export function geminiWebhookSecretFromConfig(config: Pick<Config, 'GEMINI_WEBHOOK_SECRET' | 'NODE_ENV'>): string | undefined {
  if (config.GEMINI_WEBHOOK_SECRET) return config.GEMINI_WEBHOOK_SECRET;
  return config.NODE_ENV === 'production' ? undefined : DEV_GEMINI_WEBHOOK_SECRET;
}

/** Signs a body the way Gemini does; the offline server's sender. */
export function signGeminiWebhook(secret: string, options: { id: string; at: Date; body: string }): Record<string, string> {
  return {
    'webhook-id': options.id,
    'webhook-timestamp': String(Math.floor(options.at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(options.id, options.at, options.body),
  };
}

/** Thrown when a delivery's signature, timestamp or shape is wrong. */
export class GeminiWebhookVerificationError extends AppError {
  override readonly name = 'GeminiWebhookVerificationError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { context: {}, cause: options?.cause });
  }
}

/**
 * Verifies signature and timestamp (5-minute tolerance, the library's) over
 * the raw bytes, then the shape. Returns the event and its `webhook-id`.
 */
export function verifyGeminiWebhook(
  secret: string,
  rawBody: Buffer,
  headers: Record<string, string | string[] | undefined>,
): { webhookId: string; event: InteractionWebhookEvent } {
  const pick = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const webhookId = pick('webhook-id');
  const timestamp = pick('webhook-timestamp');
  const signature = pick('webhook-signature');
  if (!webhookId || !timestamp || !signature) {
    throw new GeminiWebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature header');
  }
  let event: unknown;
  try {
    event = new Webhook(secret).verify(rawBody.toString('utf8'), {
      'webhook-id': webhookId,
      'webhook-timestamp': timestamp,
      'webhook-signature': signature,
    });
  } catch (error) {
    throw new GeminiWebhookVerificationError(`signature verification failed: ${(error as Error).message}`, { cause: error });
  }
  const candidate = event as Partial<InteractionWebhookEvent> | null;
  if (!candidate || typeof candidate.type !== 'string' || typeof candidate.data?.id !== 'string') {
    throw new GeminiWebhookVerificationError('signed body is not an interaction event ({type, data: {id}})');
  }
  return { webhookId, event: candidate as InteractionWebhookEvent };
}
