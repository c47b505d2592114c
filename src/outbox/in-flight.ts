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
   * Subscriptions whose last claim took their whole budget (none, when they
   * were full): they may have more due, which no NOTIFY will announce.
   */
  private readonly budgetBound = new Set<string>();

  /**
   * @param onSubscriptionRoom called when a subscription whose last claim
   *   was cut by its budget is down to half its cap: worth a claim now. Half,
   *   not one, so a fast subscriber at its cap costs a claim per half a cap
   *   of answers rather than one per answer.
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

  /**
   * What a claim made with `budgets` (this.subscriptionBudgets() when it was
   * sent; maxPerSubscription for the others) returned: a subscription that
   * got as many as its budget allowed is marked, and its answers wake a claim
   * once it is down to half its cap (see answered). The mark replaces a
   * wake-up at exactly half the cap on the way down, which a fast subscriber
   * never crossed when the claim refilled it only to half (its earlier
   * deliveries answered while the claim ran): its next deliveries then waited
   * for the poll interval, ~96 events/s to one subscriber in the outbox
   * benchmark instead of thousands.
   */
  claimed(rows: readonly { subscription_id: string }[], budgets: { ids: string[]; remaining: number[] }): void {
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row.subscription_id, (counts.get(row.subscription_id) ?? 0) + 1);
    const budgetOf = new Map(budgets.ids.map((id, i) => [id, budgets.remaining[i]!]));
    for (const [id, budget] of budgetOf) if ((counts.get(id) ?? 0) >= budget) this.budgetBound.add(id);
    for (const [id, n] of counts) if (!budgetOf.has(id) && n >= this.maxPerSubscription) this.budgetBound.add(id);
    // A full subscription that got nothing and whose answers all came in while the claim ran: no answer is left to wake a claim for it.
    for (const id of this.budgetBound) {
      if (!counts.has(id) && (this.onWire.get(id) ?? 0) <= Math.floor(this.maxPerSubscription / 2)) {
        this.budgetBound.delete(id);
        this.onSubscriptionRoom();
      }
    }
  }

  /** A claimed delivery goes on the wire. */
  sent(subscriptionId: string): void {
    this.unsettled++;
    this.onWire.set(subscriptionId, (this.onWire.get(subscriptionId) ?? 0) + 1);
  }

  /** Its answer (or error) arrived: the subscription has room again, the delivery still waits to be recorded. */
  answered(subscriptionId: string): void {
    const n = (this.onWire.get(subscriptionId) ?? 1) - 1;
    if (n <= Math.floor(this.maxPerSubscription / 2) && this.budgetBound.delete(subscriptionId)) this.onSubscriptionRoom();
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
