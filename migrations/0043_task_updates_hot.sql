-- Webhook ingestion at the database's pace (issue 15): annotating a task is a HOT update.
--
-- Applying an annotation rewrites its task row (result, status, ls_annotation_id, timestamps).
-- Two indexes held columns that change then, so every event wrote a new entry into each of the
-- table's ten indexes — half of what applying an event cost the database. Without them, and
-- with room on the page for the row's new version, the update stays on its page and touches no
-- index (a heap-only tuple):
--
-- - assignment_tasks_assignment_id_idx (assignment_id, status): every query reaches a batch's
--   tasks by assignment_id, which assignment_tasks_assignment_order_idx (assignment_id, id)
--   serves; the status is then read from the batch's rows.
-- - assignment_tasks_ls_annotation_idx (ls_annotation_id): only a deletion looks tasks up by the
--   annotation they hold (labelfleet_delete_annotations), always with its annotator, so it goes
--   annotator → batches (assignments_annotator_id_idx) → their tasks, narrowed to the project
--   Label Studio names.
--
-- fillfactor 40: a task row grows from ~150 bytes to ~550 when its result lands; pages filled to
-- 40 % keep that growth on the page. Pages written from now on (new batches) follow it.
DROP INDEX assignment_tasks_assignment_id_idx;
DROP INDEX assignment_tasks_ls_annotation_idx;
ALTER TABLE assignment_tasks SET (fillfactor = 40);
