import type { Behaviour, RecordedCall } from '../../src/integrations/gemini/offline-server';

/** Test-side handle on an offline model server: script its answers, read its call counter over HTTP. */
export class FakeGeminiControl {
  constructor(readonly url: string) {}

  async script(responses: Behaviour[], model = '*'): Promise<void> {
    const response = await fetch(`${this.url}/__control/script`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, responses }),
    });
    if (!response.ok) throw new Error(`scripting the fake Gemini failed: ${response.status}`);
  }

  async calls(): Promise<RecordedCall[]> {
    const response = await fetch(`${this.url}/__control/calls`);
    return ((await response.json()) as { calls: RecordedCall[] }).calls;
  }

  async reset(): Promise<void> {
    await fetch(`${this.url}/__control/reset`, { method: 'POST' });
  }
}
