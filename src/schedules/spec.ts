/**
 * What a tenant sends to create or change a schedule, written once as zod
 * schemas (the route's body and the stored `spec` column), and its translation
 * into Temporal's ScheduleSpec and policies.
 */
import type { ScheduleOptions, ScheduleSpec } from '@temporalio/client';
import { z } from 'zod';

/**
 * Overlap of a slot's operation with the operations of earlier slots of the
 * same schedule that have not finished. `allow_all` (the default) starts it
 * anyway; `skip` starts nothing for the slot; `buffer_one` and `buffer_all`
 * wait until the earlier ones have finished, then start it (both keep every
 * slot: a slot is never dropped because another one waits).
 *
 * It is applied by the slot run (activities/start-scheduled-operation.ts),
 * not by Temporal: a slot run only starts an operation and ends, so
 * Temporal's own overlap policy would weigh slot runs against each other,
 * which overlap only while they cannot run at all (workers down, Temporal
 * restarting). Given to Temporal, `skip` and `buffer_one` dropped exactly the
 * slots an outage had delayed, inside the catch-up window: measured with a
 * 2 s schedule, a 3 s Temporal restart lost one slot and a 20 s worker outage
 * nine. Temporal therefore always runs slots with ALLOW_ALL.
 */
export const OverlapPolicies = ['allow_all', 'skip', 'buffer_one', 'buffer_all'] as const;
export type OverlapPolicy = (typeof OverlapPolicies)[number];

const timeZone = z
  .string()
  .min(1)
  .max(64)
  .refine((zone) => isTimeZone(zone), 'an IANA time zone such as Europe/Paris or UTC');

export const scheduleSpecSchema = z
  .object({
    /** Five-field cron (`0 9 * * MON-FRI`), evaluated in `timeZone`. */
    cron: z.string().min(1).max(200).optional().describe('cron expression, e.g. `0 9 * * MON-FRI`, in `timeZone`'),
    /** A slot every N seconds, counted from the epoch (so slots fall on round times). */
    intervalSeconds: z.number().int().min(1).max(366 * 86_400).optional().describe('one slot every N seconds (aligned to the epoch)'),
    timeZone: timeZone.default('UTC').describe('IANA time zone of `cron`; default UTC'),
    /** How long after an outage a missed slot still runs, in seconds. Default 3600 (Temporal's minimum is 10). */
    catchupWindowSeconds: z.number().int().min(10).max(366 * 86_400).default(3_600).describe('a slot missed during an outage still runs if the outage ended within this many seconds; default 3600'),
    overlap: z.enum(OverlapPolicies).default('allow_all').describe('what a slot does while an earlier slot has not started its operation yet; default allow_all'),
  })
  .strict()
  .refine((spec) => (spec.cron === undefined) !== (spec.intervalSeconds === undefined), { message: 'give exactly one of cron or intervalSeconds', path: ['cron'] });
export type ScheduleSpecInput = z.infer<typeof scheduleSpecSchema>;

export function toTemporalSpec(spec: ScheduleSpecInput): ScheduleSpec {
  return spec.cron !== undefined
    ? { cronExpressions: [spec.cron], timezone: spec.timeZone }
    : { intervals: [{ every: `${spec.intervalSeconds!} seconds` }], timezone: spec.timeZone };
}

/** Slot runs always overlap freely (see OverlapPolicies): the tenant's policy is applied to operations by the slot run. */
export function toTemporalPolicies(spec: ScheduleSpecInput): NonNullable<ScheduleOptions['policies']> {
  return { overlap: 'ALLOW_ALL', catchupWindow: `${spec.catchupWindowSeconds} seconds` };
}

/** One line for the Temporal UI (the schedule's note and each slot's summary) and the CLI. */
export function describeSpec(spec: ScheduleSpecInput): string {
  const when = spec.cron !== undefined ? `cron "${spec.cron}" (${spec.timeZone})` : `every ${spec.intervalSeconds} s`;
  return `${when}, catch-up ${spec.catchupWindowSeconds} s, overlap ${spec.overlap}`;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
