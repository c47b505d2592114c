import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { chromium, type Browser } from 'playwright-core';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { connectTestClient, startTestWorker, type TestWorker } from '../helpers/temporal';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const SCREENSHOT_DIR = path.resolve(__dirname, '../../.onceflow/screenshots');

/**
 * The Temporal Web UI tells an operation's story without reading code: the
 * idempotency key and the static summary are on the workflow's page. Driven in
 * headless Chromium (installed by `make test` from Debian's packages).
 */
const describeWithBrowser = CHROMIUM || process.env.CI ? describe : describe.skip;
if (!CHROMIUM && !process.env.CI) {
  process.stderr.write('temporal-ui.test: skipped, no chromium found (apt-get install chromium; `make test` does it as root)\n');
}

describeWithBrowser('the Temporal UI shows an operation', () => {
  let pool: Pool;
  let temporal: Client;
  let worker: TestWorker;
  let api: TestApi;
  let browser: Browser;
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('CI=true but no chromium: `make test` installs it with apt-get');
    pool = createTestPool();
    temporal = await connectTestClient();
    worker = await startTestWorker({ pool });
    api = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await worker?.stop();
    await temporal?.connection.close();
    await pool?.end();
  });

  it('shows the idempotency key, tenant and summary of a finished operation on its workflow page', async () => {
    const tenant = await createApiTenant(pool);
    const key = `ui-${randomUUID()}`;
    const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=30' } });
    expect(response.status).toBe(200);
    const { workflowId, runId } = response.json!;
    const page = await browser.newPage({ viewport: { width: 1600, height: 1400 } });
    const url = `${testInfra().temporalUiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}/${runId}/history`;
    await page.goto(url, { waitUntil: 'networkidle', timeout: 60_000 });
    await page.getByText(key, { exact: false }).first().waitFor({ timeout: 30_000 });
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'operation-workflow.png'), fullPage: true });
    const text = await page.locator('body').innerText();
    expect(text).toContain(key);
    expect(text).toContain('generate-content with the default model chain');
    expect(text).toContain(tenant.tenantId);
    await page.close();
  });
});
