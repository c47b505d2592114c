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
  ])('answers %s as before', (_case, problem, status, body, headers) => {
    expect([problem.status, problem.body(), problem.headers]).toEqual([status, body, headers]);
  });

  it('keeps the resolved address of a refused subscription URL out of the body', () => {
    const problem = problems.subscriptionUrlNotAllowed('private', new Error('10.0.0.7'));
    expect(JSON.stringify(problem.body())).not.toContain('10.0.0.7');
  });
});
