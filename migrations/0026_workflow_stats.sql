-- The workflow graph's per-node stats as a rollup (issue 15: GET /api/workflows/graph reads
-- O(workflows) rows, whatever the history and the work in progress; issue 12: the graph page),
-- and the fleet's annotations per hour the same way (GET /api/monitoring; at the end).
--
-- What is counted, per workflow (the API's definitions, docs in src/api/workflows.ts):
--   assignments      every assignment, whatever its status          → stats.totalAssignments
--   completed        assignments with status 'completed'            → stats.completedAssignments
--   tasks            sum of completed_count over every assignment   → rejectionRate's denominator
--   annotators       distinct annotators holding a pending or in_progress assignment → activeAnnotators
--   rejections       rejections whose workflow_id is the workflow   → rejectionRate's numerator
--
-- How, without a hot row on the write paths. A fact (an assignment inserted, closed, moved,
-- deleted; a task annotated — the webhook's completed_count + 1; a rejection) appends its
-- contribution to workflow_stat_deltas from a row trigger, in the same transaction: an INSERT
-- into a heap without indexes, which takes no lock another writer waits for, so ingestion and
-- reservation keep their concurrency and cannot deadlock on it. workflow_stats holds one row per
-- workflow; the fold (rollups_fold, run by the reconciler and by readers when deltas pile
-- up, one folder at a time) moves the deltas into it in one statement. A reader adds the deltas
-- not yet folded (one snapshot: a delta is either still a delta or already in its row), so the
-- figures are exact at any moment and the read costs the workflows plus the unfolded deltas.
--
-- activeAnnotators is a distinct count; workflow_annotator_open keeps, per (workflow, annotator),
-- how many open assignments there are, and its 0 → 1 and 1 → 0 transitions emit annotators ±1.
-- Only opening, closing, moving or deleting an assignment touches it (never a webhook), and only
-- the annotator's own transactions touch its rows.
--
-- test/integration/rollups.test.ts compares all of this with a from-scratch aggregate after a
-- random mix of writes, folds, concurrent transactions, rollbacks and TRUNCATE; graph-stats.test.ts
-- does the same through the API (creates, completions, cancels, rejections, deletes).

CREATE TABLE workflow_stats (
  workflow_id integer PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
  assignments integer NOT NULL DEFAULT 0,
  completed   integer NOT NULL DEFAULT 0,
  tasks       bigint  NOT NULL DEFAULT 0,
  annotators  integer NOT NULL DEFAULT 0,
  rejections  integer NOT NULL DEFAULT 0
);

-- Appended by the triggers below, emptied by the fold. No key, no index, no foreign key: a delta
-- of a workflow deleted meanwhile is dropped by the fold.
CREATE TABLE workflow_stat_deltas (
  workflow_id integer NOT NULL,
  assignments integer NOT NULL DEFAULT 0,
  completed   integer NOT NULL DEFAULT 0,
  tasks       bigint  NOT NULL DEFAULT 0,
  annotators  integer NOT NULL DEFAULT 0,
  rejections  integer NOT NULL DEFAULT 0
);

CREATE TABLE workflow_annotator_open (
  workflow_id  integer NOT NULL,
  annotator_id integer NOT NULL,
  assignments  integer NOT NULL,
  PRIMARY KEY (workflow_id, annotator_id)
);

-- A workflow's row exists from its creation.
CREATE FUNCTION workflow_stats_create() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO workflow_stats (workflow_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER workflows_stats_ins AFTER INSERT ON workflows
  FOR EACH ROW EXECUTE FUNCTION workflow_stats_create();

-- One assignment row's change: its old contribution out, its new one in.
CREATE FUNCTION workflow_stats_assignment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_open boolean := TG_OP <> 'INSERT' AND OLD.status IN ('pending', 'in_progress');
  new_open boolean := TG_OP <> 'DELETE' AND NEW.status IN ('pending', 'in_progress');
  n integer;
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.workflow_id = NEW.workflow_id THEN
    IF (OLD.status = 'completed') IS DISTINCT FROM (NEW.status = 'completed') OR OLD.completed_count <> NEW.completed_count THEN
      INSERT INTO workflow_stat_deltas (workflow_id, completed, tasks)
      VALUES (NEW.workflow_id, (NEW.status = 'completed')::int - (OLD.status = 'completed')::int,
              NEW.completed_count - OLD.completed_count);
    END IF;
  ELSE
    IF TG_OP <> 'INSERT' THEN
      INSERT INTO workflow_stat_deltas (workflow_id, assignments, completed, tasks)
      VALUES (OLD.workflow_id, -1, -(OLD.status = 'completed')::int, -OLD.completed_count);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      INSERT INTO workflow_stat_deltas (workflow_id, assignments, completed, tasks)
      VALUES (NEW.workflow_id, 1, (NEW.status = 'completed')::int, NEW.completed_count);
    END IF;
  END IF;

  -- Open work per (workflow, annotator), only when the row's openness or owner changed.
  IF old_open AND new_open AND OLD.workflow_id = NEW.workflow_id AND OLD.annotator_id = NEW.annotator_id THEN
    RETURN NULL;
  END IF;
  IF old_open THEN
    UPDATE workflow_annotator_open o SET assignments = o.assignments - 1
     WHERE o.workflow_id = OLD.workflow_id AND o.annotator_id = OLD.annotator_id
    RETURNING o.assignments INTO n;
    IF n = 0 THEN
      DELETE FROM workflow_annotator_open o WHERE o.workflow_id = OLD.workflow_id AND o.annotator_id = OLD.annotator_id;
      INSERT INTO workflow_stat_deltas (workflow_id, annotators) VALUES (OLD.workflow_id, -1);
    END IF;
  END IF;
  IF new_open THEN
    INSERT INTO workflow_annotator_open AS o (workflow_id, annotator_id, assignments)
    VALUES (NEW.workflow_id, NEW.annotator_id, 1)
    ON CONFLICT (workflow_id, annotator_id) DO UPDATE SET assignments = o.assignments + 1
    RETURNING o.assignments INTO n;
    IF n = 1 THEN
      INSERT INTO workflow_stat_deltas (workflow_id, annotators) VALUES (NEW.workflow_id, 1);
    END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER assignments_stats_ins AFTER INSERT ON assignments
  FOR EACH ROW EXECUTE FUNCTION workflow_stats_assignment();
-- Not for updates that change none of the counted columns (updated_at, error, ls_* …).
CREATE TRIGGER assignments_stats_upd AFTER UPDATE OF status, workflow_id, annotator_id, completed_count ON assignments
  FOR EACH ROW WHEN ((OLD.status, OLD.workflow_id, OLD.annotator_id, OLD.completed_count)
                     IS DISTINCT FROM (NEW.status, NEW.workflow_id, NEW.annotator_id, NEW.completed_count))
  EXECUTE FUNCTION workflow_stats_assignment();
CREATE TRIGGER assignments_stats_del AFTER DELETE ON assignments
  FOR EACH ROW EXECUTE FUNCTION workflow_stats_assignment();

CREATE FUNCTION workflow_stats_rejection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO workflow_stat_deltas (workflow_id, rejections) VALUES (OLD.workflow_id, -1);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO workflow_stat_deltas (workflow_id, rejections) VALUES (NEW.workflow_id, 1);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER rejections_stats_ins AFTER INSERT ON rejections
  FOR EACH ROW EXECUTE FUNCTION workflow_stats_rejection();
CREATE TRIGGER rejections_stats_upd AFTER UPDATE OF workflow_id ON rejections
  FOR EACH ROW WHEN (OLD.workflow_id IS DISTINCT FROM NEW.workflow_id)
  EXECUTE FUNCTION workflow_stats_rejection();
CREATE TRIGGER rejections_stats_del AFTER DELETE ON rejections
  FOR EACH ROW EXECUTE FUNCTION workflow_stats_rejection();

-- Moves every delta into its rollup (workflow_stats, annotation_fleet_hourly below); returns how
-- many delta rows it moved, or -1 when another fold was running (that one moves them). Callers run
-- it in its own short transaction.
CREATE FUNCTION rollups_fold() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  moved integer;
  hours integer;
BEGIN
  -- One folder at a time (LOCKS.rollupsFold in src/db/index.ts), so folds never wait for
  -- each other's workflow_stats rows.
  IF NOT pg_try_advisory_xact_lock(7404004) THEN
    RETURN -1;
  END IF;
  WITH gone AS (DELETE FROM workflow_stat_deltas RETURNING *),
       d AS (SELECT workflow_id, sum(assignments) AS assignments, sum(completed) AS completed, sum(tasks) AS tasks,
                    sum(annotators) AS annotators, sum(rejections) AS rejections, count(*) AS n
               FROM gone GROUP BY workflow_id),
       upd AS (UPDATE workflow_stats s SET
                 assignments = s.assignments + d.assignments, completed = s.completed + d.completed,
                 tasks = s.tasks + d.tasks, annotators = s.annotators + d.annotators, rejections = s.rejections + d.rejections
                 FROM d WHERE s.workflow_id = d.workflow_id)
  SELECT coalesce(sum(n), 0)::int INTO moved FROM d;
  WITH gone AS (DELETE FROM annotation_fleet_hourly_deltas RETURNING *),
       d AS (SELECT hour, sum(created_count) AS created_count, count(*) AS n FROM gone GROUP BY hour),
       ins AS (INSERT INTO annotation_fleet_hourly AS f (hour, created_count)
               SELECT hour, created_count FROM d ORDER BY hour
               ON CONFLICT (hour) DO UPDATE SET created_count = f.created_count + EXCLUDED.created_count)
  SELECT coalesce(sum(n), 0)::int INTO hours FROM d;
  RETURN moved + hours;
END $$;

-- Everything from scratch (this migration, and after a TRUNCATE of a counted table).
CREATE FUNCTION workflow_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM workflow_stat_deltas;
  DELETE FROM workflow_annotator_open;
  INSERT INTO workflow_annotator_open (workflow_id, annotator_id, assignments)
  SELECT workflow_id, annotator_id, count(*) FROM assignments
   WHERE status IN ('pending', 'in_progress') GROUP BY 1, 2;
  DELETE FROM workflow_stats;
  INSERT INTO workflow_stats (workflow_id, assignments, completed, tasks, annotators, rejections)
  SELECT w.id, coalesce(a.assignments, 0), coalesce(a.completed, 0), coalesce(a.tasks, 0),
         coalesce(o.annotators, 0), coalesce(r.rejections, 0)
    FROM workflows w
    LEFT JOIN (SELECT workflow_id, count(*) AS assignments, count(*) FILTER (WHERE status = 'completed') AS completed,
                      sum(completed_count) AS tasks
                 FROM assignments GROUP BY 1) a ON a.workflow_id = w.id
    LEFT JOIN (SELECT workflow_id, count(*) AS annotators FROM workflow_annotator_open GROUP BY 1) o ON o.workflow_id = w.id
    LEFT JOIN (SELECT workflow_id, count(*) AS rejections FROM rejections GROUP BY 1) r ON r.workflow_id = w.id;
END $$;

CREATE FUNCTION workflow_stats_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM workflow_stats_rebuild();
  RETURN NULL;
END $$;

CREATE TRIGGER assignments_stats_truncate AFTER TRUNCATE ON assignments
  FOR EACH STATEMENT EXECUTE FUNCTION workflow_stats_truncated();
CREATE TRIGGER rejections_stats_truncate AFTER TRUNCATE ON rejections
  FOR EACH STATEMENT EXECUTE FUNCTION workflow_stats_truncated();
CREATE TRIGGER workflows_stats_truncate AFTER TRUNCATE ON workflows
  FOR EACH STATEMENT EXECUTE FUNCTION workflow_stats_truncated();

SELECT workflow_stats_rebuild();

-- ---------------------------------------------------------------------------------------------
-- Annotations per UTC hour for the whole fleet (GET /api/monitoring's annotationsPerHour: 24 rows
-- instead of 24 × annotators of annotation_hourly). The same pattern: the statement that records
-- events appends one delta row per hour it touched (statement-level triggers with transition
-- tables, beside annotation_hourly's of migration 0004), rollups_fold() moves them into one row per
-- hour, and a reader adds the unfolded ones. No row is shared by concurrent ingestions.
CREATE TABLE annotation_fleet_hourly (
  hour          timestamptz PRIMARY KEY,             -- start of the UTC hour
  created_count integer NOT NULL DEFAULT 0            -- annotation_created events recorded in it
);

CREATE TABLE annotation_fleet_hourly_deltas (
  hour          timestamptz NOT NULL,
  created_count integer NOT NULL
);

CREATE FUNCTION annotation_fleet_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotation_fleet_hourly_deltas (hour, created_count)
  SELECT date_trunc('hour', created_at, 'UTC'), count(*) FROM new_rows
   WHERE event_type = 'annotation_created' GROUP BY 1;
  RETURN NULL;
END $$;

CREATE FUNCTION annotation_fleet_hourly_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotation_fleet_hourly_deltas (hour, created_count)
  SELECT date_trunc('hour', created_at, 'UTC'), -count(*) FROM old_rows
   WHERE event_type = 'annotation_created' GROUP BY 1;
  RETURN NULL;
END $$;

CREATE FUNCTION annotation_fleet_hourly_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM annotation_fleet_hourly_deltas;
  DELETE FROM annotation_fleet_hourly;
  RETURN NULL;
END $$;

CREATE TRIGGER annotation_events_fleet_hourly_ins AFTER INSERT ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_fleet_hourly_add();
CREATE TRIGGER annotation_events_fleet_hourly_del AFTER DELETE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_fleet_hourly_sub();
CREATE TRIGGER annotation_events_fleet_hourly_upd_a_old AFTER UPDATE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_fleet_hourly_sub();
CREATE TRIGGER annotation_events_fleet_hourly_upd_b_new AFTER UPDATE ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_fleet_hourly_add();
CREATE TRIGGER annotation_events_fleet_hourly_truncate AFTER TRUNCATE ON annotation_events
  FOR EACH STATEMENT EXECUTE FUNCTION annotation_fleet_hourly_clear();

-- From migration 0004's per-annotator rollup, which equals the events' aggregate.
INSERT INTO annotation_fleet_hourly (hour, created_count)
SELECT hour, sum(created_count) FROM annotation_hourly GROUP BY hour;
