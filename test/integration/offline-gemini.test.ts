/**
 * The offline model server speaks Gemini's REST shapes to the real
 * @google/genai client, and its control API does what the tests, the fault
 * suite and the benchmarks rely on: scripted errors with RetryInfo, the drop
 * after the work is done (counted, never answered), chaos, held answers.
 */
import { ApiError, GoogleGenAI } from '@google/genai';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { FakeGeminiControl } from '../fakes/gemini';

describe('the offline model server through @google/genai', () => {
  let server: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let ai: GoogleGenAI;
  beforeAll(async () => {
    server = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(server.url);
    ai = new GoogleGenAI({ apiKey: 'offline', httpOptions: { baseUrl: server.url, timeout: 3_000 } });
  });
  beforeEach(() => fake.reset());
  afterAll(() => server.close());

  it('answers generateContent and streamGenerateContent (SSE) with text and usage, and counts each as a paid call', async () => {
    const answer = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Say hello' });
    expect(answer.text).toMatch(/^\[offline model\]/);
    expect(answer.usageMetadata?.promptTokenCount).toBeGreaterThan(0);

    let streamed = '';
    let chunks = 0;
    for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Say hello' })) {
      streamed += chunk.text ?? '';
      chunks += 1;
    }
    expect(chunks).toBeGreaterThan(1);
    // the same prompt: the stream carries the same canned text in pieces
    expect(streamed).toBe(answer.text);
    expect((await fake.calls({ paid: true })).map((c) => [c.operation, c.outcome, c.status])).toEqual([
      ['generateContent', 'ok', 200],
      ['streamGenerateContent', 'ok', 200],
    ]);
  });

  it('surfaces a scripted 429 as ApiError with Gemini’s error body and its RetryInfo delay', async () => {
    await fake.script([{ kind: 'error', status: 429, retryDelaySeconds: 7 }], 'gemini-2.5-flash');
    const error = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(429);
    const body = JSON.parse((error as ApiError).message) as { error: { code: number; status: string; details: { retryDelay?: string }[] } };
    expect(body.error).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' });
    expect(body.error.details[0]?.retryDelay).toBe('7s');
  });

  it('drops the connection after the work: the client sees no answer, the counter sees the call', async () => {
    await fake.script([{ kind: 'drop' }]);
    await expect(ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' })).rejects.toThrow();
    expect(await fake.calls({ paid: true })).toEqual([expect.objectContaining({ operation: 'generateContent', outcome: 'drop' })]);
  });

  it('holds an answer until released, and chaos fails every call when its rate is 1', async () => {
    await fake.script([{ kind: 'ok', hold: true, text: 'held' }]);
    const held = ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' });
    let released = 0;
    while (released === 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      released = await fake.release();
    }
    expect((await held).text).toBe('held');

    const chaos = await fetch(`${server.url}/__control/chaos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ failureRate: 1 }) });
    expect(await chaos.json()).toEqual({ failureRate: 1, dropRate: 0 });
    const error = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }).catch((e: unknown) => e);
    expect([429, 503]).toContain((error as ApiError).status);
  });

  it('answers an unknown route or control command with a Gemini 404 body', async () => {
    const route = await fetch(`${server.url}/v1beta/models/gemini-2.5-flash:countTokens`, { method: 'POST', body: '{}' });
    expect(route.status).toBe(404);
    expect(await route.json()).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });
    const control = await fetch(`${server.url}/__control/nothing`);
    expect(control.status).toBe(404);
    expect(await control.json()).toMatchObject({ error: { code: 404, message: 'unknown control command nothing' } });
  });
});
