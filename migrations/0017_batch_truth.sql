-- Label Studio is the truth for a batch (issue 11, part A): what a batch is waiting on, tasks
-- deleted in Label Studio, tasks added there by hand, and the workflow's batch expiry.

-- The batch's current problem (src/domain/batch-decision.ts, batchProblem): a code, words, and
-- since when. null when nothing is wrong. Appearing and clearing each write an event.
ALTER TABLE assignments
  ADD COLUMN problem_code          varchar(32),
  ADD COLUMN problem_message       text,
  ADD COLUMN problem_since         timestamptz,
  -- Tasks deleted in Label Studio: their images went back to the queue and the batch finishes
  -- without them (task_count no longer counts them).
  ADD COLUMN removed_task_count    integer NOT NULL DEFAULT 0 CHECK (removed_task_count >= 0),
  -- Tasks in the batch's Label Studio project that LabelFleet did not create (ignored), as of
  -- the last comparison.
  ADD COLUMN unknown_ls_task_count integer NOT NULL DEFAULT 0 CHECK (unknown_ls_task_count >= 0),
  ADD CONSTRAINT assignments_problem_check CHECK ((problem_code IS NULL) = (problem_since IS NULL));

-- A task deleted in Label Studio: status 'removed', its Label Studio id kept here (ls_task_id is
-- cleared, so no late webhook about it finds the task).
ALTER TABLE assignment_tasks
  ADD COLUMN removed_ls_task_id integer,
  ADD COLUMN removed_at         timestamptz,
  DROP CONSTRAINT assignment_tasks_status_check,
  ADD CONSTRAINT assignment_tasks_status_check CHECK (status IN ('open', 'annotated', 'removed'));

-- A batch untouched by its annotator this many hours is reclaimed (cancelled, images released).
-- null: batches never expire.
ALTER TABLE workflows
  ADD COLUMN expiry_hours integer CHECK (expiry_hours BETWEEN 1 AND 8760);
