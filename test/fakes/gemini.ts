import type { Behaviour, InteractionSettings, RecordedCall, WebhookDelivery } from '../../dev/gemini-offline/server';

/** Test-side handle on an offline model server: script its answers, read its call counter over HTTP. */
export class FakeGeminiControl {
  constructor(readonly url: string) {}

  async script(responses: Behaviour[], model = '*'): Promise<void> {
    await this.post('/__control/script', { model, responses });
  }

  /** Every call received; `paid` keeps generateContent and interaction creates (a get or a cancel is free). */
  async calls(filter: { paid?: boolean } = {}): Promise<RecordedCall[]> {
    const response = await fetch(`${this.url}/__control/calls`);
    const calls = ((await response.json()) as { calls: RecordedCall[] }).calls;
    return filter.paid ? calls.filter((c) => c.operation !== 'interactions.get' && c.operation !== 'interactions.cancel') : calls;
  }

  /** Sends every answer held by a `hold` behaviour; resolves with how many. */
  async release(): Promise<number> {
    const response = await fetch(`${this.url}/__control/release`, { method: 'POST' });
    return ((await response.json()) as { released: number }).released;
  }

  async reset(): Promise<void> {
    await fetch(`${this.url}/__control/reset`, { method: 'POST' });
  }

  /** How new interactions behave: duration, hold until completed by hand, webhook target. */
  async interactions(settings: Partial<InteractionSettings>): Promise<void> {
    await this.post('/__control/interactions', settings);
  }

  async listInteractions(): Promise<{ id: string; model: string; status: string }[]> {
    const response = await fetch(`${this.url}/__control/interactions`);
    return ((await response.json()) as { interactions: { id: string; model: string; status: string }[] }).interactions;
  }

  /** Completes a held interaction now (its webhook follows, if one is configured). */
  async complete(interactionId: string): Promise<void> {
    await this.post(`/__control/interactions/${encodeURIComponent(interactionId)}/complete`, {});
  }

  /** (Re)delivers a finished interaction's webhook `times` times; resolves after the last attempt. */
  async deliver(interactionId: string, options: { times?: number; badSignature?: boolean } = {}): Promise<void> {
    await this.post(`/__control/interactions/${encodeURIComponent(interactionId)}/deliver`, options);
  }

  async webhookDeliveries(): Promise<WebhookDelivery[]> {
    const response = await fetch(`${this.url}/__control/webhooks`);
    return ((await response.json()) as { deliveries: WebhookDelivery[] }).deliveries;
  }

  private async post(path: string, body: unknown): Promise<void> {
    const response = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`fake Gemini ${path} answered ${response.status}: ${await response.text()}`);
    await response.arrayBuffer().catch(() => undefined);
  }
}

/** Waits until `check` returns a value other than undefined/false; fails with `what` after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
