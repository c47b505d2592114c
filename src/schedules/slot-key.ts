/**
 * The idempotency key of one slot of a schedule: the schedule id and the
 * slot's nominal time (the time the spec names, before jitter or a catch-up
 * delay). Every run of one slot (the tick, a catch-up after an outage, a
 * backfill, a trigger racing the tick, the schedule recreated under its id)
 * derives the same key, so they are one operation.
 *
 * Readable rather than hashed, so an operator can go from a slot to its
 * operation (`GET /v1/operations/{type}/{key}`) by hand. It cannot meet
 * another schedule's key (schedule ids are random), and a caller who sends it
 * over HTTP on purpose reaches only their own tenant's slot, as a repeat.
 */
export function scheduleSlotKey(scheduleId: string, nominalTimeMs: number): string {
  return `${scheduleSlotKeyPrefix(scheduleId)}${new Date(nominalTimeMs).toISOString()}`;
}

/** What every slot key of one schedule starts with; the ISO time after it sorts slots by nominal time. */
export function scheduleSlotKeyPrefix(scheduleId: string): string {
  return `schedule:${scheduleId}:`;
}
