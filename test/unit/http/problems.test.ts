import { problems } from '../../../src/http/problems';

// The wire form of the problems that routes and the auth hook once built
// inline: moving them into the table must not change a byte clients read.
describe('problems answered outside the operation routes', () => {
  it.each([
    [
      'a missing or unknown API key',
      problems.unauthorized('the API key is unknown or revoked'),
      401,
      { type: 'https://onceflow.dev/problems/unauthorized', title: 'Unauthorized', status: 401, detail: 'the API key is unknown or revoked' },
      { 'WWW-Authenticate': 'Bearer realm="onceflow"' },
    ],
    [
      'an address over its failed authentications',
      problems.authenticationsBlocked(30, 17),
      429,
      {
        type: 'https://onceflow.dev/problems/rate-limited',
        title: 'Too many failed authentications',
        status: 429,
        detail: 'this address sent 30 requests with a missing or unknown API key within a minute; retry after 17 s',
      },
      { 'Retry-After': '17' },
    ],
    [
      'a list cursor this API did not hand out',
      problems.invalidCursor(new Error('bad base64')),
      400,
      { type: 'https://onceflow.dev/problems/invalid-request', title: 'Invalid request', status: 400, detail: 'cursor: not one this list returned' },
      {},
    ],
    [
      'a Gemini webhook with a bad signature',
      problems.invalidSignature('no matching signature'),
      401,
      { type: 'https://onceflow.dev/problems/invalid-signature', title: 'Webhook signature invalid', status: 401, detail: 'no matching signature' },
      {},
    ],
    [
      'a Gemini webhook for an interaction the ledger does not hold',
      problems.unknownInteraction('no submitted interaction i-1'),
      404,
      { type: 'https://onceflow.dev/problems/not-found', title: 'Unknown interaction', status: 404, detail: 'no submitted interaction i-1' },
      {},
    ],
    [
      'another tenant’s or a deleted subscription',
      problems.subscriptionNotFound(),
      404,
      { type: 'https://onceflow.dev/problems/subscription-not-found', title: 'Subscription not found', status: 404, detail: 'no such subscription for this tenant' },
      {},
    ],
    [
      'a subscription URL inside the deployment',
      problems.subscriptionUrlNotAllowed('loopback', new Error('127.0.0.1')),
      400,
      {
        type: 'https://onceflow.dev/problems/subscription-url-not-allowed',
        title: 'Subscription URL not allowed',
        status: 400,
        detail: "the URL's host is or resolves to a loopback address; subscribers must be reachable at a public address",
        rule: 'loopback',
      },
      {},
    ],
    [
      'one subscription over the tenant’s limit',
      problems.subscriptionLimitReached(3),
      409,
      {
        type: 'https://onceflow.dev/problems/subscription-limit-reached',
        title: 'Subscription limit reached',
        status: 409,
        detail: 'a tenant may have at most 3 subscriptions; delete one first',
        limit: 3,
      },
      {},
    ],
    [
      'a metrics scrape without the metrics token',
      problems.metricsUnauthorized(),
      401,
      { type: 'https://onceflow.dev/problems/unauthorized', title: 'Unauthorized', status: 401, detail: 'metrics need Authorization: Bearer <ONCEFLOW_METRICS_TOKEN>' },
      { 'WWW-Authenticate': 'Bearer realm="onceflow-metrics"' },
    ],
    [
      'a codec call without the operator credential',
      problems.codecUnauthorized({ 'Access-Control-Allow-Origin': 'http://ui.test' }),
      401,
      {
        type: 'https://onceflow.dev/problems/unauthorized',
        title: 'Unauthorized',
        status: 401,
        detail: 'the codec endpoint needs the operator credential (ONCEFLOW_CODEC_TOKEN) as a Bearer token or the Basic password',
      },
      { 'WWW-Authenticate': 'Basic realm="onceflow-codec"', 'Access-Control-Allow-Origin': 'http://ui.test' },
    ],
    [
      'a payload the codec cannot open',
      problems.payloadUndecodable('unknown key k2', { 'Access-Control-Allow-Origin': 'http://ui.test' }),
      400,
      { type: 'https://onceflow.dev/problems/payload-undecodable', title: 'Payload cannot be decoded', status: 400, detail: 'unknown key k2' },
      { 'Access-Control-Allow-Origin': 'http://ui.test' },
    ],
    [
      'a schedule created without a key',
      problems.scheduleKeyMissing(),
      400,
      { type: 'https://onceflow.dev/problems/idempotency-key-missing', title: 'Idempotency-Key missing', status: 400, detail: 'POST /v1/schedules requires an Idempotency-Key header' },
      {},
    ],
    [
      'a schedule key reused for another schedule',
      problems.scheduleKeyReused('k-1', 's-1'),
      422,
      {
        type: 'https://onceflow.dev/problems/idempotency-key-reused',
        title: 'Idempotency-Key reused with a different payload',
        status: 422,
        detail: 'this key created a different schedule; use a new key for a new schedule',
        idempotencyKey: 'k-1',
        scheduleId: 's-1',
      },
      {},
    ],
    [
      'a schedule list cursor this API did not hand out',
      problems.scheduleInvalidCursor(),
      400,
      { type: 'https://onceflow.dev/problems/invalid-request', title: 'Invalid cursor', status: 400, detail: 'the cursor is not one this API returned', issues: [] },
      {},
    ],
    [
      'another tenant’s or a deleted schedule',
      problems.scheduleNotFound(),
      404,
      { type: 'https://onceflow.dev/problems/schedule-not-found', title: 'Schedule not found', status: 404, detail: 'no such schedule for this tenant' },
      {},
    ],
  ])('answers %s as before', (_case, problem, status, body, headers) => {
    expect([problem.status, problem.body(), problem.headers]).toEqual([status, body, headers]);
  });

  it('keeps the resolved address of a refused subscription URL out of the body', () => {
    const problem = problems.subscriptionUrlNotAllowed('private', new Error('10.0.0.7'));
    expect(JSON.stringify(problem.body())).not.toContain('10.0.0.7');
  });
});
