import { payloadDifferences } from '../../../src/idempotency/differences';

describe('payloadDifferences', () => {
  it('names added, removed and changed members as RFC 6901 pointers, in key order', () => {
    expect(payloadDifferences({ a: 1, b: 2, c: { d: 1 } }, { a: 1, c: { d: 2 }, e: null })).toEqual(['/b', '/c/d', '/e']);
  });

  it('treats canonically equal values as the same (1 and 1.0, key order)', () => {
    expect(payloadDifferences({ n: 1, o: { x: 1, y: 2 } }, { n: 1.0, o: { y: 2, x: 1 } })).toEqual([]);
  });

  it('escapes ~ and / in member names', () => {
    expect(payloadDifferences({ 'a/b': 1, 'c~d': 1 }, { 'a/b': 2, 'c~d': 2 })).toEqual(['/a~1b', '/c~0d']);
  });

  it('walks arrays by index and names added elements', () => {
    expect(payloadDifferences({ list: [1, 2] }, { list: [1, 3, 4] })).toEqual(['/list/1', '/list/2']);
  });

  it('reports a difference below the depth bound at its ancestor at that depth', () => {
    const deep = (leaf: number) => ({ a: { b: { c: { d: { e: leaf } } } } });
    expect(payloadDifferences(deep(1), deep(2), { maxDepth: 2 })).toEqual(['/a/b']);
  });

  it('never returns values, and stops at the pointer cap', () => {
    const many = (v: string) => Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${String(i).padStart(2, '0')}`, v]));
    const pointers = payloadDifferences(many('secret-1'), many('secret-2'), { maxPointers: 50 });
    expect(pointers).toHaveLength(50);
    expect(pointers.join()).not.toContain('secret');
  });

  it('answers the root when the bodies differ in kind', () => {
    expect(payloadDifferences({ a: 1 }, [1])).toEqual(['']);
  });
});
