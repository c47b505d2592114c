import { createFinishedCache } from '../../../src/operations/finished-cache';
import type { OperationState } from '../../../src/operations/repository';
import { OperationStatus } from '../../../src/operations/status';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const scope = { tenantId: 'acme', operationType: 'generate-content', idempotencyKey: 'key-1' };

function row(overrides: Partial<OperationState> = {}): OperationState {
  return {
    ...scope,
    operationId: 'op-1',
    fingerprint: 'f',
    fingerprintVersion: 2,
    workflowId: 'wf',
    runId: 'run',
    previousRunId: null,
    status: OperationStatus.Succeeded,
    result: { text: 'hello' },
    error: null,
    errorStatus: null,
    released: false,
    firstSeenMs: NOW - 1_000,
    createdAt: new Date(NOW - 1_000),
    updatedAt: new Date(NOW - 500),
    completedAt: new Date(NOW - 500),
    expiresAt: new Date(NOW + 3_600_000),
    ...overrides,
  };
}

describe('the finished-operations cache', () => {
  it('answers a key with the final row it was given, and only that tenant and type', () => {
    const cache = createFinishedCache({ maxBytes: 1 << 20, ttlMs: 60_000 });
    cache.remember(row(), NOW);
    expect(cache.get(scope, NOW)?.result).toEqual({ text: 'hello' });
    expect(cache.get({ ...scope, tenantId: 'other' }, NOW)).toBeUndefined();
    expect(cache.get({ ...scope, operationType: 'generate-report' }, NOW)).toBeUndefined();
    expect(Object.isFrozen(cache.get(scope, NOW))).toBe(true);
  });

  it('keeps no unfinished row, no released failure and no expired row', () => {
    const cache = createFinishedCache({ maxBytes: 1 << 20, ttlMs: 60_000 });
    for (const status of [OperationStatus.Reserved, OperationStatus.Running]) {
      cache.remember(row({ status }), NOW);
      expect(cache.get(scope, NOW)).toBeUndefined();
    }
    cache.remember(row({ status: OperationStatus.Failed, released: true, error: { type: 'x', title: 't', retryable: true } as never }), NOW);
    expect(cache.get(scope, NOW)).toBeUndefined();
    cache.remember(row({ expiresAt: new Date(NOW) }), NOW);
    expect(cache.get(scope, NOW)).toBeUndefined();
  });

  it('stops answering when the key expires, by the caller clock', () => {
    const cache = createFinishedCache({ maxBytes: 1 << 20, ttlMs: 60_000 });
    cache.remember(row({ expiresAt: new Date(NOW + 10_000) }), NOW);
    expect(cache.get(scope, NOW + 9_999)).toBeDefined();
    expect(cache.get(scope, NOW + 10_000)).toBeUndefined();
  });

  it('does not keep a result larger than an entry may be, and evicts the least recent past its bytes', () => {
    const cache = createFinishedCache({ maxBytes: 4 * 1024, ttlMs: 60_000 });
    cache.remember(row({ result: { text: 'x'.repeat(300 * 1024) } }), NOW);
    expect(cache.get(scope, NOW)).toBeUndefined();
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    for (const idempotencyKey of keys) cache.remember(row({ idempotencyKey, result: { text: 'y'.repeat(500) } }), NOW);
    const kept = keys.filter((idempotencyKey) => cache.get({ ...scope, idempotencyKey }, NOW));
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(keys.length);
    expect(kept).toContain('key-19');
  });

  it('is off with no bytes', () => {
    const cache = createFinishedCache({ maxBytes: 0, ttlMs: 60_000 });
    cache.remember(row(), NOW);
    expect(cache.get(scope, NOW)).toBeUndefined();
  });
});
