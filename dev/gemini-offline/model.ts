/**
 * The offline model's state: the calls it received, the behaviours scripted
 * for the next calls, the chaos knobs, the background interactions and their
 * webhooks. The Gemini routes (gemini-routes.ts) and the control API
 * (control-routes.ts) are two views of this one object.
 */
import { createHash, randomUUID } from 'node:crypto';
import { DEV_GEMINI_WEBHOOK_SECRET, signGeminiWebhook } from '../../src/integrations/gemini/webhooks';

/** What one call does. */
export type Behaviour =
  /**
   * Answers, after `delayMs` if set, or (`hold`) only when POST
   * /__control/release says so; the call is counted, and an interaction
   * created, on arrival. An interaction created so ends with `finalStatus`
   * (default completed).
   */
  | { kind: 'ok'; text?: string; finalStatus?: 'completed' | 'failed'; delayMs?: number; hold?: boolean }
  /**
   * An error body; 429 carries a google.rpc.RetryInfo retryDelay when `retryDelaySeconds` is set,
   * and a google.rpc.ErrorInfo with `reason` when set (e.g. API_KEY_INVALID, as Gemini refuses a bad key).
   */
  | { kind: 'error'; status: number; retryDelaySeconds?: number; message?: string; reason?: string }
  /** The prompt is blocked for safety (promptFeedback.blockReason). */
  | { kind: 'safety' }
  /** Never answers (until the client gives up). */
  | { kind: 'hang' }
  /** Does the work (counted, billed) and then drops the connection before answering. */
  | { kind: 'drop' };

/** Which endpoint a call hit: the first three are paid, a get is free. */
export type CallOperation = 'generateContent' | 'streamGenerateContent' | 'interactions.create' | 'interactions.get' | 'interactions.cancel';

export interface RecordedCall {
  operation: CallOperation;
  model: string;
  /** sha256 of the request body: tests match calls to prompts without the server keeping prompts. */
  requestHash: string;
  outcome: Behaviour['kind'];
  status: number;
  atMs: number;
}

/** Where completion webhooks go, signed with `secret` (Standard Webhooks). */
export interface WebhookTarget {
  url: string;
  /** Default: the development secret (DEV_GEMINI_WEBHOOK_SECRET). */
  secret?: string;
  /** How many times each completion event is delivered (same webhook-id): redeliveries. Default 1. */
  deliveries?: number;
}

export interface InteractionSettings {
  /** Time from create to completion, in ms. Default 300. */
  durationMs: number;
  /** Keep new interactions running until POST /__control/interactions/{id}/complete. Default false. */
  hold: boolean;
  /** Hold the answers of interaction reads until POST /__control/release; each answers with the state it read on arrival. Default false. */
  holdReads: boolean;
  webhook: WebhookTarget | null;
}

export interface WebhookDelivery {
  interactionId: string;
  webhookId: string;
  /** The receiver's HTTP status; 0 when it could not be reached. */
  status: number;
  badSignature: boolean;
  atMs: number;
}

/** Random faults for calls no script covers: `failureRate` answers 429 or 503, `dropRate` drops after the work. Default 0 each. */
export interface Chaos {
  failureRate: number;
  dropRate: number;
}

export interface StoredInteraction {
  id: string;
  model: string;
  prompt: string;
  system?: string;
  status: 'in_progress' | 'completed' | 'failed' | 'cancelled';
  finalStatus: 'completed' | 'failed';
  text?: string;
  created: string;
  updated: string;
}

export const DEFAULT_INTERACTIONS: InteractionSettings = { durationMs: 300, hold: false, holdReads: false, webhook: null };
const NO_CHAOS: Chaos = { failureRate: 0, dropRate: 0 };

export class OfflineModel {
  readonly calls: RecordedCall[] = [];
  readonly deliveries: WebhookDelivery[] = [];
  readonly interactions = new Map<string, StoredInteraction>();
  chaos: Chaos = { ...NO_CHAOS };
  interactionSettings: InteractionSettings;
  private readonly scripts = new Map<string, Behaviour[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  // Answers of `hold` behaviours (and held reads), sent by POST /__control/release.
  private readonly heldAnswers: (() => void)[] = [];

  constructor(private readonly initialInteractions: InteractionSettings) {
    this.interactionSettings = { ...initialInteractions };
  }

  /** Queues behaviours for the next paid calls to `model` ("*": any model); returns the queue's length. */
  script(model: string, responses: Behaviour[]): number {
    const queue = [...(this.scripts.get(model) ?? []), ...responses];
    this.scripts.set(model, queue);
    return queue.length;
  }

  /** A scripted error for the next interaction read (queued under the pseudo-model `interactions.get`), if any. */
  nextReadError(): Extract<Behaviour, { kind: 'error' }> | undefined {
    const next = this.scripts.get('interactions.get')?.shift();
    return next?.kind === 'error' ? next : undefined;
  }

  /** The scripted behaviour for this call, else a chaos roll, else ok. */
  nextBehaviour(model: string): Behaviour {
    for (const key of [model, '*']) {
      const queue = this.scripts.get(key);
      if (queue && queue.length > 0) return queue.shift()!;
    }
    const roll = Math.random();
    if (roll < this.chaos.dropRate) return { kind: 'drop' };
    if (roll < this.chaos.dropRate + this.chaos.failureRate) {
      return Math.random() < 0.5 ? { kind: 'error', status: 429, retryDelaySeconds: 1 } : { kind: 'error', status: 503 };
    }
    return { kind: 'ok' };
  }

  /** Resolves with `value` when POST /__control/release says so (never, if a reset comes first). */
  hold<T>(value: T): Promise<T> {
    return new Promise((resolve) => this.heldAnswers.push(() => resolve(value)));
  }

  /** Sends every held answer; returns how many. */
  release(): number {
    const answers = this.heldAnswers.splice(0);
    for (const answer of answers) answer();
    return answers.length;
  }

  /** Resolves after `ms` (never, if the server closes or resets first). */
  delay(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Forgets calls, scripts, chaos, interactions and held answers. */
  reset(): void {
    this.calls.length = 0;
    this.scripts.clear();
    this.chaos = { ...NO_CHAOS };
    this.interactionSettings = { ...this.initialInteractions };
    this.deliveries.length = 0;
    this.interactions.clear();
    this.heldAnswers.length = 0;
    this.clearTimers();
  }

  clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  createInteraction(input: { model: string; prompt: string; system?: string; finalStatus: 'completed' | 'failed'; text?: string }): StoredInteraction {
    const now = new Date().toISOString();
    const interaction: StoredInteraction = {
      id: `offline-int-${randomUUID()}`,
      model: input.model,
      prompt: input.prompt,
      system: input.system,
      status: 'in_progress',
      finalStatus: input.finalStatus,
      text: input.text,
      created: now,
      updated: now,
    };
    this.interactions.set(interaction.id, interaction);
    if (!this.interactionSettings.hold) this.after(this.interactionSettings.durationMs, () => this.completeInteraction(interaction));
    return interaction;
  }

  completeInteraction(interaction: StoredInteraction): void {
    if (interaction.status !== 'in_progress') return;
    interaction.status = interaction.finalStatus;
    interaction.updated = new Date().toISOString();
    void this.deliverWebhooks(interaction, this.interactionSettings.webhook?.deliveries ?? 1);
  }

  /** Stops a running interaction as Gemini's cancel does; false when it had already ended. */
  cancelInteraction(interaction: StoredInteraction): boolean {
    if (interaction.status !== 'in_progress') return false;
    interaction.status = 'cancelled';
    interaction.updated = new Date().toISOString();
    void this.deliverWebhooks(interaction, this.interactionSettings.webhook?.deliveries ?? 1);
    return true;
  }

  /** Sequential, like a sender retrying the same event: each one carries the same webhook-id. */
  async deliverWebhooks(interaction: StoredInteraction, times: number, badSignature = false): Promise<void> {
    const target = this.interactionSettings.webhook;
    if (!target) return;
    for (let i = 0; i < times; i += 1) await this.deliverWebhook(interaction, target, badSignature);
  }

  private async deliverWebhook(interaction: StoredInteraction, target: WebhookTarget, badSignature: boolean): Promise<void> {
    const webhookId = `whevt_${interaction.id}_${interaction.status}`;
    const body = JSON.stringify({
      type: `interaction.${interaction.status}`,
      timestamp: new Date().toISOString(),
      data: { id: interaction.id, status: interaction.status, model: interaction.model },
    });
    const secret = badSignature ? `whsec_${Buffer.from('not-the-secret-at-all-not-it!').toString('base64')}` : target.secret ?? DEV_GEMINI_WEBHOOK_SECRET;
    let status = 0;
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signGeminiWebhook(secret, { id: webhookId, at: new Date(), body }) },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      status = response.status;
      await response.arrayBuffer();
    } catch {
      status = 0;
    }
    this.deliveries.push({ interactionId: interaction.id, webhookId, status, badSignature, atMs: Date.now() });
  }

  private after(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }
}

/** A response id that differs per call and per request. */
export function responseId(requestHash: string, callNumber: number): string {
  return createHash('sha256').update(`${requestHash}:${callNumber}`).digest('hex').slice(0, 24);
}
