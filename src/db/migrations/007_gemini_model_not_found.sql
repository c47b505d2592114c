-- A 404 from Gemini (a retired or unknown model) is an attempt outcome of its
-- own: unlike a rejected request, the fallback chain moves on to the next model.
ALTER TABLE gemini_attempts DROP CONSTRAINT gemini_attempts_outcome_check;
ALTER TABLE gemini_attempts ADD CONSTRAINT gemini_attempts_outcome_check
  CHECK (outcome IN ('succeeded', 'rate_limited', 'unavailable', 'rejected', 'safety_blocked', 'model_not_found'));
