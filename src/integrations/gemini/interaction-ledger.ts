/**
 * The submission ledger of background interactions (generate-report): the
 * one module that issues SQL on gemini_interactions (the activities, and the
 * webhook route's counter). One row per (operation, step), counted before each paid
 * create call, its interaction id recorded with the answer, its end recorded
 * once by the poll that sees it.
 */
import type { Queryable } from '../../db/pool';

export interface LedgerKey {
  operationId: string;
  /** `interaction:<model>`: the guard's step. */
  step: string;
}

/**
 * Counts a submission that is about to leave: the row created on the first,
 * its count raised on every later one, in one statement. Returns how many
 * submissions the row has now counted (more than 1: an earlier one got no
 * recorded id, and this one may start a second paid interaction).
 */
export async function countSubmission(db: Queryable, key: LedgerKey & { workflowId: string; model: string }): Promise<number> {
  const { rows } = await db.query<{ submit_attempts: number }>(
    `INSERT INTO gemini_interactions (operation_id, step, workflow_id, model, submit_attempts, submitted_at)
     VALUES ($1, $2, $3, $4, 1, now())
     ON CONFLICT (operation_id, step) DO UPDATE
        SET submit_attempts = gemini_interactions.submit_attempts + 1, submitted_at = now()
     RETURNING submit_attempts`,
    [key.operationId, key.step, key.workflowId, key.model],
  );
  return rows[0]!.submit_attempts;
}

/** Takes back the count of a submission Gemini answered with an error: no interaction was started. */
export async function uncountSubmission(db: Queryable, key: LedgerKey): Promise<void> {
  await db.query('UPDATE gemini_interactions SET submit_attempts = submit_attempts - 1 WHERE operation_id = $1 AND step = $2', [key.operationId, key.step]);
}

/** Records the id Gemini gave the submitted interaction (in the transaction that stores the answer). */
export async function recordSubmitted(db: Queryable, key: LedgerKey, interactionId: string): Promise<void> {
  await db.query(`UPDATE gemini_interactions SET interaction_id = $3, status = 'submitted' WHERE operation_id = $1 AND step = $2`, [key.operationId, key.step, interactionId]);
}

/**
 * Counts a Gemini webhook about an interaction and returns whose it is, or
 * nothing for an id no submission recorded (a forged or foreign webhook).
 */
export async function countWebhook(db: Queryable, interactionId: string): Promise<{ workflowId: string; operationId: string } | undefined> {
  const { rows } = await db.query<{ workflow_id: string; operation_id: string }>(
    `UPDATE gemini_interactions SET webhooks_received = webhooks_received + 1
      WHERE interaction_id = $1 RETURNING workflow_id, operation_id`,
    [interactionId],
  );
  return rows[0] ? { workflowId: rows[0].workflow_id, operationId: rows[0].operation_id } : undefined;
}

/**
 * Records the end of an interaction once: the first caller gets its model and
 * step back, every later one (a retried poll, a poll after the webhook's, a
 * cancel after either) nothing.
 */
export async function recordInteractionEnd(
  db: Queryable,
  input: { interactionId: string; status: 'completed' | 'failed'; completedBy: 'webhook' | 'poll' | 'cancel'; error?: string },
): Promise<{ model: string; step: string } | undefined> {
  const { rows } = await db.query<{ model: string; step: string }>(
    `UPDATE gemini_interactions
        SET status = $2, completed_by = $3, completed_at = now(), error = $4
      WHERE interaction_id = $1 AND completed_at IS NULL
      RETURNING model, step`,
    [input.interactionId, input.status, input.completedBy, input.error ?? null],
  );
  return rows[0];
}
