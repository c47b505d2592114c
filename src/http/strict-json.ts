import { InvalidJsonError } from './errors';

/** Deepest nesting accepted; deeper bodies are refused before they reach PostgreSQL's stack limit. */
export const MAX_JSON_DEPTH = 32;

const decoder = new TextDecoder('utf-8', { fatal: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Parses a request body as strict JSON, refusing what JSON.parse silently
 * accepts or changes and what jsonb cannot store: invalid UTF-8, duplicate
 * keys (`{"a":1,"a":2}` would become `{"a":2}`), `__proto__` keys, integers
 * beyond 2^53 (9007199254740993 would become …992), non-finite numbers, NUL
 * characters and lone surrogates, and nesting deeper than MAX_JSON_DEPTH.
 *
 * Written by hand because no well-kept parser rejects duplicate keys; the
 * scan below only tracks structure and keys, JSON.parse still does the parsing.
 */
export function parseStrictJson(bytes: Buffer): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new InvalidJsonError('the body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidJsonError(`the body is not valid JSON: ${(error as Error).message}`);
  }
  scanStructure(text);
  checkValues(value, 0);
  return value;
}

/** Walks the JSON text (already known valid) for nesting depth and duplicate or forbidden keys. */
function scanStructure(text: string): void {
  const keySets: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const top = keySets[keySets.length - 1];
      if (top && expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (key === '__proto__') throw new InvalidJsonError('the key "__proto__" is not allowed');
        if (top.has(key)) throw new InvalidJsonError(`duplicate key "${key}"`);
        top.add(key);
        expectKey = false;
      }
      i = end;
    } else if (ch === '{' || ch === '[') {
      if (keySets.length >= MAX_JSON_DEPTH) throw new InvalidJsonError(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
      keySets.push(ch === '{' ? new Set() : null);
      expectKey = ch === '{';
    } else if (ch === '}' || ch === ']') {
      keySets.pop();
      expectKey = false;
    } else if (ch === ',') {
      expectKey = keySets[keySets.length - 1] instanceof Set;
    }
  }
}

function checkValues(value: unknown, depth: number): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidJsonError('numbers must be finite');
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new InvalidJsonError(`the integer ${value} is beyond 2^53 and would lose precision; send it as a string`);
    }
  } else if (typeof value === 'string') {
    checkString(value);
  } else if (Array.isArray(value)) {
    for (const item of value) checkValues(item, depth + 1);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      checkString(key);
      checkValues(item, depth + 1);
    }
  }
}

function checkString(value: string): void {
  if (value.includes('\u0000')) throw new InvalidJsonError('strings must not contain U+0000');
  if (LONE_SURROGATE.test(value)) throw new InvalidJsonError('strings must not contain lone UTF-16 surrogates');
}
