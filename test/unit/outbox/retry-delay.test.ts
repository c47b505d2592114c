import { retryDelayMs } from '../../../src/outbox/relay';

describe('relay retry delays (exponential backoff, full jitter, capped)', () => {
  const baseMs = 1_000;
  const capMs = 3_600_000;
  const samples = (attempt: number) => Array.from({ length: 2_000 }, () => retryDelayMs(attempt, baseMs, capMs));

  it('stays between 0 and base·2^(attempt−1) for each attempt', () => {
    const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
    ceilings.forEach((ceiling, index) => {
      for (const delay of samples(index + 1)) {
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    });
  });

  it('never exceeds the cap however many attempts, and keeps using the whole range up to it', () => {
    const late = samples(40);
    expect(Math.max(...late)).toBeLessThanOrEqual(capMs);
    // Full jitter: with 2,000 draws some land in the top and the bottom tenth of [0, cap].
    expect(late.some((d) => d > capMs * 0.9)).toBe(true);
    expect(late.some((d) => d < capMs * 0.1)).toBe(true);
  });

  it('spreads the retries of many failures at the same attempt instead of retrying them in step', () => {
    expect(new Set(samples(10)).size).toBeGreaterThan(1_000);
  });
});
