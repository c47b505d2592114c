import { InFlight } from '../../../src/outbox/in-flight';

const rows = (id: string, n: number) => Array.from({ length: n }, () => ({ subscription_id: id }));

/** Claims like the relay: budgets snapshotted, the rows reported, then each sent. */
function claim(inFlight: InFlight, id: string, n: number, budgets = inFlight.subscriptionBudgets()): void {
  inFlight.claimed(rows(id, n), budgets);
  for (let i = 0; i < n; i++) inFlight.sent(id);
}

describe('what a relay holds in flight, per subscription', () => {
  it('wakes a claim for a subscription its claim refilled only to half, once its answers bring it down (no wait for the poll)', () => {
    let wakes = 0;
    const inFlight = new InFlight(400, 64, () => wakes++);
    claim(inFlight, 'fast', 64);
    // The claim is sent at 32 on the wire; the other 32 answer while it runs.
    for (let i = 0; i < 32; i++) inFlight.answered('fast');
    expect(wakes).toBe(1);
    const during = inFlight.subscriptionBudgets();
    for (let i = 0; i < 32; i++) inFlight.answered('fast');
    claim(inFlight, 'fast', 32, during);
    // 32 on the wire, all from a claim its budget cut: their answers must wake the next claim.
    for (let i = 0; i < 32; i++) inFlight.answered('fast');
    expect(wakes).toBe(2);
  });

  it('does not wake for a subscription whose claim found fewer due deliveries than its budget', () => {
    let wakes = 0;
    const inFlight = new InFlight(400, 64, () => wakes++);
    claim(inFlight, 'quiet', 10);
    for (let i = 0; i < 10; i++) inFlight.answered('quiet');
    expect(wakes).toBe(0);
  });

  it('wakes at once for a full subscription that got nothing and whose answers all came in while the claim ran', () => {
    let wakes = 0;
    const inFlight = new InFlight(400, 4, () => wakes++);
    claim(inFlight, 'slow', 4);
    for (let i = 0; i < 2; i++) inFlight.answered('slow');
    expect(wakes).toBe(1);
    const full = { ids: ['slow'], remaining: [0] };
    for (let i = 0; i < 2; i++) inFlight.answered('slow');
    inFlight.claimed([], full);
    expect(wakes).toBe(2);
  });

  it('wakes once per half a cap of answers, not once per answer', () => {
    let wakes = 0;
    const inFlight = new InFlight(400, 64, () => wakes++);
    claim(inFlight, 'fast', 64);
    for (let i = 0; i < 64; i++) inFlight.answered('fast');
    expect(wakes).toBe(1);
  });
});

describe('the slow lane', () => {
  const budgetOf = (inFlight: InFlight, id: string) => {
    const { ids, remaining } = inFlight.subscriptionBudgets();
    const i = ids.indexOf(id);
    return i < 0 ? inFlight.unknownSubscriptionBudget : remaining[i]!;
  };

  it('gives an unknown subscription one probe, and its cap once it answered in time', () => {
    let now = 0;
    const inFlight = new InFlight(100, 8, undefined, { slowLaneSlots: 50, slowAfterMs: 1_000, probeWindow: 1, now: () => now });
    expect(budgetOf(inFlight, 'new')).toBe(1);
    const sentAt = inFlight.sent('new');
    expect(budgetOf(inFlight, 'new')).toBe(0);
    now += 10;
    inFlight.answered('new', sentAt);
    expect(budgetOf(inFlight, 'new')).toBe(8);
  });

  it('holds slow subscriptions together to the lane, probes included, whatever their number', () => {
    let now = 0;
    const inFlight = new InFlight(100, 8, undefined, { slowLaneSlots: 20, slowAfterMs: 1_000, probeWindow: 1, now: () => now });
    for (let i = 0; i < 12; i++) inFlight.sent(`slow-${i}`);
    now += 1_001;
    const { remaining } = inFlight.subscriptionBudgets();
    expect(remaining.reduce((a, b) => a + b, 0)).toBe(8);
    // A healthy subscription keeps its cap beside a full lane.
    const healthyAt = inFlight.sent('healthy');
    inFlight.answered('healthy', healthyAt);
    for (let i = 0; i < 8; i++) inFlight.sent('slow-0');
    expect(inFlight.subscriptionBudgets().remaining.reduce((a, b) => a + b, 0)).toBe(8);
    expect(budgetOf(inFlight, 'healthy')).toBe(8);
  });

  it('gives the relay its room back when subscribers that answered in time stop answering together: what they hold past the lane stops counting', () => {
    let now = 0;
    const inFlight = new InFlight(100, 40, undefined, { slowLaneSlots: 50, slowAfterMs: 1_000, probeWindow: 1, now: () => now });
    // Three colluding subscribers answer their probes in time, then take the whole relay and stop answering.
    for (const id of ['a', 'b', 'c']) inFlight.answered(id, inFlight.sent(id));
    inFlight.settle(3);
    for (const [id, n] of [['a', 40], ['b', 40], ['c', 20]] as const) for (let i = 0; i < n; i++) inFlight.sent(id);
    expect(inFlight.room).toBe(0);
    // Not yet slow: they hold the room, as any subscribers at their caps would.
    now += 1_000;
    expect(inFlight.room).toBe(0);
    // Past slowAfterMs they are slow: the lane holds 50 of their 100, the other 50 stop counting.
    now += 1;
    expect(inFlight.room).toBe(50);
    expect(inFlight.subscriptionBudgets().remaining.reduce((a, b) => a + b, 0)).toBe(0);
    expect(budgetOf(inFlight, 'healthy')).toBe(1);
    // Their requests time out (answered late): room as before, and they stay in the lane.
    now += 9_000;
    for (const [id, n] of [['a', 40], ['b', 40], ['c', 20]] as const) for (let i = 0; i < n; i++) inFlight.answered(id);
    inFlight.settle(100);
    expect(inFlight.room).toBe(100);
    expect(inFlight.subscriptionBudgets().remaining.reduce((a, b) => a + b, 0)).toBe(50);
  });

  it('wakes a relay waiting for room when a subscription turns slow by time alone (no answer comes to say so)', async () => {
    const inFlight = new InFlight(10, 10, undefined, { slowLaneSlots: 5, slowAfterMs: 50, probeWindow: 1 });
    inFlight.answered('stalls', inFlight.sent('stalls'));
    inFlight.settle(1);
    for (let i = 0; i < 10; i++) inFlight.sent('stalls');
    expect(inFlight.room).toBe(0);
    // As the relay's loop does; with no timer of its own this would wait forever (nothing answers).
    while (inFlight.room === 0) await inFlight.waitForRoom();
    expect(inFlight.room).toBe(5);
  });

  it('keeps a subscription whose attempt timed out in the lane until one is answered in time', () => {
    let now = 0;
    let wakes = 0;
    const inFlight = new InFlight(100, 4, () => wakes++, { slowLaneSlots: 2, slowAfterMs: 1_000, probeWindow: 1, now: () => now });
    const a = inFlight.sent('late');
    now += 5_000;
    inFlight.answered('late', a);
    expect(budgetOf(inFlight, 'late')).toBe(2);
    inFlight.sent('late');
    inFlight.sent('late');
    expect(budgetOf(inFlight, 'late')).toBe(0);
    // The lane held it back: an end of one of its deliveries wakes a claim.
    const before = wakes;
    now += 10;
    inFlight.answered('late');
    expect(wakes).toBe(before + 1);
  });
  it('forgets a subscription idle for 10 minutes (its budget is sent with every claim), which then probes again', () => {
    let now = 0;
    const inFlight = new InFlight(100, 8, undefined, { slowLaneSlots: 50, slowAfterMs: 1_000, probeWindow: 1, now: () => now });
    inFlight.answered('idle', inFlight.sent('idle'));
    expect(inFlight.subscriptionBudgets().ids).toEqual(['idle']);
    now += 10 * 60_000 + 1;
    expect(inFlight.subscriptionBudgets().ids).toEqual([]);
    expect(budgetOf(inFlight, 'idle')).toBe(1);
  });
});
