import { fullJitterBackoffMs } from '../common/backoff';
import { BlockedAddressError } from './address-policy';
import { WebhookTimeoutError } from './webhook-client';

/** What one POST to a subscriber came to: an answer with its status, or an error before one. */
export type AttemptResult = { answered: true; status: number } | { answered: false; error: unknown };

export const Verdict = {
  Delivered: 'delivered',
  Retry: 'retry',
  Dead: 'dead',
  /** 410 Gone: the subscription is paused; this and later deliveries wait for a resume or a replay. */
  Gone: 'gone',
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export interface DeliveryPolicy {
  /** Attempts before a delivery may be dead-lettered. Default 12. */
  maxAttempts?: number;
  /** ...and the event's age it must also have reached, in ms. Default 24 hours. */
  deadLetterAfterMs?: number;
  /** Ceiling of the first retry delay; doubles each attempt, full jitter. Default 1000 ms. */
  retryBaseMs?: number;
  /** Longest retry delay. Default 1 hour. */
  retryCapMs?: number;
}

export interface Decision {
  verdict: Verdict;
  /** For `retry`: the wait before the next attempt. 0 otherwise. */
  delayMs: number;
  /**
   * Stored as `last_error` and shown to the tenant (dead-letter list): a
   * category only (timeout, refused, TLS, status N), never an address or a
   * port, which would let a tenant map the network behind the relay. The
   * full error goes to the relay's log. Null when delivered.
   */
  error: string | null;
  /** Metric label: delivered, gone, attempts, http_<status>, or the category's label. */
  reason: string;
}

/** A failure before any answer, as a tenant may see it and as a metric label. */
export interface FailureCategory {
  error: string;
  reason: string;
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/** Names a transport failure by kind, dropping its message (which carries the address and port). */
export function categorize(error: unknown): FailureCategory {
  if (error instanceof WebhookTimeoutError) {
    return error.sent ? { error: 'timeout', reason: 'timeout' } : { error: 'timeout (not sent: no free connection to the subscriber)', reason: 'timeout_not_sent' };
  }
  if (error instanceof BlockedAddressError) return { error: `refused by policy: ${error.rule}`, reason: 'blocked_address' };
  const code = String((error as { code?: unknown } | null)?.code ?? '');
  const causeCode = String((error as { cause?: { code?: unknown } } | null)?.cause?.code ?? '');
  const codes = [code, causeCode];
  if (codes.includes('ECONNREFUSED')) return { error: 'connection refused', reason: 'refused' };
  if (codes.some((c) => c === 'ENOTFOUND' || c === 'EAI_AGAIN')) return { error: 'host not found', reason: 'dns' };
  if (codes.some((c) => TLS_CODES.test(c))) return { error: 'TLS error', reason: 'tls' };
  if (codes.some((c) => c === 'ECONNRESET' || c === 'UND_ERR_SOCKET' || c === 'EPIPE')) return { error: 'connection reset', reason: 'reset' };
  if (codes.some((c) => c === 'ETIMEDOUT' || c === 'UND_ERR_CONNECT_TIMEOUT')) return { error: 'timeout', reason: 'timeout' };
  if (codes.some((c) => c === 'EHOSTUNREACH' || c === 'ENETUNREACH')) return { error: 'host unreachable', reason: 'unreachable' };
  return { error: 'network error', reason: 'network' };
}

/**
 * The relay's whole delivery policy, pure: from what an attempt came to, the
 * delivery's attempt count and its event's age, to the verdict and the delay
 * before the next attempt. No I/O, so every branch is unit-tested.
 *
 * A failing delivery is dead-lettered only once it has had `maxAttempts`
 * attempts AND its event is at least `deadLetterAfterMs` old, so a subscriber
 * that is down for hours loses nothing even when the jittered delays happen
 * to be short.
 */
export function decideDelivery(
  result: AttemptResult,
  delivery: { attempts: number; ageMs: number },
  policy: DeliveryPolicy = {},
  random: () => number = Math.random,
): Decision {
  if (result.answered && result.status >= 200 && result.status < 300) {
    return { verdict: Verdict.Delivered, delayMs: 0, error: null, reason: 'delivered' };
  }
  // 410 Gone: the subscriber asks us to stop. Nothing is dropped: the delivery
  // and every later one wait with the subscription paused (see enqueue.ts).
  if (result.answered && result.status === 410) {
    return { verdict: Verdict.Gone, delayMs: 0, error: 'status 410: subscription paused', reason: 'gone' };
  }
  const failure: FailureCategory = result.answered ? { error: `status ${result.status}`, reason: `http_${result.status}` } : categorize(result.error);
  if (delivery.attempts >= (policy.maxAttempts ?? 12) && delivery.ageMs >= (policy.deadLetterAfterMs ?? 86_400_000)) {
    return { verdict: Verdict.Dead, delayMs: 0, error: failure.error, reason: 'attempts' };
  }
  const delayMs = fullJitterBackoffMs({
    retryIndex: delivery.attempts - 1,
    baseMs: policy.retryBaseMs ?? 1_000,
    capMs: policy.retryCapMs ?? 3_600_000,
    random,
  });
  return { verdict: Verdict.Retry, delayMs, error: failure.error, reason: failure.reason };
}
