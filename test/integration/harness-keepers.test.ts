import { expectNothingLeft, killHarness } from './harness-kill';

const describeOnLinux = process.platform === 'linux' ? describe : describe.skip;

/**
 * The dev-server harnesses (jest's global setup, the benchmarks' and the fault
 * suite's stack) run PostgreSQL and the Temporal dev server under keepers, as
 * `onceflow start` does: a harness SIGKILLed mid-run (a CI timeout, the OOM
 * killer) leaves no server holding its ports for the next run.
 */
describeOnLinux('a SIGKILLed harness leaves no server behind', () => {
  it('jest global setup: PostgreSQL and the Temporal dev server are gone and their ports free', async () => {
    const killed = await killHarness('test-tier');
    expect(killed.processes.map((p) => p.comm)).toContain('temporal');
    expectNothingLeft(killed);
  }, 400_000);

  it('bench and fault suite stack: after the dev server and PostgreSQL were stopped and started through their keepers (on the same ports), both are gone and their ports free, and so is the relay role it started', async () => {
    const killed = await killHarness('bench');
    expect(killed.processes.map((p) => p.comm)).toContain('temporal');
    expect(killed.processes.filter((p) => p.args.includes('src/relay/main'))).toHaveLength(1);
    expectNothingLeft(killed);
  }, 400_000);
});
