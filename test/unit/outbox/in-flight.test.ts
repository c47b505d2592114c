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
