import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { findFreePort } from '../../dev/ports';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { AesGcmPayloadCodec } from '../../src/temporal/codec';
import { parsePayloadKeys } from '../../src/temporal/codec-config';
import { searchAttributes } from '../../workflows/definitions';
import { postOperation } from '../helpers/api';
import { testInfra } from '../helpers/infra';
import { startProcess, startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { uniqueTaskQueue } from '../helpers/temporal';

/**
 * The api and worker processes as an operator runs them, with payload keys,
 * a codec token and metrics on their own port; Temporal is read raw, with a
 * client that has no key, as anyone with access to its history or UI would.
 */
describe('payload encryption', () => {
  const oldKey = `old:${randomBytes(32).toString('hex')}`;
  const newKey = `new:${randomBytes(32).toString('base64')}`;
  const codecToken = `codec-${randomBytes(16).toString('hex')}`;
  const uiOrigin = 'http://ui.example.test:8233';
  const tenant = { tenantId: `enc-${randomBytes(4).toString('hex')}`, apiKey: randomBytes(24).toString('hex') };
  let gemini: OfflineGeminiServer;
  let worker: RunningProcess;
  let api: RunningProcess;
  let baseUrl: string;
  let metricsUrl: string;
  let raw: Client;
  const taskQueue = uniqueTaskQueue('encryption');

  beforeAll(async () => {
    const infra = testInfra();
    gemini = await startOfflineGeminiServer();
    // Both hold both keys, the new one first (mid-rotation: payloads sealed with the old one still decode).
    const keysOf = (first: string, second: string) => `${first},${second}`;
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, env: { ONCEFLOW_PAYLOAD_KEYS: keysOf(newKey, oldKey) } });
    const [port, metricsPort] = [await findFreePort(), await findFreePort()];
    api = startProcess('api', {
      DATABASE_URL: infra.databaseUrl,
      TEMPORAL_ADDRESS: infra.temporalAddress,
      TEMPORAL_NAMESPACE: infra.temporalNamespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      TEMPORAL_UI_URL: uiOrigin,
      HOST: '127.0.0.1',
      PORT: String(port),
      API_METRICS_PORT: String(metricsPort),
      ONCEFLOW_TENANTS: `${tenant.tenantId}:${tenant.apiKey}`,
      ONCEFLOW_PAYLOAD_KEYS: keysOf(newKey, oldKey),
      ONCEFLOW_CODEC_TOKEN: codecToken,
      LOG_LEVEL: 'info',
    });
    await api.waitForOutput(/api listening/, 120_000);
    baseUrl = `http://127.0.0.1:${port}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    raw = new Client({ connection: await Connection.connect({ address: infra.temporalAddress }), namespace: infra.temporalNamespace });
  }, 180_000);
  afterAll(async () => {
    api?.kill();
    worker?.kill();
    await Promise.all([api?.exited, worker?.exited]);
    await raw?.connection.close();
    await gemini?.close();
  });

  const history = async (workflowId: string) =>
    (await raw.workflowService.getWorkflowExecutionHistory({ namespace: testInfra().temporalNamespace, execution: { workflowId } })).history!;

  it('keeps the prompt and the answer out of Temporal’s history, summaries and search attributes, and the operation still succeeds', async () => {
    const prompt = `top secret prompt ${randomUUID()}`;
    const answered = await postOperation(baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt }, headers: { prefer: 'wait=60' } });
    expect(answered.status).toBe(200);
    const answer = answered.json!.result.text as string;
    expect(answer.length).toBeGreaterThan(0);

    const events = await history(answered.json!.workflowId);
    const bytes = Buffer.from(proto.api.history.v1.History.encode(events).finish());
    expect(bytes.includes(Buffer.from(prompt))).toBe(false);
    expect(bytes.includes(Buffer.from(answer))).toBe(false);
    const started = events.events![0]!.workflowExecutionStartedEventAttributes!;
    expect(Buffer.from(started.input!.payloads![0]!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(Buffer.from(started.input!.payloads![0]!.metadata!['encryption-key-id']!).toString()).toBe('new');

    const description = await raw.workflow.getHandle(answered.json!.workflowId).describe();
    const listed = JSON.stringify([description.typedSearchAttributes, description.raw.executionConfig?.userMetadata]);
    expect(listed).not.toContain(prompt);
    expect(description.typedSearchAttributes.get(searchAttributes.tenant)).toBe(tenant.tenantId);
  });

  it('decodes through the codec endpoint with the operator credential only, for the Temporal UI’s origin', async () => {
    const prompt = `read me through the codec ${randomUUID()}`;
    const created = await postOperation(baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt } });
    expect(created.status).toBe(202);
    const payload = (await history(created.json!.workflowId)).events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const body = JSON.stringify({
      payloads: [{ metadata: Object.fromEntries(Object.entries(payload.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(payload.data!).toString('base64') }],
    });
    const decode = (headers: Record<string, string>) =>
      fetch(`${baseUrl}/codec/decode`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', origin: uiOrigin, ...headers }, body });

    for (const denied of [{}, { authorization: 'Bearer wrong-token' }, { authorization: `Bearer ${tenant.apiKey}` }] as Record<string, string>[]) {
      const refused = await decode(denied);
      expect(refused.status).toBe(401);
      expect(await refused.text()).not.toContain(prompt);
    }
    const decoded = await decode({ authorization: `Bearer ${codecToken}` });
    expect(decoded.status).toBe(200);
    expect(decoded.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    const [clear] = ((await decoded.json()) as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads;
    expect(Buffer.from(clear!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(clear!.data, 'base64').toString()).input.prompt).toBe(prompt);
    // A browser logged in with Basic (the token as password) is let in too.
    expect((await decode({ authorization: `Basic ${Buffer.from(`operator:${codecToken}`).toString('base64')}` })).status).toBe(200);

    const preflight = await fetch(`${baseUrl}/codec/decode`, { method: 'OPTIONS', headers: { origin: uiOrigin, 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/);
  });

  it('lets Temporal’s own CLI read the history through the codec endpoint, and only with the credential', async () => {
    const prompt = `read me with the temporal CLI ${randomUUID()}`;
    const created = await postOperation(baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt } });
    expect(created.status).toBe(202);
    const infra = testInfra();
    const show = (...codec: string[]) =>
      promisify(execFile)(
        infra.temporalBinary!,
        ['workflow', 'show', '--workflow-id', created.json!.workflowId, '--output', 'json', '--address', infra.temporalAddress, '--namespace', infra.temporalNamespace, ...codec],
        { maxBuffer: 16 * 1024 * 1024 },
      ).then(({ stdout }) => stdout, (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ''}${error.stderr ?? ''}`);
    // The CLI prints payloads as protobuf JSON (data in base64): read every data field as text too.
    const readable = (output: string) => `${output}${[...output.matchAll(/"data": "([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8')).join('\n')}`;
    expect(readable(await show())).not.toContain(prompt);
    expect(readable(await show('--codec-endpoint', `${baseUrl}/codec`, '--codec-auth', 'Bearer wrong'))).not.toContain(prompt);
    expect(readable(await show('--codec-endpoint', `${baseUrl}/codec`, '--codec-auth', `Bearer ${codecToken}`))).toContain(prompt);
  });

  it('reads a history sealed with a retired key, and refuses one sealed with a key it does not hold, tampered with or relabelled', async () => {
    const oldOnly = new AesGcmPayloadCodec(parsePayloadKeys(oldKey));
    const stranger = new AesGcmPayloadCodec([{ id: 'new', key: randomBytes(32) }]);
    const clear = { metadata: { encoding: new Uint8Array(Buffer.from('json/plain')) }, data: new Uint8Array(Buffer.from('"rotated"')) };
    const post = async (payloads: Awaited<ReturnType<AesGcmPayloadCodec['encode']>>) =>
      fetch(`${baseUrl}/codec/decode`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${codecToken}` },
        body: JSON.stringify({ payloads: payloads.map((p) => ({ metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])), data: Buffer.from(p.data!).toString('base64') })) }),
      });
    const rotated = await post(await oldOnly.encode([clear]));
    expect(rotated.status).toBe(200);
    expect(Buffer.from(((await rotated.json()) as { payloads: { data: string }[] }).payloads[0]!.data, 'base64').toString()).toBe('"rotated"');
    const forged = await post(await stranger.encode([clear]));
    expect(forged.status).toBe(400);
    expect(((await forged.json()) as { type: string }).type).toBe('https://onceflow.dev/problems/payload-undecodable');
    // A flipped bit, or a payload relabelled with the other key's id, does not decode either.
    const [sealed] = await oldOnly.encode([clear]);
    const flipped = { ...sealed!, data: Uint8Array.from(sealed!.data!, (byte, i) => (i === 20 ? byte ^ 1 : byte)) };
    expect((await post([flipped])).status).toBe(400);
    const relabelled = { ...sealed!, metadata: { ...sealed!.metadata, 'encryption-key-id': new Uint8Array(Buffer.from('new')) } };
    expect((await post([relabelled])).status).toBe(400);
  });

  it('serves metrics on their own port, not on the public one', async () => {
    expect((await fetch(`${baseUrl}/metrics`)).status).toBe(404);
    expect(await (await fetch(metricsUrl)).text()).toContain('onceflow_api_');
  });
});
