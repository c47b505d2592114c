import { backoffDelayMs, nextDelayMs, parseRetryAfterMs, resolveRetryPolicy } from '../../../src/client/retry';

describe('client retry policy', () => {
  const policy = resolveRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000 });

  it('draws each wait uniformly below an exponentially growing, capped ceiling (full jitter)', () => {
    const top = () => 0.999_999;
    expect([0, 1, 2, 3, 4, 5].map((i) => backoffDelayMs(i, policy, top))).toEqual([99, 199, 399, 799, 999, 999]);
    expect([0, 1, 2, 3].map((i) => backoffDelayMs(i, policy, () => 0))).toEqual([0, 0, 0, 0]);
    expect(backoffDelayMs(2, policy, () => 0.5)).toBe(200);
  });

  it('never waits less than Retry-After when honouring it, and ignores it when told to', () => {
    expect(nextDelayMs({ retryIndex: 0, policy, retryAfterMs: 3_000, random: () => 0.5 })).toBe(3_000);
    expect(nextDelayMs({ retryIndex: 3, policy, retryAfterMs: 0, random: () => 0.5 })).toBe(400);
    expect(nextDelayMs({ retryIndex: 0, policy: { ...policy, honorRetryAfter: false }, retryAfterMs: 3_000, random: () => 0.5 })).toBe(50);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const nowMs = Date.parse('2026-11-22T10:00:00Z');
    expect(parseRetryAfterMs('2', nowMs)).toBe(2_000);
    expect(parseRetryAfterMs('Sun, 22 Nov 2026 10:00:30 GMT', nowMs)).toBe(30_000);
    expect(parseRetryAfterMs('Sun, 22 Nov 2026 09:00:00 GMT', nowMs)).toBe(0);
    expect(parseRetryAfterMs('soon', nowMs)).toBeUndefined();
    expect(parseRetryAfterMs(null, nowMs)).toBeUndefined();
  });

  it('refuses a policy that could not make a first attempt', () => {
    expect(() => resolveRetryPolicy({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => resolveRetryPolicy({ deadlineMs: -1 })).toThrow(/deadlineMs/);
  });
});
