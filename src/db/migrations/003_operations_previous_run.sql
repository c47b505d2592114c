-- When an expired or released key is reserved again, the run of the previous
-- operation is remembered: a start that attaches to that run (it has not
-- closed yet) must not be taken for the new operation's run.
ALTER TABLE operations ADD COLUMN previous_run_id text;
