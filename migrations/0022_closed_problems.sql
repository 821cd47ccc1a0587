-- Closed batches that still show a problem (cancelled through the API, say) are found by every
-- reconcile pass to clear it (orchestrator/batches-step.ts recordProblems); this partial index
-- keeps that lookup empty-cheap however many batches have ever closed.
CREATE INDEX assignments_closed_problem_idx ON assignments (id)
  WHERE problem_code IS NOT NULL AND status NOT IN ('pending', 'in_progress');
