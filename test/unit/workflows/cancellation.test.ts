import { canceledOutcome, paidUsage } from '../../../workflows/cancellation';

/** What a canceled operation bills: only the calls Gemini answered before the cancel. */
describe('the bill of a canceled operation', () => {
  it('sums the tokens of the answered calls on the model of the last one, and ignores failed and abandoned calls', () => {
    expect(
      paidUsage(
        [
          { model: 'gemini-2.5-flash', outcome: 'rate_limited', durationMs: 40, error: '429' },
          { model: 'gemini-2.5-flash', outcome: 'succeeded', durationMs: 900, promptTokens: 12, outputTokens: 30 },
          { model: 'gemini-2.5-flash-lite', outcome: 'succeeded', durationMs: 700, promptTokens: 12, outputTokens: 8 },
          { model: 'gemini-2.5-flash-lite', outcome: 'unavailable', durationMs: 5_000, error: 'This operation was aborted' },
        ],
        'unused',
      ),
    ).toEqual({ model: 'gemini-2.5-flash-lite', promptTokens: 24, outputTokens: 38, totalTokens: 62 });
  });

  it('bills zero when nothing was answered: on the model of the last call, else the fallback', () => {
    expect(paidUsage([{ model: 'gemini-2.5-flash', outcome: 'unavailable', durationMs: 12_000, error: 'aborted' }], 'gemini-x'))
      .toEqual({ model: 'gemini-2.5-flash', promptTokens: 0, outputTokens: 0, totalTokens: 0 });
    expect(paidUsage([], 'gemini-x')).toEqual({ model: 'gemini-x', promptTokens: 0, outputTokens: 0, totalTokens: 0 });
  });

  it('does not bill a submission whose tokens Gemini has not reported', () => {
    expect(paidUsage([{ model: 'gemini-2.5-pro', outcome: 'succeeded', durationMs: 300 }], 'gemini-2.5-pro').totalTokens).toBe(0);
  });

  it('ends as operation-canceled, never retryable, carrying the attempts', () => {
    const attempts = [{ model: 'm', outcome: 'unavailable' as const, durationMs: 1 }];
    expect(canceledOutcome(attempts, 'canceled on request', 'm')).toEqual({
      outcome: 'canceled',
      error: { type: 'operation-canceled', detail: 'canceled on request', retryable: false, attempts },
      usage: { model: 'm', promptTokens: 0, outputTokens: 0, totalTokens: 0 },
    });
  });
});
