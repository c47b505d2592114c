import { InvalidJsonError } from '../../../src/http/errors';
import { MAX_JSON_DEPTH, parseStrictJson } from '../../../src/http/strict-json';

const parse = (text: string | Buffer) => parseStrictJson(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'));

describe('strict JSON bodies', () => {
  it('parses ordinary JSON', () => {
    expect(parse('{"prompt":"héllo","n":[1,2,{"a":null}]}')).toEqual({ prompt: 'héllo', n: [1, 2, { a: null }] });
  });

  it.each([
    ['duplicate keys', '{"a":1,"a":2}', /duplicate key "a"/],
    ['duplicate keys in a nested object', '{"a":{"b":1,"c":2,"b":3}}', /duplicate key "b"/],
    ['a __proto__ key', '{"__proto__":{"admin":true}}', /__proto__/],
    ['an integer beyond 2^53', '{"n":9007199254740993}', /beyond 2\^53/],
    ['a NUL character', '{"p":"a\\u0000b"}', /U\+0000/],
    ['a lone surrogate', '{"p":"\\ud800"}', /surrogate/],
    ['a lone surrogate in a key', '{"\\udc00":1}', /surrogate/],
    ['a non-finite number', '{"n":1e400}', /finite/],
    ['deep nesting', `${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`, /nesting deeper/],
    ['truncated JSON', '{"a":', /not valid JSON/],
  ])('refuses %s', (_name, text, message) => {
    expect(() => parse(text)).toThrow(InvalidJsonError);
    expect(() => parse(text)).toThrow(message);
  });

  it('refuses invalid UTF-8 instead of replacing it', () => {
    expect(() => parse(Buffer.from([0x7b, 0x22, 0x70, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).toThrow(/UTF-8/);
  });

  it('keeps keys that only look alike, and the same key in sibling objects', () => {
    expect(parse('{"a":{"x":1},"b":{"x":2},"A":3}')).toEqual({ a: { x: 1 }, b: { x: 2 }, A: 3 });
  });

  it('does not mistake a string containing braces or commas for structure', () => {
    expect(parse('{"a":"{\\"a\\":1,","b":"]"}')).toEqual({ a: '{"a":1,', b: ']' });
  });
});
