-- Every Gemini call attempt, whatever its outcome: the `attempts[]` of a result
-- and the audit of what was paid for. One row per (operation, model, activity attempt).
CREATE TABLE gemini_attempts (
  operation_id    uuid NOT NULL,
  model           text NOT NULL,
  attempt         integer NOT NULL,
  workflow_id     text NOT NULL,
  outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'rate_limited', 'unavailable', 'rejected', 'safety_blocked')),
  duration_ms     integer NOT NULL,
  prompt_tokens   integer,
  output_tokens   integer,
  error           text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operation_id, model, attempt)
);
