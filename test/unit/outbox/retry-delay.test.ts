import { fullJitterBackoffMs } from '../../../src/common/backoff';

describe('full-jitter backoff (exponential, capped), shared by the relay and the client', () => {
  const baseMs = 1_000;
  const capMs = 3_600_000;
  const samples = (retryIndex: number) => Array.from({ length: 2_000 }, () => fullJitterBackoffMs({ retryIndex, baseMs, capMs }));

  it('stays between 0 and base·2^retryIndex for each retry', () => {
    const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
    ceilings.forEach((ceiling, index) => {
      for (const delay of samples(index)) {
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(ceiling);
      }
    });
  });

  it('never exceeds the cap however many attempts, and keeps using the whole range up to it', () => {
    const late = samples(2_000);
    expect(Math.max(...late)).toBeLessThanOrEqual(capMs);
    // Full jitter: with 2,000 draws some land in the top and the bottom tenth of [0, cap].
    expect(late.some((d) => d > capMs * 0.9)).toBe(true);
    expect(late.some((d) => d < capMs * 0.1)).toBe(true);
  });

  it('spreads the retries of many failures at the same attempt instead of retrying them in step', () => {
    expect(new Set(samples(9)).size).toBeGreaterThan(1_000);
  });

  it('maps the random draw linearly onto [0, ceiling)', () => {
    expect(fullJitterBackoffMs({ retryIndex: 2, baseMs: 100, capMs: 1_000, random: () => 0.5 })).toBe(200);
    expect(fullJitterBackoffMs({ retryIndex: 20, baseMs: 100, capMs: 1_000, random: () => 0.999 })).toBe(999);
    expect(fullJitterBackoffMs({ retryIndex: 0, baseMs: 100, capMs: 1_000, random: () => 0 })).toBe(0);
  });
});
