-- The submission ledger of background interactions (generate-report): one row
-- per (operation, step), reserved before the paid create call, the
-- interaction id recorded right after it. A retried submission that finds an
-- id reuses it instead of paying for a second interaction.
CREATE TABLE gemini_interactions (
  operation_id     uuid NOT NULL,
  step             text NOT NULL,
  workflow_id      text NOT NULL,
  model            text NOT NULL,
  -- NULL until the create call answered; a row with submit_attempts > 0 and no
  -- id is the one window that can cost a second interaction (see the activity)
  interaction_id   text UNIQUE,
  status           text NOT NULL DEFAULT 'reserved'
                   CHECK (status IN ('reserved', 'submitted', 'completed', 'failed')),
  -- create calls that may have started an interaction: counted before each
  -- call, taken back when Gemini answers with an error (nothing started)
  submit_attempts  integer NOT NULL DEFAULT 0,
  -- completion webhooks accepted for this interaction (after signature check and dedupe)
  webhooks_received integer NOT NULL DEFAULT 0,
  -- how the workflow learned the interaction was done: 'webhook' or 'poll'
  completed_by     text,
  error            text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  submitted_at     timestamptz,
  completed_at     timestamptz,
  PRIMARY KEY (operation_id, step)
);
