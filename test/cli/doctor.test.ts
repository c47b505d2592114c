import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CommanderError } from 'commander';
import { CliError, ExitCode, exitCodeFor } from '../../src/cli/errors';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { cliEnv, expectExit, parseJson, runCli } from './run-cli';

/**
 * A server that answers GET /v1beta/models the way generativelanguage.googleapis.com
 * does, per API key (bodies as Google sends them: google.rpc.Status with an
 * ErrorInfo reason). The offline model server does not look at keys at all,
 * so it cannot say what Google says to a bad one.
 */
const VALID_KEY = 'valid-key';
const googleAnswers: Record<string, { status: number; body: unknown }> = {
  [VALID_KEY]: { status: 200, body: { models: [{ name: 'models/gemini-2.5-flash', displayName: 'Gemini 2.5 Flash' }] } },
  'invalid-key': {
    status: 400,
    body: {
      error: {
        code: 400,
        message: 'API key not valid. Please pass a valid API key.',
        status: 'INVALID_ARGUMENT',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } }],
      },
    },
  },
  'restricted-key': {
    status: 403,
    body: {
      error: {
        code: 403,
        message: 'Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.ModelService.ListModels are blocked.',
        status: 'PERMISSION_DENIED',
        details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_SERVICE_BLOCKED', domain: 'googleapis.com' }],
      },
    },
  },
  'expired-credentials': {
    status: 401,
    body: { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } },
  },
  'exhausted-key': {
    status: 429,
    body: { error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } },
  },
};

function startGoogleLike(): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const answer =
      url.pathname !== '/v1beta/models'
        ? { status: 404, body: { error: { code: 404, message: `Method not found: ${url.pathname}`, status: 'NOT_FOUND' } } }
        : googleAnswers[String(request.headers['x-goog-api-key'] ?? '')] ?? googleAnswers['invalid-key']!;
    response.writeHead(answer.status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(answer.body));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })));
}

describe('onceflow doctor verdicts', () => {
  let google: { url: string; server: Server };
  let offline: OfflineGeminiServer;
  beforeAll(async () => {
    google = await startGoogleLike();
    offline = await startOfflineGeminiServer();
  });
  afterAll(async () => {
    await new Promise((resolve) => google.server.close(resolve));
    await offline.close();
  });

  const doctor = async (env: Record<string, string>) => {
    const run = await runCli(['doctor', '--json'], cliEnv(env));
    const report = parseJson(run);
    return { run, report, check: (name: string) => report.checks.find((c: any) => c.check === name) };
  };

  it('accepts only a 2xx from the model list: a valid key is ok', async () => {
    const { check } = await doctor({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: VALID_KEY });
    expect(check('gemini')).toMatchObject({ status: 'ok', detail: expect.stringContaining('key accepted (HTTP 200)') });
  });

  it('fails an invalid API key (Google: 400 API_KEY_INVALID) with the fix to apply, and exits 1', async () => {
    const { run, check } = await doctor({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: 'invalid-key' });
    expectExit(run, 1);
    expect(check('gemini')).toEqual({
      check: 'gemini',
      status: 'fail',
      detail: `GEMINI_BASE_URL ${google.url} rejected GEMINI_API_KEY (HTTP 400 API_KEY_INVALID API key not valid. Please pass a valid API key.)`,
      fix: 'set GEMINI_API_KEY to a valid key (https://aistudio.google.com/apikey)',
    });
    // and the human-readable form says the same
    const human = await runCli(['doctor'], cliEnv({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: 'invalid-key' }));
    expect(human.stdout).toMatch(/^gemini\s+FAIL\s+.*rejected GEMINI_API_KEY/m);
    expect(human.stdout).toMatch(/To fix:\n(.*\n)*\s+gemini: set GEMINI_API_KEY to a valid key/);
  });

  it('fails a key Google refuses (403) or credentials it does not accept (401)', async () => {
    const restricted = await doctor({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: 'restricted-key' });
    expectExit(restricted.run, 1);
    expect(restricted.check('gemini')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('refused GEMINI_API_KEY (HTTP 403 API_KEY_SERVICE_BLOCKED'),
      fix: expect.stringContaining('enable the API in the key’s Google Cloud project'),
    });
    const unauthenticated = await doctor({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: 'expired-credentials' });
    expectExit(unauthenticated.run, 1);
    expect(unauthenticated.check('gemini')).toMatchObject({ status: 'fail', detail: expect.stringContaining('HTTP 401 UNAUTHENTICATED'), fix: expect.stringContaining('set GEMINI_API_KEY') });
  });

  it('fails a GEMINI_BASE_URL with no Gemini API behind it (404), saying how the URL should look', async () => {
    const { run, check } = await doctor({ GEMINI_BASE_URL: `${google.url}/v1beta`, GEMINI_API_KEY: VALID_KEY });
    expectExit(run, 1);
    expect(check('gemini')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('has no Gemini API at /v1beta/models (HTTP 404'),
      fix: expect.stringContaining('fix GEMINI_BASE_URL: the server root that serves /v1beta'),
    });
  });

  it('warns, without failing, when the quota is exhausted (429)', async () => {
    const { check } = await doctor({ GEMINI_BASE_URL: google.url, GEMINI_API_KEY: 'exhausted-key' });
    expect(check('gemini')).toMatchObject({ status: 'warn', detail: expect.stringContaining('HTTP 429 RESOURCE_EXHAUSTED') });
  });

  it('recognises the offline model server and says that nothing reaches Google', async () => {
    const { check } = await doctor({ GEMINI_BASE_URL: offline.url });
    expect(check('gemini')).toMatchObject({ status: 'ok', detail: expect.stringContaining('OFFLINE model server') });
  });

  it('keeps the Temporal verdicts already gathered when a later Temporal call fails', async () => {
    // A real server-side refusal after describeNamespace and listSearchAttributes
    // succeeded: Temporal rejects task queue names over its length limit.
    const { run, check } = await doctor({ GEMINI_BASE_URL: offline.url, TEMPORAL_TASK_QUEUE: 'q'.repeat(1001) });
    expectExit(run, 1);
    expect(check('temporal')).toMatchObject({ status: 'ok' });
    expect(check('search attributes')).toMatchObject({ status: 'ok' });
    expect(check('worker')).toMatchObject({ status: 'fail', detail: expect.stringContaining('length exceeds limit'), fix: expect.stringContaining('fix TEMPORAL_TASK_QUEUE') });
  });
});

describe('onceflow exit codes', () => {
  it('maps an unexpected error to 1 (failure), not 2 (usage): scripts must not retry it with other arguments', () => {
    expect(exitCodeFor(new TypeError("Cannot read properties of undefined (reading 'rows')"))).toBe(1);
    expect(exitCodeFor(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--nope'"))).toBe(2);
    expect(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(0);
    expect(exitCodeFor(new CliError('no operation has the key', ExitCode.NotFound))).toBe(3);
  });

  it('exits 2 for a wrong call of the real CLI', async () => {
    const run = await runCli(['ops', 'list', '--no-such-option']);
    expect(run.code).toBe(2);
  });
});
