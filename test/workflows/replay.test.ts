import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { testInfra } from '../helpers/infra';
import { historyFromPlainObject } from './histories/history-json';

const historiesDir = path.join(__dirname, 'histories');

/**
 * Runs started by an earlier worker must complete after this one takes over:
 * every committed history (recorded from a released version's real runs by
 * histories/record-histories.ts) replays against the current workflow bundle
 * without a nondeterminism error.
 */
describe('runs of earlier versions replay on the current workflows', () => {
  it('replays every committed history of every workflow type', async () => {
    try {
      Runtime.install({ logger: new DefaultLogger('WARN') }); // the replay worker's state changes are noise here
    } catch {
      // installed already
    }
    // One folder per released version of the workflows (v1/, v2/, …).
    const files = (await readdir(historiesDir, { recursive: true })).filter((name) => name.endsWith('.json')).sort();
    const histories = await Promise.all(files.map(async (name) => ({
      workflowId: name,
      history: historyFromPlainObject(JSON.parse(await readFile(path.join(historiesDir, name), 'utf8'))),
    })));
    // Every version recorded a run of every workflow the worker registers.
    const versions = [...new Set(files.map((name) => path.dirname(name)))];
    expect(versions).toEqual(expect.arrayContaining(['v1', 'v2', 'v3', 'v4', 'v5']));
    for (const version of versions) {
      const types = new Set(histories.filter(({ workflowId }) => path.dirname(workflowId) === version)
        .map(({ history }) => history.events[0]!.workflowExecutionStartedEventAttributes!.workflowType!.name));
      // Schedule slot runs are recorded from v3 on (slots that carry the tenant's overlap policy).
      const expected = ['generateContentWorkflow', 'generateReportWorkflow', 'maintenanceWorkflow', 'pruneOutboxWorkflow', ...(Number(version.slice(1)) >= 3 ? ['scheduledSlotWorkflow'] : [])];
      expect({ version, types: [...types].sort() }).toEqual({ version, types: expected.sort() });
    }

    // Runs that met a cancel request (v3 on, POST …/cancel) replay too, of both operation types:
    // the path that finishes them as canceled must stay deterministic like every other.
    const cancelledTypes = histories
      .filter(({ history }) => history.events.some((event) => event.workflowExecutionCancelRequestedEventAttributes))
      .map(({ history }) => history.events[0]!.workflowExecutionStartedEventAttributes!.workflowType!.name);
    expect([...new Set(cancelledTypes)].sort()).toEqual(['generateContentWorkflow', 'generateReportWorkflow']);

    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { code: await readFile(testInfra().workflowBundlePath, 'utf8') }, replayName: 'committed-histories' },
      histories,
    )) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(files.length);
  });
});
