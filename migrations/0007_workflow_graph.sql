-- GET /api/workflows/graph counts, per workflow, the distinct annotators holding an open batch.
-- Open assignments are few next to the whole history, so this stays small and the count is an
-- index-only scan; status changes are rare, so the index costs the webhook path nothing.
CREATE INDEX assignments_open_workflow_annotator_idx
  ON assignments (workflow_id, annotator_id)
  WHERE status IN ('pending', 'in_progress');
