import { checkIdempotencyKey, rawHeaderValues } from '../../../src/idempotency/key';
import { operationWorkflowId } from '../../../src/idempotency/workflow-id';

describe('Idempotency-Key rules', () => {
  it('accepts 1 to 255 printable ASCII characters, spaces and symbols included', () => {
    for (const key of ['a', 'k'.repeat(255), ' spaced key ', '~!@#$%^&*()/\\"\'', '9b6f0c2e-1d7a-4b8e-9c3f-2a5d6e7f8a9b']) {
      expect(checkIdempotencyKey([key])).toEqual({ ok: true, key });
    }
  });

  it('calls an absent or empty key missing', () => {
    expect(checkIdempotencyKey([])).toEqual({ ok: false, reason: 'missing' });
    expect(checkIdempotencyKey([''])).toEqual({ ok: false, reason: 'missing' });
  });

  it('refuses 256+ characters, control and non-ASCII characters, and two headers', () => {
    for (const values of [['k'.repeat(256)], ['k'.repeat(10_000)], ['a\tb'], ['a\u007fb'], ['clé'], ['a', 'a']]) {
      expect(checkIdempotencyKey(values)).toMatchObject({ ok: false, reason: 'invalid' });
    }
  });

  it('reads every occurrence of a header from the raw list, case-insensitively', () => {
    expect(rawHeaderValues(['Host', 'x', 'Idempotency-Key', 'a', 'idempotency-key', 'b'], 'idempotency-key')).toEqual(['a', 'b']);
  });
});

describe('workflow ID of (tenant, type, key)', () => {
  it('is deterministic and separates tenants, types and keys', () => {
    const id = operationWorkflowId('acme', 'generate-content', 'key-1');
    expect(operationWorkflowId('acme', 'generate-content', 'key-1')).toBe(id);
    expect(operationWorkflowId('other', 'generate-content', 'key-1')).not.toBe(id);
    expect(operationWorkflowId('acme', 'generate-report', 'key-1')).not.toBe(id);
    expect(operationWorkflowId('acme', 'generate-content', 'key-2')).not.toBe(id);
  });

  it('never contains the raw key, whatever characters it has', () => {
    const key = '../../ spaces/and/slashes?' + 'x'.repeat(200);
    const id = operationWorkflowId('acme', 'generate-content', key);
    expect(id).toMatch(/^onceflow\/acme\/generate-content\/[0-9a-f]+$/);
    expect(id.length).toBeLessThan(120);
  });
});
