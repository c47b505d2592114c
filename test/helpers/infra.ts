/** What global-setup started, handed to test files through the environment. */
export interface TestInfra {
  databaseUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  /** The dev server's Web UI (the UI screenshot test reads it). */
  temporalUiUrl: string;
  temporalBinary: string | undefined;
  workflowBundlePath: string;
  stateDir: string;
}

export const TEST_INFRA_ENV = 'ONCEFLOW_TEST_INFRA';

export function testInfra(): TestInfra {
  const raw = process.env[TEST_INFRA_ENV];
  if (!raw) throw new Error('integration test run without global-setup (run through jest)');
  return JSON.parse(raw) as TestInfra;
}

/** What global-teardown stops (handed over on globalThis): the keepers of global-setup's servers. */
export interface TestStack {
  postgres: { stop(): Promise<void> };
  temporal: { stop(): Promise<void> };
}
