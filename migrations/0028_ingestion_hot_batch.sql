-- Ingestion at the database's pace (issue 15): an ingested annotation no longer rewrites every
-- index of its batch.
--
-- Each task annotated adds one to its batch's completed_count. Migration 0021's assignments_wake
-- counted that as a change the batch's decision reads and set due_at to now, so every event
-- changed an indexed column (assignments_due_idx) and PostgreSQL wrote a new entry in each of the
-- batch row's twelve indexes (~0.8 KB of WAL per event, most of what an event wrote beyond the
-- bare INSERT, and the CPU to build them). The decision reads the count only through batchDone
-- (src/domain/batch-decision.ts: completed_count >= task_count, with tasks or removed tasks): a
-- count that leaves that unchanged is bookkeeping, like updated_at, and wakes nothing; reaching
-- it (or leaving it) still makes the batch due at once. The write then touches no indexed column,
-- so it is a HOT update (in place on its page: no index entry).
--
-- Progress also moves the batch's expiry later (lastTouchedAt), which needs no wake-up: the batch
-- is due at its previous expiry at the latest, and decided again then from the newer time.

CREATE OR REPLACE FUNCTION assignments_wake() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  o assignments;
  n assignments;
BEGIN
  IF NEW.status NOT IN ('pending', 'in_progress') THEN
    NEW.due_at := NULL;
  ELSIF TG_OP = 'UPDATE' AND NEW.due_at IS NOT DISTINCT FROM OLD.due_at THEN
    o := OLD; n := NEW;
    o.due_at := NULL; n.due_at := NULL;
    o.updated_at := NULL; n.updated_at := NULL;
    o.provision_attempts := 0; n.provision_attempts := 0;
    o.error := NULL; n.error := NULL;
    o.ls_webhook_id := NULL; n.ls_webhook_id := NULL;
    o.webhook_generation := NULL; n.webhook_generation := NULL;
    o.problem_code := NULL; n.problem_code := NULL;
    o.problem_message := NULL; n.problem_message := NULL;
    o.problem_since := NULL; n.problem_since := NULL;
    IF NEW.ls_checked_at IS NOT NULL THEN o.ls_checked_at := NULL; n.ls_checked_at := NULL; END IF;
    IF (OLD.completed_count >= OLD.task_count AND (OLD.task_count > 0 OR OLD.removed_task_count > 0))
       = (NEW.completed_count >= NEW.task_count AND (NEW.task_count > 0 OR NEW.removed_task_count > 0)) THEN
      o.completed_count := 0; n.completed_count := 0;
    END IF;
    IF n IS DISTINCT FROM o THEN NEW.due_at := clock_timestamp(); END IF;
  END IF;
  RETURN NEW;
END $$;
