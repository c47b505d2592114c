import { Registry } from 'prom-client';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createLogger } from '../../src/observability/logger';
import { createRelayMetrics } from '../../src/outbox/metrics';
import { OutboxRelay, type OutboxRelayOptions } from '../../src/outbox/relay';
import { testInfra } from './infra';

/**
 * A started in-process relay on the run's PostgreSQL with test timings (poll
 * 100 ms, first retry 20 ms, delivery timeout 2 s), the development secret
 * key and its own metrics registry; any option can be overridden.
 */
export function startTestRelay(options: Pick<OutboxRelayOptions, 'pool'> & Partial<OutboxRelayOptions>): OutboxRelay {
  const relay = new OutboxRelay({
    connectionString: testInfra().databaseUrl,
    secretBox: secretBoxFromConfig({}),
    logger: createLogger({ service: 'test-relay', level: 'silent' }),
    metrics: createRelayMetrics(new Registry()),
    pollIntervalMs: 100,
    retryBaseMs: 20,
    deliveryTimeoutMs: 2_000,
    ...options,
  });
  relay.start();
  return relay;
}
