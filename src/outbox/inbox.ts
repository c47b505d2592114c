import type pg from 'pg';
import { withTransaction } from '../db/transaction';

export interface InboxMessage {
  /** Who consumes; two consumers may each handle the same event once. */
  consumer: string;
  /** The producer's stable event id (e.g. the `webhook-id` header). */
  eventId: string;
}

export type InboxOutcome<T> = { duplicate: false; result: T } | { duplicate: true };

/**
 * Handles an incoming event at most once per consumer: the inbox row and the
 * handler's database effect commit in one transaction. If the process dies
 * before COMMIT, neither exists and the redelivery handles it; after COMMIT a
 * redelivery finds the row and does nothing. A concurrent duplicate waits on
 * the primary key until the first commits, then sees it as a duplicate.
 */
export async function handleOnce<T>(
  pool: pg.Pool,
  message: InboxMessage,
  handler: (tx: pg.PoolClient) => Promise<T>,
): Promise<InboxOutcome<T>> {
  return withTransaction(pool, async (tx) => {
    const { rowCount } = await tx.query(
      'INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [message.consumer, message.eventId],
    );
    if (rowCount === 0) return { duplicate: true } as const;
    return { duplicate: false, result: await handler(tx) } as const;
  });
}
