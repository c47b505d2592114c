/**
 * What a tenant sends to create or change a schedule, written once as zod
 * schemas (the route's body and the stored `spec` column), and its translation
 * into Temporal's ScheduleSpec and policies.
 */
import type { ScheduleOptions, ScheduleOverlapPolicy, ScheduleSpec } from '@temporalio/client';
import { z } from 'zod';

/**
 * Overlap of slot runs. A slot run ends as soon as its operation is started
 * (the operation is its own workflow), so this decides what happens when a
 * slot comes due while an earlier slot has not started its operation yet (the
 * workers are down, say). `allow_all` (the default) lets every due slot start
 * its own operation once the workers are back; `skip` drops such slots.
 * Cancelling or terminating the other run is not offered: it would only
 * interrupt a start that is idempotent anyway.
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

export function toTemporalPolicies(spec: ScheduleSpecInput): NonNullable<ScheduleOptions['policies']> {
  return { overlap: spec.overlap.toUpperCase() as ScheduleOverlapPolicy, catchupWindow: `${spec.catchupWindowSeconds} seconds` };
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
