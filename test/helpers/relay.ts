import { Registry } from 'prom-client';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createLogger } from '../../src/observability/logger';
import { AddressPolicy } from '../../src/outbox/address-policy';
import { createRelayMetrics } from '../../src/outbox/metrics';
import { OutboxRelay, type OutboxRelayOptions } from '../../src/outbox/relay';
import { testInfra } from './infra';

/**
 * A started in-process relay on the run's PostgreSQL with test timings (poll
 * 100 ms, first retry 20 ms, delivery timeout 2 s), the development secret
 * key, its own metrics registry, and the loopback subscribers of the tests
 * allowlisted (WEBHOOK_ALLOWED_HOSTS); any option can be overridden.
 */
export function startTestRelay(options: Pick<OutboxRelayOptions, 'pool'> & Partial<OutboxRelayOptions>): OutboxRelay {
  const relay = new OutboxRelay({
    connectionString: testInfra().databaseUrl,
    secretBox: secretBoxFromConfig({}),
    logger: createLogger({ service: 'test-relay', level: 'silent' }),
    metrics: createRelayMetrics(new Registry()),
    addressPolicy: new AddressPolicy({ allowedHosts: TEST_WEBHOOK_ALLOWED_HOSTS }),
    pollIntervalMs: 100,
    retryBaseMs: 20,
    deliveryTimeoutMs: 2_000,
    ...options,
  });
  relay.start();
  return relay;
}

/** The tests' subscribers listen on loopback: the allowlist the tests' API and relays use. */
export const TEST_WEBHOOK_ALLOWED_HOSTS = ['127.0.0.1', 'localhost', '::1'];
