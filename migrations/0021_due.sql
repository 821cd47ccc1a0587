-- Reconcile by key, when due (issue 15 phase 2; orchestrator/due.ts). Each object the reconciler
-- looks after carries when it next needs attention; a pass selects only due rows (partial indexes
-- below), reconciles each and requeues it from the outcome (a time, or NULL: nothing can change
-- until a wake-up). Wake-ups are the triggers below, so every writer — API routes, webhook
-- ingestion, the steps themselves — marks what it changed due without knowing about scheduling.
-- New rows are due at once (DEFAULT now()); existing rows are due once after this migration.
-- Wake-ups use clock_timestamp(): a requeue only clears the due_at value its pass read, so a
-- wake-up that lands while a pass works on the row is never lost.

-- Annotators' instances (orchestrator/annotators-step.ts) and auto-assignment (batches-step.ts).
ALTER TABLE annotators
  ADD COLUMN due_at        timestamptz DEFAULT now(),
  ADD COLUMN assign_due_at timestamptz DEFAULT now();
CREATE INDEX annotators_due_idx ON annotators (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX annotators_assign_due_idx ON annotators (assign_due_at) WHERE assign_due_at IS NOT NULL;

-- Open batches (orchestrator/batches-step.ts). Closed batches are never due.
ALTER TABLE assignments ADD COLUMN due_at timestamptz DEFAULT now();
UPDATE assignments SET due_at = NULL WHERE status NOT IN ('pending', 'in_progress');
CREATE INDEX assignments_due_idx ON assignments (due_at) WHERE due_at IS NOT NULL;

-- Root workflows' S3 catalogs (src/workflows/catalog.ts).
ALTER TABLE workflows ADD COLUMN catalog_due_at timestamptz DEFAULT now();
CREATE INDEX workflows_catalog_due_idx ON workflows (catalog_due_at) WHERE catalog_due_at IS NOT NULL;

-- An annotator row changed (status, start, address, token, role, ...): its instance is due; a
-- change of status, role or pause makes it due for auto-assignment too. Bookkeeping columns
-- (activity, counters, notes, name) wake nothing.
CREATE FUNCTION annotators_wake() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF n IS DISTINCT FROM o THEN NEW.due_at := clock_timestamp(); END IF;
  END IF;
  IF NEW.assign_due_at IS NOT DISTINCT FROM OLD.assign_due_at
     AND (NEW.status, NEW.role_id, NEW.auto_assign_paused) IS DISTINCT FROM (OLD.status, OLD.role_id, OLD.auto_assign_paused) THEN
    NEW.assign_due_at := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER annotators_wake BEFORE UPDATE ON annotators FOR EACH ROW EXECUTE FUNCTION annotators_wake();

-- What a batch needs from its annotator (active, its start's webhook secret, its address and
-- token) changed: the annotator's open batches are due. A pending batch whose annotator is
-- stopped is thus never polled: it waits for this.
CREATE FUNCTION annotators_wake_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.status, NEW.start_generation, NEW.container_ip, NEW.container_port, NEW.api_token_enc)
     IS DISTINCT FROM (OLD.status, OLD.start_generation, OLD.container_ip, OLD.container_port, OLD.api_token_enc) THEN
    UPDATE assignments SET due_at = clock_timestamp()
     WHERE annotator_id = NEW.id AND status IN ('pending', 'in_progress');
  END IF;
  -- Work reserved for a deleted annotator is open to everyone of the role.
  IF NEW.status = 'deleted' AND OLD.status <> 'deleted' THEN
    UPDATE work_items SET target_annotator_id = NULL, updated_at = now()
     WHERE target_annotator_id = NEW.id AND status = 'queued';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER annotators_wake_batches AFTER UPDATE OF status, start_generation, container_ip, container_port, api_token_enc
  ON annotators FOR EACH ROW EXECUTE FUNCTION annotators_wake_batches();

-- A batch changed in anything its decision reads (status, counts, annotator, project, start,
-- a comparison asked for by clearing ls_checked_at — src/workflows/compare.ts markForComparison —,
-- whoever wrote it: webhook ingestion, review, the API, an operator's SQL): it is due. The step's
-- bookkeeping (attempts, errors, a comparison recorded, webhook ids, problems) wakes nothing, so
-- its retry backoff holds and an idle pass stays idle. Closed batches are never due. A later
-- bookkeeping column is added to this list by CREATE OR REPLACE in its migration (else each write
-- to it makes the batch due again: test/integration/reconcile-due.test.ts sees an idle pass write).
CREATE FUNCTION assignments_wake() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF n IS DISTINCT FROM o THEN NEW.due_at := clock_timestamp(); END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER assignments_wake BEFORE INSERT OR UPDATE ON assignments FOR EACH ROW EXECUTE FUNCTION assignments_wake();

-- A batch closed: its annotator may be idle now, due for auto-assignment, and its instance is
-- due (a spec change deferred while the batch was in progress is applied now); a failed or
-- cancelled batch's reserved images go back to the queue (targeted rework keeps its target) in
-- the same transaction, whoever closed it (API cancel, annotator deletion, provisioning timeout).
CREATE FUNCTION assignments_wake_annotator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status IN ('pending', 'in_progress') AND NEW.status NOT IN ('pending', 'in_progress') THEN
    UPDATE annotators SET assign_due_at = clock_timestamp(),
                          due_at = CASE WHEN OLD.status = 'in_progress' AND status = 'active' THEN clock_timestamp() ELSE due_at END
     WHERE id = NEW.annotator_id;
    IF NEW.status IN ('failed', 'cancelled') THEN
      UPDATE work_items SET status = 'queued', assignment_id = NULL, updated_at = now()
       WHERE assignment_id = NEW.id AND status = 'reserved';
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER assignments_wake_annotator AFTER UPDATE OF status ON assignments
  FOR EACH ROW EXECUTE FUNCTION assignments_wake_annotator();

-- A workflow's source changed or it was switched on: its catalog is due.
CREATE FUNCTION workflows_wake_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.catalog_due_at IS NOT DISTINCT FROM OLD.catalog_due_at
     AND (NEW.s3_source_path, NEW.is_active, NEW.previous_workflow_id) IS DISTINCT FROM (OLD.s3_source_path, OLD.is_active, OLD.previous_workflow_id) THEN
    NEW.catalog_due_at := clock_timestamp();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER workflows_wake_catalog BEFORE UPDATE ON workflows FOR EACH ROW EXECUTE FUNCTION workflows_wake_catalog();

-- A workflow's expiryHours changed: its batches in progress expire at another time, due now.
CREATE FUNCTION workflows_wake_batches() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.expiry_hours IS DISTINCT FROM OLD.expiry_hours THEN
    UPDATE assignments SET due_at = clock_timestamp() WHERE workflow_id = NEW.id AND status = 'in_progress';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER workflows_wake_batches AFTER UPDATE OF expiry_hours ON workflows
  FOR EACH ROW EXECUTE FUNCTION workflows_wake_batches();

-- A workflow was added or its assignment rules changed: the idle annotators of its roles (old and
-- new) are due for auto-assignment.
CREATE FUNCTION workflows_wake_annotators() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE annotators SET assign_due_at = clock_timestamp()
   WHERE status = 'active' AND assign_due_at IS NULL
     AND (role_id = NEW.role_id OR (TG_OP = 'UPDATE' AND role_id = OLD.role_id));
  RETURN NULL;
END $$;
CREATE TRIGGER workflows_wake_annotators_ins AFTER INSERT ON workflows
  FOR EACH ROW EXECUTE FUNCTION workflows_wake_annotators();
CREATE TRIGGER workflows_wake_annotators_upd
  AFTER UPDATE OF role_id, is_active, auto_assign, labeling_config_id, max_projects, images_per_project, gold_standard_rate
  ON workflows FOR EACH ROW EXECUTE FUNCTION workflows_wake_annotators();

-- Work became available (catalog sync, chaining, release, rework): the idle annotators of the
-- workflows' roles are due for auto-assignment. Per statement, over the transition table, so a
-- 100,000-key catalog insert wakes each annotator once.
CREATE FUNCTION work_items_wake_annotators() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE annotators SET assign_due_at = clock_timestamp()
   WHERE status = 'active' AND assign_due_at IS NULL
     AND role_id IN (SELECT w.role_id FROM workflows w
                      WHERE w.id IN (SELECT DISTINCT workflow_id FROM changed_items WHERE status = 'queued'));
  RETURN NULL;
END $$;
CREATE TRIGGER work_items_wake_annotators_ins AFTER INSERT ON work_items
  REFERENCING NEW TABLE AS changed_items FOR EACH STATEMENT EXECUTE FUNCTION work_items_wake_annotators();
CREATE TRIGGER work_items_wake_annotators_upd AFTER UPDATE ON work_items
  REFERENCING NEW TABLE AS changed_items FOR EACH STATEMENT EXECUTE FUNCTION work_items_wake_annotators();

-- Changed settings wake what reads them: fleet.* (image, memory, CPUs, limits) can change what
-- every instance should be — every annotator the fleet manages is due; batches.* (comparison
-- interval, provisioning timeout) — every open batch; catalog.* (sync interval) — every root
-- workflow's catalog.
CREATE FUNCTION settings_wake() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text := CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END;
BEGIN
  IF k LIKE 'fleet.%' THEN
    UPDATE annotators SET due_at = clock_timestamp() WHERE status <> 'deleted' AND start_generation > 0;
  ELSIF k LIKE 'batches.%' THEN
    UPDATE assignments SET due_at = clock_timestamp() WHERE status IN ('pending', 'in_progress');
  ELSIF k LIKE 'catalog.%' THEN
    UPDATE workflows SET catalog_due_at = clock_timestamp() WHERE is_active AND previous_workflow_id IS NULL;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER settings_wake_ins AFTER INSERT ON settings
  FOR EACH ROW WHEN (NEW.key LIKE 'fleet.%' OR NEW.key LIKE 'batches.%' OR NEW.key LIKE 'catalog.%') EXECUTE FUNCTION settings_wake();
CREATE TRIGGER settings_wake_upd AFTER UPDATE ON settings
  FOR EACH ROW WHEN ((NEW.key LIKE 'fleet.%' OR NEW.key LIKE 'batches.%' OR NEW.key LIKE 'catalog.%') AND NEW.value IS DISTINCT FROM OLD.value)
  EXECUTE FUNCTION settings_wake();
CREATE TRIGGER settings_wake_del AFTER DELETE ON settings
  FOR EACH ROW WHEN (OLD.key LIKE 'fleet.%' OR OLD.key LIKE 'batches.%' OR OLD.key LIKE 'catalog.%') EXECUTE FUNCTION settings_wake();
