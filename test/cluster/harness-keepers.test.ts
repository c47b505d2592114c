import { expectNothingLeft, killHarness, type KilledHarness } from '../integration/harness-kill';

const describeOnLinux = process.platform === 'linux' ? describe : describe.skip;

/** The four Temporal services of the harness, by their `--service` argument. */
function services(killed: KilledHarness): string[] {
  return killed.processes.flatMap((p) => /--service (\w+)$/.exec(p.args)?.[1] ?? []).sort();
}

/** The fixture killed history and started it again; the snapshot holds the new one beside the other three. */
function expectHistoryRestarted(killed: KilledHarness): void {
  const [before, after] = killed.ready.historyPids!;
  expect(before).toBeDefined();
  expect(after).toBeDefined();
  expect(after).not.toBe(before);
  expect(services(killed)).toEqual(['frontend', 'history', 'matching', 'worker']);
  expect(killed.processes.map((p) => p.pid)).toContain(after);
}

/**
 * The cluster harnesses (the cluster tier's global setup, the benchmarks' and
 * the fault suite's stack with `temporal: 'cluster'`) run PostgreSQL and the
 * cluster under keepers, as `onceflow start --temporal cluster` does: a
 * harness SIGKILLed mid-run leaves no Temporal service, UI server or
 * PostgreSQL behind holding its ports.
 */
describeOnLinux('a SIGKILLed cluster harness leaves no server behind', () => {
  it('cluster tier global setup: history SIGKILLed and started through the keeper is no crash to it (the cluster keeps serving); then the four services, the UI server and PostgreSQL are gone and their ports free', async () => {
    const killed = await killHarness('cluster-test-tier');
    expectHistoryRestarted(killed);
    expect(killed.processes.filter((p) => p.args.includes('temporal-ui-server/'))).toHaveLength(1);
    expectNothingLeft(killed);
  }, 600_000);

  it('fault suite and bench stack: history SIGKILLed and started through the keeper as faults:cluster does; then nothing is left', async () => {
    const killed = await killHarness('bench-cluster');
    expectHistoryRestarted(killed);
    expectNothingLeft(killed);
  }, 600_000);
});
