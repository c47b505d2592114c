import { fingerprint, nonEssentialPathsAt } from '../../../src/idempotency/fingerprint';
import { parseStrictJson } from '../../../src/http/strict-json';

/** Fingerprints of request bodies as the facade sees them: parsed from the bytes on the wire. */
const fp = (wire: string, nonEssential: string[] = ['metadata']) => fingerprint(parseStrictJson(Buffer.from(wire)), nonEssential);

describe('payload fingerprint', () => {
  it('does not depend on key order', () => {
    expect(fp('{"prompt":"a","temperature":0.5}')).toBe(fp('{"temperature":0.5,"prompt":"a"}'));
  });

  it('does not depend on white space', () => {
    expect(fp('{"prompt":"a","temperature":1}')).toBe(fp('{\n  "prompt" : "a" ,\t"temperature": 1\n}'));
  });

  it('does not tell 1 from 1.0 or 1e0', () => {
    expect(fp('{"prompt":"a","temperature":1}')).toBe(fp('{"prompt":"a","temperature":1.0}'));
    expect(fp('{"prompt":"a","temperature":1}')).toBe(fp('{"prompt":"a","temperature":1e0}'));
  });

  it('ignores non-essential fields, nested ones included', () => {
    expect(fp('{"prompt":"a","metadata":{"traceId":"1"}}')).toBe(fp('{"prompt":"a","metadata":{"traceId":"2"}}'));
    expect(fp('{"prompt":"a","metadata":{"traceId":"1","user":"u"}}', ['metadata.traceId'])).toBe(
      fp('{"prompt":"a","metadata":{"traceId":"2","user":"u"}}', ['metadata.traceId']),
    );
    expect(fp('{"prompt":"a","metadata":{"user":"u"}}', ['metadata.traceId'])).not.toBe(
      fp('{"prompt":"a","metadata":{"user":"v"}}', ['metadata.traceId']),
    );
  });

  it('changes when an essential field changes', () => {
    expect(fp('{"prompt":"a"}')).not.toBe(fp('{"prompt":"b"}'));
    expect(fp('{"prompt":"a","temperature":1}')).not.toBe(fp('{"prompt":"a","temperature":1.5}'));
    expect(fp('{"prompt":"a"}')).not.toBe(fp('{"prompt":"a","model":"gemini-2.5-pro"}'));
  });

  it('is a SHA-256 over RFC 8785 canonical JSON (known vector)', () => {
    // printf '%s' '{"a":1,"b":"x"}' | sha256sum
    expect(fingerprint({ b: 'x', a: 1.0 }, [])).toBe('ecf9e98ec0641e23113ff3ce8bdc78d0ddd249886517fd4a7f68cc83d4e65667');
  });
});

describe('fingerprint versions and dated non-essential rules', () => {
  const rules = ['metadata', { path: 'tags', since: 2 }, { path: 'legacyNote', since: 1, until: 2 }] as const;

  it('applies a rule only to the versions it covers', () => {
    expect(nonEssentialPathsAt(rules, 1)).toEqual(['metadata', 'legacyNote']);
    expect(nonEssentialPathsAt(rules, 2)).toEqual(['metadata', 'tags']);
  });

  it('compares a key reserved at version 1 with version 1\'s rules after the type changed at version 2', () => {
    const first = { prompt: 'a', tags: ['x'], legacyNote: 'n1' };
    const repeat = { prompt: 'a', tags: ['x'], legacyNote: 'n2' };
    expect(fingerprint(repeat, rules, 1)).toBe(fingerprint(first, rules, 1));
    expect(fingerprint({ ...repeat, tags: ['y'] }, rules, 1)).not.toBe(fingerprint(first, rules, 1));
  });

  it('refuses a version it does not know rather than guessing', () => {
    expect(() => fingerprint({ prompt: 'a' }, rules, 99)).toThrow(/99/);
  });
});
