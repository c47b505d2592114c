/**
 * Lanes of a relay's in-flight capacity (see InFlight). Defaults turn the
 * lanes off (every subscription as if healthy), which is what a unit test of
 * the wake-ups wants; the relay turns them on.
 */
export interface InFlightLanes {
  /**
   * Deliveries on the wire to slow subscriptions, at most, in all. Default
   * maxInFlight (no reserve).
   */
  slowLaneSlots?: number;
  /**
   * A subscription with a delivery on the wire for longer than this, or whose
   * last attempt took longer (a timeout included), is slow. Default Infinity.
   */
  slowAfterMs?: number;
  /**
   * Deliveries on the wire to a subscription that has not yet answered in
   * time on this relay (new, or after the relay restarted). Default
   * maxPerSubscription.
   */
  probeWindow?: number;
  /** Clock, ms. Default performance.now. */
  now?: () => number;
}

/**
 * How long a subscription with nothing on the wire is remembered as slow or
 * proven. Every remembered one is sent with each claim (its budget), so the
 * memory holds the subscriptions of the last minutes, not of the relay's
 * life; one forgotten starts again with a probe (one answer's delay).
 */
const REMEMBER_MS = 10 * 60_000;

/**
 * What a relay holds claimed: deliveries leased and not yet settled
 * (recorded, or left to their lease), at most `maxInFlight` in all, and
 * how many are on the wire per subscription, at most
 * `maxPerSubscription` each. The first bounds what a crash sends again;
 * the second keeps a subscriber that never answers to a bounded share of
 * the relay.
 *
 * A per-subscription cap alone does not keep room for healthy subscribers:
 * five tenants whose ten subscriptions each never answer hold 5 × 10 × 64
 * requests, far more than a relay's slots, and every other tenant's
 * deliveries then wait for those requests' timeouts. So the capacity is
 * split in lanes, the way webhook senders isolate failing endpoints (a
 * slow queue) rather than size shares by tenant (a share per tenant fills
 * the relay just the same once there are enough slow tenants, and a relay
 * does not know how many tenants will turn up):
 * - slow subscriptions (a request on the wire past `slowAfterMs`, or their
 *   last attempt took longer, a timeout included) share the slow lane,
 *   `slowLaneSlots` in all; once it is taken they get nothing more until
 *   some of their requests end. Whatever their number, the rest of the
 *   relay stays free for subscribers that answer in time.
 * - a subscription that has not answered in time on this relay yet may
 *   have `probeWindow` (1) on the wire: a new subscriber that never
 *   answers holds one slot before it is known slow, not its whole cap.
 *   Probes count against the slow lane but are never refused by it, so a
 *   full slow lane cannot keep a healthy tenant's new subscription from
 *   its first delivery, and slow subscribers together hold at most the
 *   slow lane or one probe each, whichever is more.
 * - the others (answered in time, nothing on the wire too long) take up
 *   to `maxPerSubscription` each from the rest.
 * A subscriber that answers in time and then stops answering turns slow
 * once its oldest request is on the wire past `slowAfterMs`: its requests
 * then count in the slow lane, and what they hold beyond the lane no longer
 * counts against the relay's room (see `room`), so subscribers that stop
 * answering together (several tenants colluding, or one outage behind many
 * endpoints) cannot take the room of the others until their requests time
 * out. It stays in the slow lane until one of its attempts is answered in
 * time again.
 */
export class InFlight {
  private unsettled = 0;
  /** performance.now() of each delivery on the wire, per subscription, oldest first. */
  private readonly onWire = new Map<string, number[]>();
  /** Last attempt took longer than slowAfterMs (or never got an answer), with when it ended. */
  private readonly slow = new Map<string, number>();
  /** Answered in time at least once since they were last slow, with when that answer came. */
  private readonly proven = new Map<string, number>();
  /** The last budgets held a slow subscription back because the slow lane was taken: a slow delivery ending is worth a claim. */
  private slowLaneFull = false;
  private roomFreed: (() => void) | undefined;
  private drained: (() => void) | undefined;
  private readonly slowLaneSlots: number;
  private readonly slowAfterMs: number;
  private readonly probeWindow: number;
  private readonly now: () => number;

  /**
   * Subscriptions whose last claim took their whole budget (none, when they
   * were full): they may have more due, which no NOTIFY will announce.
   */
  private readonly budgetBound = new Set<string>();

  /**
   * @param onSubscriptionRoom called when a subscription whose last claim
   *   was cut by its budget is down to half its cap, or when the slow lane
   *   held subscriptions back and one of its deliveries ended: worth a claim
   *   now. Half, not one, so a fast subscriber at its cap costs a claim per
   *   half a cap of answers rather than one per answer.
   */
  constructor(
    readonly maxInFlight: number,
    readonly maxPerSubscription: number,
    private readonly onSubscriptionRoom: () => void = () => undefined,
    lanes: InFlightLanes = {},
  ) {
    this.slowLaneSlots = lanes.slowLaneSlots ?? maxInFlight;
    this.slowAfterMs = lanes.slowAfterMs ?? Infinity;
    this.probeWindow = Math.min(lanes.probeWindow ?? maxPerSubscription, maxPerSubscription);
    this.now = lanes.now ?? (() => performance.now());
  }

  get count(): number {
    return this.unsettled;
  }

  /**
   * How many more deliveries a claim may take: `maxInFlight` minus what is
   * unsettled, not counting what slow subscriptions hold on the wire beyond
   * the slow lane. Those requests were given while their subscribers looked
   * healthy; counted, they would keep every other subscription waiting for
   * their timeouts. So the relay may hold more than `maxInFlight` on the
   * wire: at most one fast share (`maxInFlight` - `slowLaneSlots`) more for
   * every `slowAfterMs` of the delivery timeout (five with the defaults, 2 s
   * and 10 s), all of it to subscribers that stopped answering; a crash sends
   * that again to them, and no more than before to anyone else.
   */
  get room(): number {
    return this.maxInFlight - this.unsettled + this.slowOverflow(this.now());
  }

  /** What a claim may take from a subscription absent from subscriptionBudgets(): one this relay knows nothing of. */
  get unknownSubscriptionBudget(): number {
    return this.probeWindow;
  }

  /**
   * Every subscription this relay knows (on the wire, slow or proven) and
   * how many more each may take now (0 when full, or slow with the slow
   * lane taken); the others get unknownSubscriptionBudget.
   */
  subscriptionBudgets(): { ids: string[]; remaining: number[] } {
    const now = this.now();
    const ids: string[] = [];
    const remaining: number[] = [];
    const slowIds: string[] = [];
    /** On the wire to slow subscriptions and probes. */
    let slowOnWire = 0;
    this.forget(now);
    for (const id of new Set([...this.onWire.keys(), ...this.slow.keys(), ...this.proven.keys()])) {
      const wire = this.onWire.get(id)?.length ?? 0;
      if (this.isSlow(id, now)) {
        slowIds.push(id);
        slowOnWire += wire;
        continue;
      }
      // A probe counts against the slow lane (its subscriber may turn out slow, and it then holds its slot
      // there) but is never refused by it: a full lane cannot keep a new healthy subscription waiting.
      if (!this.proven.has(id)) slowOnWire += wire;
      ids.push(id);
      remaining.push(Math.max(0, (this.proven.has(id) ? this.maxPerSubscription : this.probeWindow) - wire));
    }
    let laneRoom = Math.max(0, this.slowLaneSlots - slowOnWire);
    this.slowLaneFull = false;
    // From a random place in the list, so that when the lane is short no slow subscription is always the one left out.
    const start = Math.floor(Math.random() * slowIds.length);
    for (let k = 0; k < slowIds.length; k++) {
      const id = slowIds[(start + k) % slowIds.length]!;
      const wanted = Math.max(0, this.maxPerSubscription - (this.onWire.get(id)?.length ?? 0));
      const given = Math.min(wanted, laneRoom);
      if (given < wanted) this.slowLaneFull = true;
      laneRoom -= given;
      ids.push(id);
      remaining.push(given);
    }
    return { ids, remaining };
  }

  /**
   * What a claim made with `budgets` (this.subscriptionBudgets() when it was
   * sent; unknownSubscriptionBudget for the others) returned: a subscription
   * that got as many as its budget allowed is marked, and its answers wake a
   * claim once it is down to half its cap (see answered). The mark replaces
   * a wake-up at exactly half the cap on the way down, which a fast
   * subscriber never crossed when the claim refilled it only to half (its
   * earlier deliveries answered while the claim ran): its next deliveries
   * then waited for the poll interval, ~96 events/s to one subscriber in the
   * outbox benchmark instead of thousands.
   */
  claimed(rows: readonly { subscription_id: string }[], budgets: { ids: string[]; remaining: number[] }): void {
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row.subscription_id, (counts.get(row.subscription_id) ?? 0) + 1);
    const budgetOf = new Map(budgets.ids.map((id, i) => [id, budgets.remaining[i]!]));
    for (const [id, budget] of budgetOf) if ((counts.get(id) ?? 0) >= budget) this.budgetBound.add(id);
    for (const [id, n] of counts) if (!budgetOf.has(id) && n >= this.probeWindow) this.budgetBound.add(id);
    // A full subscription that got nothing and whose answers all came in while the claim ran: no answer is left to wake a claim for it.
    for (const id of this.budgetBound) {
      if (!counts.has(id) && (this.onWire.get(id)?.length ?? 0) <= Math.floor(this.maxPerSubscription / 2)) {
        this.budgetBound.delete(id);
        this.onSubscriptionRoom();
      }
    }
  }

  /** A claimed delivery goes on the wire; returns its send time, to hand back to answered(). */
  sent(subscriptionId: string): number {
    this.unsettled++;
    const at = this.now();
    const times = this.onWire.get(subscriptionId);
    if (times) times.push(at);
    else this.onWire.set(subscriptionId, [at]);
    return at;
  }

  /**
   * Its answer (or error) arrived: the subscription has room again, the
   * delivery still waits to be recorded. An attempt that took longer than
   * slowAfterMs (a timeout included) makes its subscription slow; one in
   * time makes it proven.
   * @param sentAtMs what sent() returned for it. Default the oldest on the wire.
   */
  answered(subscriptionId: string, sentAtMs?: number): void {
    const now = this.now();
    const wasSlow = this.isSlow(subscriptionId, now);
    const times = this.onWire.get(subscriptionId) ?? [];
    const index = sentAtMs === undefined ? 0 : Math.max(0, times.indexOf(sentAtMs));
    const [startedAt] = times.splice(index, 1);
    if (startedAt !== undefined && now - startedAt <= this.slowAfterMs) {
      this.slow.delete(subscriptionId);
      this.proven.set(subscriptionId, now);
    } else if (startedAt !== undefined) {
      this.proven.delete(subscriptionId);
      this.slow.set(subscriptionId, now);
    }
    const n = times.length;
    if (n <= Math.floor(this.maxPerSubscription / 2) && this.budgetBound.delete(subscriptionId)) this.onSubscriptionRoom();
    else if (wasSlow && this.slowLaneFull) {
      this.slowLaneFull = false;
      this.onSubscriptionRoom();
    }
    if (n === 0) this.onWire.delete(subscriptionId);
    this.roomFreed?.();
  }

  /** `n` deliveries are done with: recorded, or left to their lease. */
  settle(n: number): void {
    if (n === 0) return;
    this.unsettled -= n;
    this.roomFreed?.();
    if (this.unsettled === 0) this.drained?.();
  }

  /**
   * Resolves at the next answer or settle, at `release()`, or when a
   * subscription with requests on the wire turns slow by time alone (its
   * oldest passes `slowAfterMs`), which can free room (see `room`) with no
   * answer to say so.
   */
  waitForRoom(): Promise<void> {
    return new Promise<void>((resolve) => {
      const turnsSlowInMs = this.nextTurnSlowInMs(this.now());
      const timer = turnsSlowInMs === undefined ? undefined : setTimeout(() => this.roomFreed?.(), Math.ceil(turnsSlowInMs) + 2);
      this.roomFreed = () => {
        this.roomFreed = undefined;
        if (timer) clearTimeout(timer);
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

  /** What slow subscriptions hold on the wire beyond the slow lane. */
  private slowOverflow(now: number): number {
    let slowOnWire = 0;
    for (const [id, times] of this.onWire) if (this.isSlow(id, now)) slowOnWire += times.length;
    return Math.max(0, slowOnWire - this.slowLaneSlots);
  }

  /** In how many ms the next subscription not yet slow, with requests on the wire, turns slow by their age; undefined when none will. */
  private nextTurnSlowInMs(now: number): number | undefined {
    if (!Number.isFinite(this.slowAfterMs)) return undefined;
    let soonest: number | undefined;
    for (const [id, times] of this.onWire) {
      if (times.length === 0 || this.isSlow(id, now)) continue;
      const inMs = times[0]! + this.slowAfterMs - now;
      if (soonest === undefined || inMs < soonest) soonest = inMs;
    }
    return soonest === undefined ? undefined : Math.max(0, soonest);
  }

  private isSlow(id: string, now: number): boolean {
    if (this.slow.has(id)) return true;
    const oldest = this.onWire.get(id)?.[0];
    return oldest !== undefined && now - oldest > this.slowAfterMs;
  }

  /** Drops what is remembered of subscriptions with nothing on the wire whose last attempt ended over REMEMBER_MS ago. */
  private forget(now: number): void {
    for (const memory of [this.slow, this.proven]) {
      for (const [id, at] of memory) if (now - at > REMEMBER_MS && !this.onWire.has(id)) memory.delete(id);
    }
  }
}
