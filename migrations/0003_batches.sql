-- Batches through the workflow graph (issue 4): the S3 catalog, the work queue of every workflow,
-- and what provisioning, ingestion, completion and review need to be idempotent and crash-safe.

-- Incremental S3 listing per root workflow (src/workflows/catalog.ts): where the last listing
-- stopped (StartAfter cursor) and when the last full resync ran.
CREATE TABLE catalog_syncs (
  workflow_id        integer PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
  bucket             varchar(255) NOT NULL,
  prefix             varchar(1024) NOT NULL,
  last_key           varchar(1024),                  -- greatest key seen: the next incremental listing starts after it
  object_count       integer NOT NULL DEFAULT 0 CHECK (object_count >= 0),
  last_sync_at       timestamptz,
  last_full_sync_at  timestamptz,
  error              text,
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Work items: one image waiting for, reserved by, or done in one workflow. Root workflows get them
-- from the S3 catalog; chained workflows from their upstream's completed batches; rework from
-- rejections. An item is in at most one open batch (status 'reserved' + assignment_id).
CREATE TABLE work_items (
  id                  bigserial PRIMARY KEY,
  workflow_id         integer NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  image_key           varchar(1024) NOT NULL CHECK (length(image_key) >= 1),
  source              varchar(16) NOT NULL CHECK (source IN ('catalog', 'chain', 'rework')),
  status              varchar(16) NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'reserved', 'done', 'rejected', 'escalated', 'gone')),
  -- Lower first: rework 0, chain 1, catalog 2.
  priority            smallint NOT NULL DEFAULT 2,
  -- Random rank drawn once: shuffled workflows take items in this order.
  sort_key            double precision NOT NULL DEFAULT random(),
  assignment_id       integer REFERENCES assignments (id) ON DELETE SET NULL,
  -- Only this annotator may take the item (rejectionReturnToOriginal).
  target_annotator_id integer REFERENCES annotators (id) ON DELETE SET NULL,
  -- The assignment task this item was made from (chain: the finished upstream task; rework: the
  -- reviewer's task): one item per upstream task and workflow.
  upstream_task_id    integer REFERENCES assignment_tasks (id) ON DELETE SET NULL,
  -- The task whose annotation this item carries (the annotation a review judges).
  origin_task_id      integer REFERENCES assignment_tasks (id) ON DELETE SET NULL,
  -- Label Studio result imported as a prediction (the upstream annotation).
  prediction          jsonb,
  -- Rejections this image has had along its chain.
  rework_iteration    integer NOT NULL DEFAULT 0 CHECK (rework_iteration >= 0),
  last_seen_at        timestamptz,                   -- catalog: the listing that last saw the key
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
-- A catalog key enters a workflow once.
CREATE UNIQUE INDEX work_items_catalog_key ON work_items (workflow_id, image_key) WHERE source = 'catalog';
-- Chaining and routing are keyed by the task they come from: a retried completion adds nothing.
CREATE UNIQUE INDEX work_items_upstream_key ON work_items (workflow_id, upstream_task_id) WHERE upstream_task_id IS NOT NULL;
-- No image in two open batches of one workflow, whatever path it took.
CREATE UNIQUE INDEX work_items_reserved_image_key ON work_items (workflow_id, image_key) WHERE status = 'reserved';
CREATE INDEX work_items_queue_shuffled_idx ON work_items (workflow_id, priority, sort_key) WHERE status = 'queued' AND target_annotator_id IS NULL;
CREATE INDEX work_items_queue_ordered_idx ON work_items (workflow_id, priority, image_key) WHERE status = 'queued' AND target_annotator_id IS NULL;
CREATE INDEX work_items_targeted_idx ON work_items (target_annotator_id, workflow_id) WHERE status = 'queued' AND target_annotator_id IS NOT NULL;
CREATE INDEX work_items_assignment_idx ON work_items (assignment_id);
CREATE INDEX work_items_workflow_status_idx ON work_items (workflow_id, status);

ALTER TABLE assignments
  ADD COLUMN provision_attempts integer NOT NULL DEFAULT 0 CHECK (provision_attempts >= 0),
  ADD COLUMN ls_webhook_id      integer,
  -- The annotator's start generation whose webhook secret the registered webhook carries.
  ADD COLUMN webhook_generation integer,
  -- Last comparison of this batch with its Label Studio project (reconcile).
  ADD COLUMN ls_checked_at      timestamptz;
CREATE INDEX assignments_open_idx ON assignments (annotator_id, workflow_id) WHERE status IN ('pending', 'in_progress');

ALTER TABLE assignment_tasks
  ADD COLUMN position                 integer NOT NULL DEFAULT 0,
  ADD COLUMN work_item_id             bigint REFERENCES work_items (id) ON DELETE SET NULL,
  -- updated_at of the annotation applied last: older events never overwrite newer ones.
  ADD COLUMN ls_annotation_updated_at timestamptz,
  ADD COLUMN skipped                  boolean NOT NULL DEFAULT false,
  ADD COLUMN review_decision          varchar(8) CHECK (review_decision IN ('accept', 'reject')),
  ADD COLUMN review_reason            text,
  -- Set once the decision's effects (counts, rejection row, routing, archive) are done; final.
  ADD COLUMN review_applied_at        timestamptz;
CREATE INDEX assignment_tasks_ls_task_idx ON assignment_tasks (ls_task_id);
CREATE INDEX assignment_tasks_ls_annotation_idx ON assignment_tasks (ls_annotation_id) WHERE ls_annotation_id IS NOT NULL;
CREATE INDEX assignment_tasks_work_item_idx ON assignment_tasks (work_item_id);
CREATE INDEX assignment_tasks_review_pending_idx ON assignment_tasks (assignment_id)
  WHERE review_decision IS NOT NULL AND review_applied_at IS NULL;
CREATE INDEX assignment_tasks_gold_seen_idx ON assignment_tasks (gold_task_id) WHERE gold_task_id IS NOT NULL;

-- The rework item a routed rejection created: its batch becomes routed_to_assignment_id when assigned.
ALTER TABLE rejections ADD COLUMN routed_work_item_id bigint REFERENCES work_items (id) ON DELETE SET NULL;
CREATE INDEX rejections_routed_work_item_idx ON rejections (routed_work_item_id) WHERE routed_work_item_id IS NOT NULL;
-- One rejection per reviewer task, whatever retries happen.
ALTER TABLE rejections ADD COLUMN reviewer_task_id integer REFERENCES assignment_tasks (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX rejections_reviewer_task_key ON rejections (reviewer_task_id) WHERE reviewer_task_id IS NOT NULL;

-- Webhook ingestion of ANNOTATION_CREATED / ANNOTATION_UPDATED in the database, in one round trip
-- (src/workflows/ingest.ts is the specification; this is its fast path for non-gold tasks).
--
-- labelfleet_apply_annotation locks the task; a duplicate (the event's key already recorded)
-- changes nothing; otherwise it applies the event unless it is older than what the task has or
-- its annotation was deleted, counts the open → annotated transition and touches the annotator.
-- The caller then records the event row. Lock order, in every path (the TypeScript one too):
-- task(s); then per annotator, in annotator order: assignment, (gold quality,) annotator; then the
-- event rows and their hourly rollup — so concurrent ingestions cannot deadlock. Gold tasks are
-- left untouched ('gold'): the transactional path scores them.
CREATE FUNCTION labelfleet_apply_annotation(
  p_annotator integer, p_event_type text, p_project integer, p_ls_task integer, p_annotation integer,
  p_result jsonb, p_updated_at timestamptz, p_lead_time double precision, p_was_cancelled boolean,
  p_review_decision text, p_review_reason text,
  OUT outcome text, OUT batch_id integer, OUT ready boolean, OUT review_recorded boolean, OUT key_ts timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
  v_task integer;
  v_status text;
  v_gold boolean;
  v_applied_at timestamptz;
  v_batch_status text;
  v_rows integer;
  v_count integer;
  v_total integer;
BEGIN
  ready := false;
  review_recorded := false;
  key_ts := CASE WHEN p_event_type = 'annotation_created' THEN NULL ELSE p_updated_at END;
  SELECT t.id, t.assignment_id, t.status, t.is_gold, t.review_applied_at, a.status
    INTO v_task, batch_id, v_status, v_gold, v_applied_at, v_batch_status
    FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
   WHERE a.annotator_id = p_annotator AND t.ls_task_id = p_ls_task
     AND (p_project IS NULL OR a.ls_project_id = p_project)
   ORDER BY (a.status = 'in_progress') DESC, a.id DESC
   LIMIT 1
   FOR UPDATE OF t;
  IF v_task IS NOT NULL AND v_gold THEN
    outcome := 'gold';
    RETURN;
  END IF;
  -- Events about one task are serialised by its lock, so this check cannot race with its own kind.
  IF EXISTS (SELECT 1 FROM annotation_events d
              WHERE d.annotator_id = p_annotator AND d.ls_annotation_id = p_annotation AND d.event_type = p_event_type
                AND coalesce(d.annotation_updated_at, 'epoch'::timestamptz) = coalesce(key_ts, 'epoch'::timestamptz)) THEN
    outcome := 'duplicate';
    RETURN;
  END IF;
  outcome := 'recorded';

  IF v_task IS NOT NULL AND v_batch_status = 'in_progress' AND NOT EXISTS (
       SELECT 1 FROM annotation_events d
        WHERE d.annotator_id = p_annotator AND d.ls_annotation_id = p_annotation AND d.event_type = 'annotation_deleted') THEN
    UPDATE assignment_tasks t
       SET result = p_result, ls_annotation_id = p_annotation, ls_annotation_updated_at = p_updated_at,
           lead_time_seconds = p_lead_time, skipped = p_was_cancelled, status = 'annotated',
           annotated_at = coalesce(t.annotated_at, now()), updated_at = now(),
           review_decision = CASE WHEN v_applied_at IS NULL THEN p_review_decision ELSE t.review_decision END,
           review_reason = CASE WHEN v_applied_at IS NULL THEN p_review_reason ELSE t.review_reason END
     WHERE t.id = v_task AND (t.ls_annotation_updated_at IS NULL OR t.ls_annotation_updated_at <= p_updated_at);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows > 0 THEN
      outcome := 'applied';
      review_recorded := v_applied_at IS NULL AND p_review_decision IS NOT NULL;
      IF v_status = 'open' THEN
        UPDATE assignments a SET completed_count = a.completed_count + 1, updated_at = now()
         WHERE a.id = batch_id
        RETURNING a.completed_count, a.task_count INTO v_count, v_total;
        ready := v_total > 0 AND v_count >= v_total;
      END IF;
    END IF;
  END IF;

  UPDATE annotators n SET last_active_at = coalesce(p_updated_at, now())
   WHERE n.id = p_annotator AND (n.last_active_at IS NULL OR n.last_active_at < coalesce(p_updated_at, now()));
END $$;

-- One event: apply it, then record it.
CREATE FUNCTION labelfleet_ingest_annotation(
  p_annotator integer, p_event_type text, p_source text, p_project integer, p_ls_task integer,
  p_annotation integer, p_result jsonb, p_updated_at timestamptz, p_time_spent_ms integer,
  p_lead_time double precision, p_was_cancelled boolean, p_review_decision text, p_review_reason text,
  OUT outcome text, OUT batch_id integer, OUT ready boolean, OUT review_recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_event bigint;
BEGIN
  SELECT * INTO r FROM labelfleet_apply_annotation(p_annotator, p_event_type, p_project, p_ls_task, p_annotation,
    p_result, p_updated_at, p_lead_time, p_was_cancelled, p_review_decision, p_review_reason);
  outcome := r.outcome;
  batch_id := r.batch_id;
  ready := r.ready;
  review_recorded := r.review_recorded;
  IF r.outcome IN ('gold', 'duplicate') THEN
    RETURN;
  END IF;
  INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_project_id, ls_task_id, ls_annotation_id,
                                 annotation_updated_at, time_spent_ms, source)
  VALUES (p_annotator, r.batch_id, p_event_type, p_project, p_ls_task, p_annotation, r.key_ts, p_time_spent_ms, p_source)
  ON CONFLICT DO NOTHING
  RETURNING id INTO v_event;
  IF v_event IS NULL THEN
    -- The same event recorded meanwhile about no task of ours: undo; the retry is a duplicate.
    RAISE EXCEPTION 'annotation event recorded concurrently' USING ERRCODE = 'unique_violation';
  END IF;
END $$;

-- Group ingestion: the events that arrived while the previous call ran, in one call and one
-- transaction. Every task involved is locked first, in id order; events are applied in
-- (annotator, assignment, task, arrival) order; the event rows are recorded last, in one INSERT
-- (one hourly-rollup update) — the global lock order above, so no deadlock. A repeat of an event
-- within the group is a duplicate. One row per event (its index in the array).
CREATE FUNCTION labelfleet_ingest_annotations(p_events jsonb)
RETURNS TABLE (idx integer, outcome text, batch_id integer, ready boolean, review_recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  r record;
  v_key text;
  v_seen text[] := '{}';
  v_rows jsonb := '[]';
  v_expected integer := 0;
  v_inserted integer;
BEGIN
  PERFORM 1
     FROM assignment_tasks t
     JOIN assignments a ON a.id = t.assignment_id
     JOIN jsonb_to_recordset(p_events) AS x(annotator integer, project integer, ls_task integer)
       ON a.annotator_id = x.annotator AND t.ls_task_id = x.ls_task AND (x.project IS NULL OR a.ls_project_id = x.project)
    ORDER BY t.id
      FOR UPDATE OF t;
  FOR e IN
    SELECT x.*, m.assignment_id AS asg
      FROM jsonb_to_recordset(p_events) AS x(
        i integer, annotator integer, event_type text, source text, project integer, ls_task integer, annotation integer,
        result jsonb, updated_at timestamptz, time_spent_ms integer, lead_time double precision, was_cancelled boolean,
        review_decision text, review_reason text)
      LEFT JOIN LATERAL (
        SELECT t.assignment_id FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
         WHERE a.annotator_id = x.annotator AND t.ls_task_id = x.ls_task AND (x.project IS NULL OR a.ls_project_id = x.project)
         ORDER BY (a.status = 'in_progress') DESC, a.id DESC LIMIT 1) m ON true
     ORDER BY x.annotator, m.assignment_id NULLS LAST, x.ls_task, x.i
  LOOP
    idx := e.i;
    v_key := e.annotator || ':' || e.annotation || ':' || e.event_type || ':' ||
             coalesce(CASE WHEN e.event_type = 'annotation_created' THEN NULL ELSE e.updated_at END::text, '');
    IF v_key = ANY (v_seen) THEN
      outcome := 'duplicate';
      batch_id := e.asg;
      ready := false;
      review_recorded := false;
      RETURN NEXT;
      CONTINUE;
    END IF;
    SELECT * INTO r FROM labelfleet_apply_annotation(e.annotator, e.event_type, e.project, e.ls_task, e.annotation,
      e.result, e.updated_at, e.lead_time, e.was_cancelled, e.review_decision, e.review_reason);
    outcome := r.outcome;
    batch_id := r.batch_id;
    ready := r.ready;
    review_recorded := r.review_recorded;
    IF r.outcome NOT IN ('gold', 'duplicate') THEN
      v_seen := v_seen || v_key;
      v_expected := v_expected + 1;
      v_rows := v_rows || jsonb_build_object(
        'annotator_id', e.annotator, 'assignment_id', r.batch_id, 'event_type', e.event_type, 'ls_project_id', e.project,
        'ls_task_id', e.ls_task, 'ls_annotation_id', e.annotation, 'annotation_updated_at', r.key_ts,
        'time_spent_ms', e.time_spent_ms, 'source', e.source);
    END IF;
    RETURN NEXT;
  END LOOP;

  IF v_expected > 0 THEN
    INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_project_id, ls_task_id, ls_annotation_id,
                                   annotation_updated_at, time_spent_ms, source)
    SELECT y.annotator_id, y.assignment_id, y.event_type, y.ls_project_id, y.ls_task_id, y.ls_annotation_id,
           y.annotation_updated_at, y.time_spent_ms, y.source
      FROM jsonb_to_recordset(v_rows) AS y(annotator_id integer, assignment_id integer, event_type text, ls_project_id integer,
           ls_task_id integer, ls_annotation_id integer, annotation_updated_at timestamptz, time_spent_ms integer, source text)
     ORDER BY y.annotator_id, y.ls_annotation_id, y.event_type
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted <> v_expected THEN
      RAISE EXCEPTION 'annotation event recorded concurrently' USING ERRCODE = 'unique_violation';
    END IF;
  END IF;
END $$;
