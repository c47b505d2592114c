import { BlockedAddressError } from '../../../src/outbox/address-policy';
import { categorize, decideDelivery } from '../../../src/outbox/delivery-policy';
import { WebhookTimeoutError } from '../../../src/outbox/webhook-client';

const errno = (code: string, message: string) => Object.assign(new Error(message), { code });
const young = { attempts: 1, ageMs: 1_000 };
const policy = { maxAttempts: 3, deadLetterAfterMs: 60_000, retryBaseMs: 100, retryCapMs: 1_000 };

describe('the relay’s delivery policy (pure)', () => {
  it('delivers on any 2xx', () => {
    for (const status of [200, 201, 204, 299]) {
      expect(decideDelivery({ answered: true, status }, young, policy)).toEqual({ verdict: 'delivered', delayMs: 0, error: null, reason: 'delivered' });
    }
  });

  it('pauses the subscription on 410 Gone, whatever the attempt count', () => {
    expect(decideDelivery({ answered: true, status: 410 }, { attempts: 1, ageMs: 0 }, policy)).toMatchObject({ verdict: 'gone', reason: 'gone' });
  });

  it('retries other statuses and 3xx (no redirects), with the full-jitter delay for the attempt', () => {
    expect(decideDelivery({ answered: true, status: 503 }, { attempts: 3, ageMs: 0 }, policy, () => 0.5)).toEqual({
      verdict: 'retry', delayMs: 200, error: 'status 503', reason: 'http_503',
    });
    expect(decideDelivery({ answered: true, status: 302 }, young, policy, () => 0.5)).toMatchObject({ verdict: 'retry', delayMs: 50, error: 'status 302' });
    expect(decideDelivery({ answered: true, status: 500 }, { attempts: 30, ageMs: 0 }, policy, () => 0.999)).toMatchObject({ delayMs: 999 });
  });

  it('dead-letters only once both the attempts and the age are reached', () => {
    const fail = { answered: true, status: 500 } as const;
    expect(decideDelivery(fail, { attempts: 3, ageMs: 59_999 }, policy).verdict).toBe('retry');
    expect(decideDelivery(fail, { attempts: 2, ageMs: 600_000 }, policy).verdict).toBe('retry');
    expect(decideDelivery(fail, { attempts: 3, ageMs: 60_000 }, policy)).toEqual({ verdict: 'dead', delayMs: 0, error: 'status 500', reason: 'attempts' });
  });

  it('stores a category for a transport failure, never the address or port in the error’s message', () => {
    const cases: [unknown, string, string][] = [
      [new WebhookTimeoutError(1_000, true), 'timeout', 'timeout'],
      [new WebhookTimeoutError(1_000, false), 'timeout (not sent: no free connection to the subscriber)', 'timeout_not_sent'],
      [errno('ECONNREFUSED', 'connect ECONNREFUSED 10.1.2.3:5432'), 'connection refused', 'refused'],
      [errno('ENOTFOUND', 'getaddrinfo ENOTFOUND internal.corp'), 'host not found', 'dns'],
      [errno('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 10.0.0.7"), 'TLS error', 'tls'],
      [errno('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), 'TLS error', 'tls'],
      [errno('UND_ERR_SOCKET', 'other side closed 172.17.0.2:7233'), 'connection reset', 'reset'],
      [new BlockedAddressError('rebind.example', '127.0.0.1', 'loopback'), 'refused by policy: loopback', 'blocked_address'],
      [new Error('something at 192.168.1.1:80'), 'network error', 'network'],
    ];
    for (const [error, category, reason] of cases) {
      const decision = decideDelivery({ answered: false, error }, young, policy);
      expect({ error: decision.error, reason: decision.reason }).toEqual({ error: category, reason });
      expect(decision.error).not.toMatch(/\d+\.\d+\.\d+\.\d+|:\d{2,5}|internal\.corp|rebind/);
    }
    expect(categorize({ cause: { code: 'ECONNREFUSED' } })).toEqual({ error: 'connection refused', reason: 'refused' });
  });
});
