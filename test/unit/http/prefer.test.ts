import { parsePreferWait } from '../../../src/http/prefer';

describe('Prefer: wait=N (RFC 7240)', () => {
  it('reads wait among other preferences and caps it', () => {
    expect(parsePreferWait('wait=10', 30)).toBe(10);
    expect(parsePreferWait('respond-async, wait=5', 30)).toBe(5);
    expect(parsePreferWait('WAIT = "7"', 30)).toBe(7);
    expect(parsePreferWait('wait=600', 30)).toBe(30);
    expect(parsePreferWait(['return=minimal', 'wait=3'], 30)).toBe(3);
  });

  it('ignores an absent or unusable preference', () => {
    for (const header of [undefined, '', 'wait=', 'wait=-1', 'wait=abc', 'wait=1.5', 'respond-async']) {
      expect(parsePreferWait(header, 30)).toBe(0);
    }
  });
});
