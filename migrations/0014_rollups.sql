-- Reads that do not grow with history (issue 15): counters and rollups kept by triggers as rows
-- change, and indexes for every list filter.
--
-- The rule for assignments: a closed assignment (any status but pending and in_progress) is
-- history and is counted in the rollups below; an open one is current work and is read live
-- through the partial index assignments_open_workflow_annotator_idx (migration 0007). So the
-- rollups change only when an assignment closes, reopens or is removed — never on a reservation
-- (which inserts a pending row) and never on a webhook (which bumps completed_count of an
-- in_progress row) — and a read costs the number of workflows or annotators plus the open work,
-- whatever the history.
--
-- Row-level triggers with WHEN conditions: a row whose counted columns did not change never calls
-- a function, so the webhook's UPDATEs of assignments and annotators cost what they did. Each call
-- applies the row's old contribution (-1) and new one (+1) in one upsert per rollup, ordered by
-- key, so transactions that each move one row take the counter rows in one global order.
-- test/integration/rollups.test.ts compares every rollup with a from-scratch aggregate after a
-- random mix of inserts, updates and deletes.

-- ---------------------------------------------------------------------------------------------
-- Annotators by status and role: the X-Total-Count of GET /api/annotators, for every combination
-- of its filters (status, roleId), is a sum over at most 7 × roles rows.
CREATE TABLE annotator_counts (
  status     varchar(16) NOT NULL,
  role_id    integer NOT NULL,                        -- 0: no role
  annotators integer NOT NULL DEFAULT 0,
  PRIMARY KEY (status, role_id)
);

CREATE FUNCTION annotator_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotator_counts AS c (status, role_id, annotators)
  SELECT d.status, d.role_id, sum(d.n)::int
    FROM (SELECT OLD.status, coalesce(OLD.role_id, 0), -1 WHERE TG_OP <> 'INSERT'
          UNION ALL
          SELECT NEW.status, coalesce(NEW.role_id, 0), 1 WHERE TG_OP <> 'DELETE') AS d (status, role_id, n)
   GROUP BY d.status, d.role_id
   ORDER BY d.status, d.role_id
  ON CONFLICT (status, role_id) DO UPDATE SET annotators = c.annotators + EXCLUDED.annotators;
  RETURN NULL;
END $$;

CREATE FUNCTION annotator_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM annotator_counts;
  RETURN NULL;
END $$;

CREATE TRIGGER annotators_counts_ins AFTER INSERT ON annotators
  FOR EACH ROW EXECUTE FUNCTION annotator_counts_apply();
CREATE TRIGGER annotators_counts_upd AFTER UPDATE OF status, role_id ON annotators
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.role_id IS DISTINCT FROM NEW.role_id)
  EXECUTE FUNCTION annotator_counts_apply();
CREATE TRIGGER annotators_counts_del AFTER DELETE ON annotators
  FOR EACH ROW EXECUTE FUNCTION annotator_counts_apply();
CREATE TRIGGER annotators_counts_truncate AFTER TRUNCATE ON annotators
  FOR EACH STATEMENT EXECUTE FUNCTION annotator_counts_clear();

INSERT INTO annotator_counts (status, role_id, annotators)
SELECT status, coalesce(role_id, 0), count(*) FROM annotators GROUP BY 1, 2;

-- ---------------------------------------------------------------------------------------------
-- Closed assignments per workflow and status (graph stats, assignment list totals) and per
-- annotator and status (monitoring's completion rate, assignment list totals).
CREATE TABLE workflow_assignment_counts (
  workflow_id     integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  status          varchar(16) NOT NULL,
  assignments     integer NOT NULL DEFAULT 0,
  completed_tasks bigint NOT NULL DEFAULT 0,          -- sum of their completed_count
  PRIMARY KEY (workflow_id, status)
);

CREATE TABLE annotator_assignment_counts (
  annotator_id integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  status       varchar(16) NOT NULL,
  assignments  integer NOT NULL DEFAULT 0,
  PRIMARY KEY (annotator_id, status)
);

CREATE FUNCTION assignment_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- d: the row's contribution before (-1) and after (+1), each only while closed.
  INSERT INTO workflow_assignment_counts AS c (workflow_id, status, assignments, completed_tasks)
  SELECT d.workflow_id, d.status, sum(d.n)::int, sum(d.n * d.tasks)
    FROM (SELECT OLD.workflow_id, OLD.status, -1, OLD.completed_count
           WHERE TG_OP <> 'INSERT' AND OLD.status NOT IN ('pending', 'in_progress')
          UNION ALL
          SELECT NEW.workflow_id, NEW.status, 1, NEW.completed_count
           WHERE TG_OP <> 'DELETE' AND NEW.status NOT IN ('pending', 'in_progress'))
         AS d (workflow_id, status, n, tasks)
   GROUP BY d.workflow_id, d.status
   ORDER BY d.workflow_id, d.status
  ON CONFLICT (workflow_id, status) DO UPDATE SET
    assignments     = c.assignments + EXCLUDED.assignments,
    completed_tasks = c.completed_tasks + EXCLUDED.completed_tasks;
  INSERT INTO annotator_assignment_counts AS c (annotator_id, status, assignments)
  SELECT d.annotator_id, d.status, sum(d.n)::int
    FROM (SELECT OLD.annotator_id, OLD.status, -1
           WHERE TG_OP <> 'INSERT' AND OLD.status NOT IN ('pending', 'in_progress')
          UNION ALL
          SELECT NEW.annotator_id, NEW.status, 1
           WHERE TG_OP <> 'DELETE' AND NEW.status NOT IN ('pending', 'in_progress'))
         AS d (annotator_id, status, n)
   GROUP BY d.annotator_id, d.status
   ORDER BY d.annotator_id, d.status
  ON CONFLICT (annotator_id, status) DO UPDATE SET assignments = c.assignments + EXCLUDED.assignments;
  RETURN NULL;
END $$;

CREATE FUNCTION assignment_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM workflow_assignment_counts;
  DELETE FROM annotator_assignment_counts;
  RETURN NULL;
END $$;

CREATE TRIGGER assignments_counts_ins AFTER INSERT ON assignments
  FOR EACH ROW WHEN (NEW.status NOT IN ('pending', 'in_progress'))
  EXECUTE FUNCTION assignment_counts_apply();
CREATE TRIGGER assignments_counts_upd AFTER UPDATE OF status, workflow_id, annotator_id, completed_count ON assignments
  FOR EACH ROW WHEN ((OLD.status NOT IN ('pending', 'in_progress') OR NEW.status NOT IN ('pending', 'in_progress'))
                     AND (OLD.status, OLD.workflow_id, OLD.annotator_id, OLD.completed_count)
                         IS DISTINCT FROM (NEW.status, NEW.workflow_id, NEW.annotator_id, NEW.completed_count))
  EXECUTE FUNCTION assignment_counts_apply();
CREATE TRIGGER assignments_counts_del AFTER DELETE ON assignments
  FOR EACH ROW WHEN (OLD.status NOT IN ('pending', 'in_progress'))
  EXECUTE FUNCTION assignment_counts_apply();
CREATE TRIGGER assignments_counts_truncate AFTER TRUNCATE ON assignments
  FOR EACH STATEMENT EXECUTE FUNCTION assignment_counts_clear();

INSERT INTO workflow_assignment_counts (workflow_id, status, assignments, completed_tasks)
SELECT workflow_id, status, count(*), sum(completed_count) FROM assignments
 WHERE status NOT IN ('pending', 'in_progress') GROUP BY 1, 2;
INSERT INTO annotator_assignment_counts (annotator_id, status, assignments)
SELECT annotator_id, status, count(*) FROM assignments
 WHERE status NOT IN ('pending', 'in_progress') GROUP BY 1, 2;

-- ---------------------------------------------------------------------------------------------
-- Rejections per reviewing workflow and action (graph rejectionRate, quality reworkRate, the
-- rejection list's total). Rejections are written by the reconciler's review step, a few at a time.
CREATE TABLE workflow_rejection_counts (
  workflow_id  integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  action_taken varchar(32) NOT NULL,
  rejections   integer NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, action_taken)
);

CREATE FUNCTION rejection_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO workflow_rejection_counts AS c (workflow_id, action_taken, rejections)
  SELECT d.workflow_id, d.action_taken, sum(d.n)::int
    FROM (SELECT OLD.workflow_id, OLD.action_taken, -1 WHERE TG_OP <> 'INSERT'
          UNION ALL
          SELECT NEW.workflow_id, NEW.action_taken, 1 WHERE TG_OP <> 'DELETE') AS d (workflow_id, action_taken, n)
   GROUP BY d.workflow_id, d.action_taken
   ORDER BY d.workflow_id, d.action_taken
  ON CONFLICT (workflow_id, action_taken) DO UPDATE SET rejections = c.rejections + EXCLUDED.rejections;
  RETURN NULL;
END $$;

CREATE FUNCTION rejection_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM workflow_rejection_counts;
  RETURN NULL;
END $$;

CREATE TRIGGER rejections_counts_ins AFTER INSERT ON rejections
  FOR EACH ROW EXECUTE FUNCTION rejection_counts_apply();
CREATE TRIGGER rejections_counts_upd AFTER UPDATE OF workflow_id, action_taken ON rejections
  FOR EACH ROW WHEN ((OLD.workflow_id, OLD.action_taken) IS DISTINCT FROM (NEW.workflow_id, NEW.action_taken))
  EXECUTE FUNCTION rejection_counts_apply();
CREATE TRIGGER rejections_counts_del AFTER DELETE ON rejections
  FOR EACH ROW EXECUTE FUNCTION rejection_counts_apply();
CREATE TRIGGER rejections_counts_truncate AFTER TRUNCATE ON rejections
  FOR EACH STATEMENT EXECUTE FUNCTION rejection_counts_clear();

INSERT INTO workflow_rejection_counts (workflow_id, action_taken, rejections)
SELECT workflow_id, action_taken, count(*) FROM rejections GROUP BY 1, 2;

-- ---------------------------------------------------------------------------------------------
-- Indexes for every list filter, in the list's order, so a page reads about `limit` rows at ten
-- times today's sizes (100,000 annotators, 200,000 assignments, 200,000 rejections).
-- GET /api/annotators: status, roleId; by id.
CREATE INDEX annotators_status_id_idx ON annotators (status, id);
CREATE INDEX annotators_role_id_id_idx ON annotators (role_id, id);
CREATE INDEX annotators_status_role_id_idx ON annotators (status, role_id, id);
DROP INDEX annotators_status_idx;                    -- a prefix of annotators_status_id_idx
DROP INDEX annotators_role_id_idx;                   -- a prefix of annotators_role_id_id_idx
-- GET /api/assignments: workflowId, annotatorId, status; newest first.
CREATE INDEX assignments_workflow_created_idx ON assignments (workflow_id, created_at DESC, id DESC);
CREATE INDEX assignments_annotator_created_idx ON assignments (annotator_id, created_at DESC, id DESC);
CREATE INDEX assignments_status_created_idx ON assignments (status, created_at DESC, id DESC);
DROP INDEX assignments_status_idx;                   -- a prefix of assignments_status_created_idx
-- GET /api/rejections: workflowId, annotatorId, actionTaken; newest first (id breaks ties).
CREATE INDEX rejections_workflow_created_idx ON rejections (workflow_id, created_at DESC, id DESC);
CREATE INDEX rejections_original_created_idx ON rejections (original_annotator_id, created_at DESC, id DESC);
CREATE INDEX rejections_action_created_idx ON rejections (action_taken, created_at DESC, id DESC);
DROP INDEX rejections_workflow_id_idx;
DROP INDEX rejections_original_annotator_id_idx;
DROP INDEX rejections_action_taken_idx;
-- GET /api/gold-tasks: labelingConfigId, category; by id.
CREATE INDEX gold_tasks_config_id_idx ON gold_tasks (labeling_config_id, id);
CREATE INDEX gold_tasks_category_id_idx ON gold_tasks (category, id);
DROP INDEX gold_tasks_labeling_config_id_idx;
DROP INDEX gold_tasks_category_idx;
-- GET /api/workflows: roleId, labelingConfigId, previousWorkflowId, isActive; by id.
CREATE INDEX workflows_role_id_id_idx ON workflows (role_id, id);
CREATE INDEX workflows_config_id_id_idx ON workflows (labeling_config_id, id);
CREATE INDEX workflows_previous_id_id_idx ON workflows (previous_workflow_id, id);
CREATE INDEX workflows_active_id_idx ON workflows (is_active, id);
DROP INDEX workflows_role_id_idx;
DROP INDEX workflows_labeling_config_id_idx;
DROP INDEX workflows_previous_workflow_id_idx;
-- Events (GET /api/events?annotatorId=): newest first with id as the tie-break, as the list orders.
CREATE INDEX container_events_annotator_created_idx ON container_events (annotator_id, created_at DESC, id DESC);
DROP INDEX container_events_annotator_idx;
-- Assignment: the gold tasks an annotator has been given, from their own batches (not every
-- batch that ever held the gold task).
CREATE INDEX assignment_tasks_gold_by_assignment_idx ON assignment_tasks (assignment_id, gold_task_id)
  WHERE gold_task_id IS NOT NULL;
-- Assignment's per-item probe "is this image already in an open batch of the workflow?" must use
-- work_items_reserved_image_key (one unique lookup). While (workflow_id, status) also covered
-- reserved rows, statistics left stale by fast reservations (ANALYZE lags them) could make the
-- planner pick it and filter every reserved row of the workflow, per item. Reserved rows are found
-- by that unique index or by assignment_id.
DROP INDEX work_items_workflow_status_idx;
CREATE INDEX work_items_workflow_status_idx ON work_items (workflow_id, status) WHERE status <> 'reserved';
