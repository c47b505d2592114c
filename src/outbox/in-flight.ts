/**
 * What a relay holds claimed: deliveries leased and not yet settled
 * (recorded, or left to their lease), at most `maxInFlight` in all, and
 * how many are on the wire per subscription, at most
 * `maxPerSubscription` each. The first bounds what a crash sends again;
 * the second keeps a subscriber that never answers to a bounded share of
 * the relay, so other tenants' deliveries still find room.
 */
export class InFlight {
  private unsettled = 0;
  private readonly onWire = new Map<string, number>();
  private roomFreed: (() => void) | undefined;
  private drained: (() => void) | undefined;

  /**
   * @param onSubscriptionRoom called when a subscription that was at its
   *   cap is down to half of it: worth a claim now. Half, not one, so a fast
   *   subscriber at its cap costs a claim per half a cap of answers rather
   *   than one per answer.
   */
  constructor(readonly maxInFlight: number, readonly maxPerSubscription: number, private readonly onSubscriptionRoom: () => void = () => undefined) {}

  get count(): number {
    return this.unsettled;
  }

  get room(): number {
    return this.maxInFlight - this.unsettled;
  }

  /** Subscriptions with deliveries on the wire and how many more each may take now (0 when full). */
  subscriptionBudgets(): { ids: string[]; remaining: number[] } {
    const ids: string[] = [];
    const remaining: number[] = [];
    for (const [id, n] of this.onWire) {
      ids.push(id);
      remaining.push(Math.max(0, this.maxPerSubscription - n));
    }
    return { ids, remaining };
  }

  /** A claimed delivery goes on the wire. */
  sent(subscriptionId: string): void {
    this.unsettled++;
    this.onWire.set(subscriptionId, (this.onWire.get(subscriptionId) ?? 0) + 1);
  }

  /** Its answer (or error) arrived: the subscription has room again, the delivery still waits to be recorded. */
  answered(subscriptionId: string): void {
    const n = (this.onWire.get(subscriptionId) ?? 1) - 1;
    if (n === Math.floor(this.maxPerSubscription / 2)) this.onSubscriptionRoom();
    if (n <= 0) this.onWire.delete(subscriptionId);
    else this.onWire.set(subscriptionId, n);
    this.roomFreed?.();
  }

  /** `n` deliveries are done with: recorded, or left to their lease. */
  settle(n: number): void {
    if (n === 0) return;
    this.unsettled -= n;
    this.roomFreed?.();
    if (this.unsettled === 0) this.drained?.();
  }

  /** Resolves at the next answer or settle, or at `release()`. */
  waitForRoom(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.roomFreed = () => {
        this.roomFreed = undefined;
        resolve();
      };
    });
  }

  /** Wakes a waitForRoom() (stop). */
  release(): void {
    this.roomFreed?.();
  }

  /** Resolves once nothing is unsettled. Bounded: every delivery times out, and recording gives up at its lease. */
  async drain(): Promise<void> {
    if (this.unsettled > 0) await new Promise<void>((resolve) => (this.drained = resolve));
  }
}
