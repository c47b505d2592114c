import { ConfigError, loadConfig } from '../../src/config';
import { startProcess } from '../helpers/processes';

/**
 * GEMINI_REQUEST_TIMEOUT_MS must leave the geminiCall attempt (start-to-close
 * 2 minutes) room to cut a hung call and record it: a longer value would let
 * Temporal start the retry, a second paid call, while the first still runs.
 */
describe('GEMINI_REQUEST_TIMEOUT_MS stays below the Gemini activity timeout', () => {
  const problemsOf = (env: NodeJS.ProcessEnv) => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems.map((p) => p.variable);
    }
  };

  it('accepts the default and a value well below two minutes', () => {
    expect(loadConfig({}).GEMINI_REQUEST_TIMEOUT_MS).toBe(30_000);
    expect(loadConfig({ GEMINI_REQUEST_TIMEOUT_MS: '60000' }).GEMINI_REQUEST_TIMEOUT_MS).toBe(60_000);
  });

  it('refuses a timeout as long as the 2-minute start-to-close, or one that leaves no room to record the outcome', () => {
    expect(problemsOf({ GEMINI_REQUEST_TIMEOUT_MS: '120000' })).toEqual(['GEMINI_REQUEST_TIMEOUT_MS']);
    expect(problemsOf({ GEMINI_REQUEST_TIMEOUT_MS: '300000' })).toEqual(['GEMINI_REQUEST_TIMEOUT_MS']);
    expect(problemsOf({ GEMINI_REQUEST_TIMEOUT_MS: '119000' })).toEqual(['GEMINI_REQUEST_TIMEOUT_MS']);
  });

  it('stops a real worker process at start with exit code 2, naming the variable', async () => {
    const worker = startProcess('worker', { GEMINI_REQUEST_TIMEOUT_MS: '180000', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(await worker.exited).toBe(2);
    expect(worker.output()).toMatch(/GEMINI_REQUEST_TIMEOUT_MS: must be at most/);
  });
});
