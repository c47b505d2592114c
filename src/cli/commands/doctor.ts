/**
 * `onceflow doctor`: checks everything Onceflow needs and says what to fix.
 * Exit 0 when nothing failed (warnings allowed), 1 otherwise.
 */
import { Connection } from '@temporalio/client';
import { Command } from 'commander';
import type { Config } from '../../config';
import { pendingMigrations } from '../../db/migrate';
import { createPool } from '../../db/pool';
import { describeStartupError } from '../../process/entrypoint';
import { allSearchAttributes } from '../../../workflows/definitions';
import { runCommand, withJson } from '../context';
import { ExitCode } from '../errors';

export const CheckStatus = { Ok: 'ok', Warn: 'warn', Fail: 'fail', Skipped: 'skipped' } as const;
export type CheckStatus = (typeof CheckStatus)[keyof typeof CheckStatus];

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

/** temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD */
const INDEXED_VALUE_TYPE_KEYWORD = 2;
/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW */
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const GOOGLE_GEMINI_URL = 'https://generativelanguage.googleapis.com';
const CHECK_TIMEOUT_MS = 5_000;

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]!.trim();
}

async function checkPostgres(config: Config): Promise<CheckResult[]> {
  if (!config.DATABASE_URL) {
    return [
      { check: 'postgresql', status: 'fail', detail: 'DATABASE_URL is not set', fix: 'set DATABASE_URL to Onceflow’s PostgreSQL (`npm start` prints the one it runs)' },
      { check: 'migrations', status: 'skipped', detail: 'needs PostgreSQL' },
    ];
  }
  const pool = createPool({ connectionString: config.DATABASE_URL, max: 1, applicationName: 'onceflow-doctor' });
  try {
    const { rows } = await pool.query<{ version: string }>("SELECT current_setting('server_version') AS version");
    const results: CheckResult[] = [{ check: 'postgresql', status: 'ok', detail: `PostgreSQL ${rows[0]?.version} at ${redact(config.DATABASE_URL)}` }];
    const pending = await pendingMigrations(pool);
    results.push(
      pending.length === 0
        ? { check: 'migrations', status: 'ok', detail: 'schema up to date' }
        : { check: 'migrations', status: 'fail', detail: `${pending.length} pending: ${pending.join(', ')}`, fix: 'run `onceflow migrate` (the api, worker and relay also migrate at start)' },
    );
    return results;
  } catch (error) {
    return [
      { check: 'postgresql', status: 'fail', detail: `cannot reach ${redact(config.DATABASE_URL)}: ${firstLine(error)}`, fix: describeStartupError(error, { databaseUrl: config.DATABASE_URL, temporalAddress: config.TEMPORAL_ADDRESS }).split(' — ')[1] ?? 'start PostgreSQL or fix DATABASE_URL' },
      { check: 'migrations', status: 'skipped', detail: 'needs PostgreSQL' },
    ];
  } finally {
    await pool.end();
  }
}

async function checkTemporal(config: Config): Promise<CheckResult[]> {
  const namespace = config.TEMPORAL_NAMESPACE;
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS, connectTimeout: CHECK_TIMEOUT_MS });
  } catch (error) {
    return [
      { check: 'temporal', status: 'fail', detail: `cannot reach ${config.TEMPORAL_ADDRESS}: ${firstLine(error)}`, fix: 'start the Temporal server (`onceflow start` runs a dev server) or fix TEMPORAL_ADDRESS' },
      { check: 'search attributes', status: 'skipped', detail: 'needs Temporal' },
      { check: 'worker', status: 'skipped', detail: 'needs Temporal' },
    ];
  }
  try {
    try {
      await connection.workflowService.describeNamespace({ namespace });
    } catch (error) {
      return [
        { check: 'temporal', status: 'fail', detail: `namespace ${namespace}: ${firstLine(error)}`, fix: `create it (\`temporal operator namespace create --namespace ${namespace}\`) or fix TEMPORAL_NAMESPACE` },
        { check: 'search attributes', status: 'skipped', detail: 'needs the namespace' },
        { check: 'worker', status: 'skipped', detail: 'needs the namespace' },
      ];
    }
    // Each later check fails on its own: an error in one keeps the verdicts already gathered.
    return [
      { check: 'temporal', status: 'ok', detail: `${config.TEMPORAL_ADDRESS}, namespace ${namespace}` },
      await checkSearchAttributes(connection, namespace),
      await checkWorker(connection, config),
    ];
  } finally {
    await connection.close();
  }
}

async function checkSearchAttributes(connection: Connection, namespace: string): Promise<CheckResult> {
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
    const registered = customAttributes ?? {};
    const missing = allSearchAttributes.filter((key) => registered[key.name] === undefined);
    const wrongType = allSearchAttributes.filter((key) => registered[key.name] !== undefined && Number(registered[key.name]) !== INDEXED_VALUE_TYPE_KEYWORD);
    if (missing.length === 0 && wrongType.length === 0) {
      return { check: 'search attributes', status: 'ok', detail: allSearchAttributes.map((key) => key.name).join(', ') };
    }
    return {
      check: 'search attributes',
      status: 'fail',
      detail: [missing.length ? `missing ${missing.map((k) => k.name).join(', ')}` : '', wrongType.length ? `not Keyword: ${wrongType.map((k) => k.name).join(', ')}` : '']
        .filter(Boolean)
        .join('; '),
      fix: missing.map((key) => `temporal operator search-attribute create --namespace ${namespace} --name ${key.name} --type Keyword`).join(' && ') || 'recreate them as Keyword',
    };
  } catch (error) {
    return { check: 'search attributes', status: 'fail', detail: `cannot list them: ${firstLine(error)}`, fix: 'check the Temporal server’s logs (the operator API must be reachable at TEMPORAL_ADDRESS)' };
  }
}

async function checkWorker(connection: Connection, config: Config): Promise<CheckResult> {
  try {
    const { pollers } = await connection.workflowService.describeTaskQueue({
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: { name: config.TEMPORAL_TASK_QUEUE },
      taskQueueType: TASK_QUEUE_TYPE_WORKFLOW,
    });
    return pollers && pollers.length > 0
      ? { check: 'worker', status: 'ok', detail: `${pollers.length} poller(s) on task queue ${config.TEMPORAL_TASK_QUEUE}` }
      : { check: 'worker', status: 'warn', detail: `no worker polls task queue ${config.TEMPORAL_TASK_QUEUE}: operations stay running`, fix: 'start a worker (`node dist/src/worker/main.js`, or `onceflow start` locally) or fix TEMPORAL_TASK_QUEUE' };
  } catch (error) {
    return { check: 'worker', status: 'fail', detail: `cannot describe task queue ${truncate(config.TEMPORAL_TASK_QUEUE, 40)}: ${firstLine(error)}`, fix: 'fix TEMPORAL_TASK_QUEUE, or check the Temporal server’s logs' };
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Google's error body: `{error: {code, message, status, details: [{reason}]}}` (google.rpc.Status). */
interface GoogleError {
  message?: string;
  status?: string;
  details?: { reason?: string }[];
}

async function googleError(response: Response): Promise<GoogleError> {
  try {
    const body = (await response.json()) as { error?: GoogleError };
    return body.error ?? {};
  } catch {
    return {};
  }
}

/** `API_KEY_INVALID: API key not valid…` from whatever parts the body has. */
function describeGoogleError(error: GoogleError, status: number): string {
  const reason = error.details?.find((d) => d.reason)?.reason ?? error.status;
  return [`HTTP ${status}`, reason, error.message?.split('\n')[0]].filter(Boolean).join(' ');
}

/** Where to get a key; a bad or restricted one is fixed there. */
const GEMINI_KEY_FIX = 'set GEMINI_API_KEY to a valid key (https://aistudio.google.com/apikey)';

/**
 * Lists models, the cheapest call that proves both the URL and the key: only
 * a 2xx is ok. Google answers a bad key with 400 API_KEY_INVALID, a key that
 * may not use the API with 403, and a wrong base URL shows up as 404. The
 * offline model server has no model list; it is recognised by its health route.
 */
async function checkGemini(config: Config, fetchImpl: typeof fetch = fetch): Promise<CheckResult> {
  const baseUrl = (config.GEMINI_BASE_URL ?? GOOGLE_GEMINI_URL).replace(/\/+$/, '');
  const where = config.GEMINI_BASE_URL ? `GEMINI_BASE_URL ${baseUrl}` : baseUrl;
  const headers: Record<string, string> = {};
  if (config.GEMINI_API_KEY) headers['x-goog-api-key'] = config.GEMINI_API_KEY;
  try {
    if (config.GEMINI_BASE_URL && (await isOfflineModelServer(baseUrl, fetchImpl))) {
      return { check: 'gemini', status: 'ok', detail: `${where} is Onceflow’s OFFLINE model server: canned answers, nothing reaches Google` };
    }
    const response = await fetchImpl(`${baseUrl}/v1beta/models`, { headers, signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
    if (response.ok) {
      await response.arrayBuffer();
      if (!config.GEMINI_API_KEY && !config.GEMINI_BASE_URL) {
        return { check: 'gemini', status: 'warn', detail: `${where} reachable, but GEMINI_API_KEY is not set`, fix: 'set GEMINI_API_KEY (the local run uses the offline model server instead)' };
      }
      return { check: 'gemini', status: 'ok', detail: `${where} reachable, key accepted (HTTP ${response.status})` };
    }
    const error = await googleError(response);
    const answer = describeGoogleError(error, response.status);
    if (response.status >= 500) return { check: 'gemini', status: 'warn', detail: `${where} answers ${answer}`, fix: 'the provider or proxy is failing; operations retry and fall back meanwhile' };
    if (response.status === 429) return { check: 'gemini', status: 'warn', detail: `${where} answers ${answer}`, fix: 'quota or rate limit reached: operations back off and retry; raise the quota or wait' };
    if (!config.GEMINI_API_KEY) {
      // Without a key every Gemini endpoint refuses; that is the thing to fix.
      return { check: 'gemini', status: config.GEMINI_BASE_URL ? 'fail' : 'warn', detail: `${where} reachable, but GEMINI_API_KEY is not set (${answer})`, fix: 'set GEMINI_API_KEY (the local run uses the offline model server instead)' };
    }
    if (response.status === 404) {
      return { check: 'gemini', status: 'fail', detail: `${where} has no Gemini API at /v1beta/models (${answer})`, fix: 'fix GEMINI_BASE_URL: the server root that serves /v1beta (e.g. https://generativelanguage.googleapis.com), without /v1beta' };
    }
    if (response.status === 400 || response.status === 401) {
      return { check: 'gemini', status: 'fail', detail: `${where} rejected GEMINI_API_KEY (${answer})`, fix: GEMINI_KEY_FIX };
    }
    if (response.status === 403) {
      return {
        check: 'gemini',
        status: 'fail',
        detail: `${where} refused GEMINI_API_KEY (${answer})`,
        fix: `use a key that may call the Generative Language API (enable the API in the key’s Google Cloud project, or lift the key’s API restrictions), or ${GEMINI_KEY_FIX}`,
      };
    }
    return { check: 'gemini', status: 'fail', detail: `${where} answers ${answer}`, fix: 'check GEMINI_BASE_URL and GEMINI_API_KEY' };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return {
      check: 'gemini',
      status: 'fail',
      detail: `cannot reach ${where}: ${cause ?? firstLine(error)}`,
      fix: config.GEMINI_BASE_URL ? 'start the proxy/offline server or fix GEMINI_BASE_URL' : 'allow outbound HTTPS to Google, or set GEMINI_BASE_URL to a reachable proxy',
    };
  }
}

/** The offline model server answers `GET /__control/health` with `{offline: true}`; Google and proxies do not. */
async function isOfflineModelServer(baseUrl: string, fetchImpl: typeof fetch): Promise<boolean> {
  try {
    const response = await fetchImpl(`${baseUrl}/__control/health`, { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
    if (!response.ok) {
      await response.arrayBuffer();
      return false;
    }
    return ((await response.json()) as { offline?: unknown }).offline === true;
  } catch {
    return false;
  }
}

/** postgres://user:secret@host/db → postgres://user:***@host/db */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export async function runDoctor(config: Config): Promise<CheckResult[]> {
  const [postgres, temporal, gemini] = await Promise.all([checkPostgres(config), checkTemporal(config), checkGemini(config)]);
  return [...postgres, ...temporal, gemini];
}

export function doctorCommand(): Command {
  return withJson(
    new Command('doctor').description('check PostgreSQL, migrations, Temporal, search attributes, a worker and Gemini; say what to fix (exit 1 if a check fails)'),
  ).action((options: { json?: boolean }) =>
    runCommand(options, async (context) => {
      const checks = await runDoctor(context.config);
      const ok = checks.every((c) => c.status !== 'fail');
      if (context.json) {
        context.out.json({ ok, checks });
      } else {
        context.out.table(checks as unknown as Record<string, unknown>[], [
          { key: 'check', header: 'CHECK' },
          { key: 'status', header: 'STATUS', format: (v) => String(v).toUpperCase() },
          { key: 'detail', header: 'DETAIL', maxWidth: 120 },
        ]);
        const fixes = checks.filter((c) => c.fix && (c.status === 'fail' || c.status === 'warn'));
        if (fixes.length) {
          context.out.line();
          context.out.line('To fix:');
          for (const c of fixes) context.out.line(`  ${c.check}: ${c.fix}`);
        }
        context.out.line();
        context.out.line(ok ? 'all required checks passed' : `${checks.filter((c) => c.status === 'fail').length} check(s) failed`);
      }
      return ok ? ExitCode.Ok : ExitCode.Failure;
    }),
  );
}
