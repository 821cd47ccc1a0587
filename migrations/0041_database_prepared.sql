-- Annotators' Label Studio databases are made ahead of their first start (issue 15, start
-- overhead; orchestrator/annotators-step.ts "prepare-database"): the reconciler creates a new
-- annotator's role (no password: it cannot log in) and database, and records it here, so a start
-- only sets the password of that start instead of waiting for CREATE DATABASE.
-- database_prepared_at is the step's own bookkeeping: writing it makes nothing due.
ALTER TABLE annotators ADD COLUMN database_prepared_at timestamptz;

-- Every deleted annotator is now cleaned up once (a never-started one may have a prepared
-- database); those deleted before this migration without ever starting had nothing to clean up.
UPDATE annotators SET cleaned_up_at = now(), due_at = NULL
 WHERE status = 'deleted' AND start_generation = 0 AND cleaned_up_at IS NULL;

-- migrations/0021_due.sql's wake-up, with database_prepared_at among the bookkeeping columns.
CREATE OR REPLACE FUNCTION annotators_wake() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  o annotators := OLD;
  n annotators := NEW;
BEGIN
  IF NEW.due_at IS NOT DISTINCT FROM OLD.due_at THEN
    o.due_at := NULL; n.due_at := NULL;
    o.assign_due_at := NULL; n.assign_due_at := NULL;
    o.updated_at := NULL; n.updated_at := NULL;
    o.last_active_at := NULL; n.last_active_at := NULL;
    o.rejection_count := 0; n.rejection_count := 0;
    o.reviewed_count := 0; n.reviewed_count := 0;
    o.notes := NULL; n.notes := NULL;
    o.name := ''; n.name := '';
    o.database_prepared_at := NULL; n.database_prepared_at := NULL;
    IF n IS DISTINCT FROM o THEN NEW.due_at := clock_timestamp(); END IF;
  END IF;
  IF NEW.assign_due_at IS NOT DISTINCT FROM OLD.assign_due_at
     AND (NEW.status, NEW.role_id, NEW.auto_assign_paused) IS DISTINCT FROM (OLD.status, OLD.role_id, OLD.auto_assign_paused) THEN
    NEW.assign_due_at := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
