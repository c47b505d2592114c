import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { withTransaction } from '../db/transaction';

/** A delivery a relay has leased, with what it needs to send it. */
export interface ClaimedDelivery {
  event_id: string;
  aggregate_id: string;
  subscription_id: string;
  /** Including this one. */
  attempts: number;
  event_type: string;
  payload: unknown;
  created_at: Date;
  /** The event's age at claim time, by PostgreSQL's clock (the relay's may differ). */
  age_ms: number;
  url: string;
  secret_sealed: string;
}

/**
 * How long a relay keeps trying to record outcomes while PostgreSQL is away
 * (restarting, failing over), after the delivery timeout. Part of the lease.
 */
export const recordWindowMs = 12_000;
/**
 * Lease time that nothing in the relay spends on purpose: the claim's own
 * round trip, event-loop stalls and GC pauses, timers firing late on a busy
 * machine. Keeps the relay's last record attempt clear of the lease's end.
 */
const LEASE_SLACK_MS = 2_000;

/**
 * The lease a relay takes on what it claims. One statement picks due
 * deliveries `FOR UPDATE SKIP LOCKED` and leases them (`locked_until`,
 * `locked_by`) before any HTTP call, so two relays never take the same
 * delivery. We lease rather than keep the rows locked in a transaction
 * across the HTTP call because a slow subscriber (up to the delivery
 * timeout) would then pin one connection and one open transaction per
 * batch, and a PostgreSQL restart would abort that transaction and unlock
 * every row the subscribers had already received.
 *
 * The lease covers everything a claimed delivery can take: the delivery (its
 * timeout runs from the claim, so waiting for a connection counts), then up
 * to `recordWindowMs` of writing the outcome (waiting behind the statement
 * before it, retries while PostgreSQL is away), plus LEASE_SLACK_MS; the
 * relay gives up recording just before the lease runs out. If a relay dies
 * after the subscriber received an event but before it recorded it, or
 * cannot record it within the lease, the event goes out again with the same
 * `webhook-id` once the lease has run out; the subscriber's inbox drops the
 * repeat. The old lease, 2 × timeout + 5 s, was shorter than the recording
 * retries alone for timeouts under ~1 s, so another relay redelivered while
 * this one was still recording.
 */
export function leaseMsFor(deliveryTimeoutMs: number): number {
  return deliveryTimeoutMs + recordWindowMs + LEASE_SLACK_MS;
}

/**
 * Planner settings for the claim's transaction; see `CLAIM_DUE_DELIVERIES`.
 * Exported with the statement so a test can plan exactly what the relay runs.
 */
export const CLAIM_PLANNER_SETTINGS = 'SET LOCAL enable_sort = off';

/**
 * Leases up to $1 due deliveries for $2 ms to relay $3, and returns them with
 * their event and subscription. Due: pending, its retry time reached, not
 * leased by a live relay, its subscription active, and the earliest pending
 * event of its operation for that subscription (the relay's ordering
 * promise). `FOR UPDATE ... SKIP LOCKED` keeps two relays' claims apart.
 *
 * Fair across subscriptions (and so across tenants): the statement visits
 * each active subscription and takes at most its budget of due deliveries
 * from it ($4/$5: the subscriptions this relay already has on the wire and
 * how many more each may take; $6 for the others), in due order within it.
 * One global walk in due order let a burst of one tenant's 10,000 events
 * fill every claim while another tenant's first delivery waited behind
 * them; now that tenant's subscriber holds at most its budget and the claim
 * reaches the next subscription's rows at once. The walk over subscriptions
 * starts at a random id ($7) and wraps around, so when more subscriptions
 * have work than one claim takes, none is always last. Its cost grows with
 * the number of active subscriptions (one index probe each), which the
 * per-tenant cap bounds.
 *
 * It opens with a comment naming it, so that an operator (and a test) finds it in
 * pg_stat_activity, whose `query` column keeps only the first
 * track_activity_query_size bytes (default 1024) of this long statement.
 *
 * Written so that stale planner statistics cannot make it expensive.
 * `deliveries` is a queue table: its share of pending rows swings from none
 * to thousands within seconds (a burst, a subscriber coming back), far faster
 * than autovacuum's ANALYZE follows. Planned with statistics that said
 * "almost nothing is pending", an earlier claim collected and sorted every
 * due row (a bitmap scan over the due index, entries of rows delivered since
 * included, and the ordering check for each) before its LIMIT applied:
 * auto_explain in the outbox benchmark recorded up to 25,000 buffer visits
 * and 200 ms for one 200-row claim. Three choices keep it a walk of each
 * subscription's due index in order that stops at its budget:
 * - `enable_sort = off` (CLAIM_PLANNER_SETTINGS), for the claim's
 *   transaction only: no plan that sorts the due rows can win, so the
 *   (subscription, due time, seq) index gives the order and the LIMIT ends
 *   the scan. PostgreSQL has no per-statement hints; this is the narrowest
 *   form of one.
 * - The ordering check is a scalar subquery, which always runs per candidate
 *   as a probe of the order index. Written as NOT EXISTS it was planned as an
 *   anti-join, which the same stale statistics turned into a full scan of
 *   that index for every candidate.
 * - The lease is written by row address (ctid) of the rows the first step
 *   locked: a TID scan, never a join the planner could turn into a scan of
 *   the table. They are locked, so their addresses hold until the UPDATE. A
 *   row another transaction changed after this statement's snapshot was
 *   taken is locked but not leased, and stays due for the next claim.
 */
export const CLAIM_DUE_DELIVERIES = `
  /* onceflow relay claim */
  WITH budget AS (
    SELECT * FROM unnest($4::uuid[], $5::int[]) AS b (subscription_id, remaining)),
  active AS (
    (SELECT s.subscription_id FROM subscriptions s WHERE s.status = 'active' AND s.subscription_id >= $7::uuid)
    UNION ALL
    (SELECT s.subscription_id FROM subscriptions s WHERE s.status = 'active' AND s.subscription_id < $7::uuid)),
  due AS (
    SELECT c.ctid
      FROM active a
      CROSS JOIN LATERAL (
        SELECT d.ctid
          FROM deliveries d
         WHERE d.subscription_id = a.subscription_id
           AND d.status = 'pending'
           AND d.next_attempt_at <= now()
           AND (d.locked_until IS NULL OR d.locked_until < now())
           AND d.seq = (SELECT earliest.seq FROM deliveries earliest
                         WHERE earliest.subscription_id = d.subscription_id
                           AND earliest.aggregate_id = d.aggregate_id
                           AND earliest.status = 'pending'
                         ORDER BY earliest.seq
                         LIMIT 1)
         ORDER BY d.next_attempt_at, d.seq
         LIMIT COALESCE((SELECT b.remaining FROM budget b WHERE b.subscription_id = a.subscription_id), $6)
         FOR UPDATE OF d SKIP LOCKED) c
     LIMIT $1),
  leased AS (
    UPDATE deliveries
       SET locked_until = now() + make_interval(secs => $2 / 1000.0), locked_by = $3, attempts = attempts + 1
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM due))
    RETURNING event_id, aggregate_id, subscription_id, attempts)
  SELECT l.event_id, l.aggregate_id, l.subscription_id, l.attempts,
         e.event_type, e.payload, e.created_at, s.url, s.secret_sealed,
         (EXTRACT(EPOCH FROM now() - e.created_at) * 1000)::float8 AS age_ms
    FROM leased l
    JOIN outbox_events e ON e.event_id = l.event_id
    JOIN subscriptions s ON s.subscription_id = l.subscription_id`;

export interface ClaimRequest {
  limit: number;
  leaseMs: number;
  relayId: string;
  /** Deliveries one subscription may contribute, unless `subscriptionBudgets` says otherwise. Default `limit`. */
  perSubscription?: number;
  /** Subscriptions the relay already has on the wire, and how many more each may take now. */
  subscriptionBudgets?: { ids: string[]; remaining: number[] };
}

/** The parameters of CLAIM_DUE_DELIVERIES for a request, in order; exported so the plan test runs exactly this. */
export function claimParameters(claim: ClaimRequest): unknown[] {
  return [
    claim.limit,
    claim.leaseMs,
    claim.relayId,
    claim.subscriptionBudgets?.ids ?? [],
    claim.subscriptionBudgets?.remaining ?? [],
    claim.perSubscription ?? claim.limit,
    randomUUID(),
  ];
}

/** Runs `CLAIM_DUE_DELIVERIES` in a transaction of its own, under `CLAIM_PLANNER_SETTINGS`. */
export function claimDueDeliveries(pool: pg.Pool, claim: ClaimRequest): Promise<ClaimedDelivery[]> {
  return withTransaction(pool, async (tx) => {
    await tx.query(CLAIM_PLANNER_SETTINGS);
    const { rows } = await tx.query<ClaimedDelivery>(CLAIM_DUE_DELIVERIES, claimParameters(claim));
    return rows;
  });
}
