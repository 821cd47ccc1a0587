-- Webhook ingestion has one implementation, here (issue 11, items 7 and 9). Every annotation
-- event — webhook or found by reconciliation, gold or not — is applied by these functions;
-- src/workflows/ingest.ts only groups calls and, for gold tasks, adds the score (gold-scoring.ts)
-- in the same transaction. Rules (README "Batches" → Webhooks):
--
-- Idempotency: an event is a row in annotation_events, unique on (annotator, annotation id, event
-- type, updated_at); CREATED and deletions are keyed without a timestamp. A duplicate changes
-- nothing. Order: a task keeps the updated_at of the annotation applied last; an older event is
-- recorded, not applied. A deletion leaves a tombstone (its annotation_deleted row): later events
-- about that annotation are recorded, not applied. Events about batches not in progress are
-- recorded and change nothing. A review decision is recorded on a task until the reconciler
-- applies it (review_applied_at), then it is final; gold tasks carry none.
--
-- Lock order, in every path: task(s) in id order; assignment(s) in id order; gold quality;
-- annotator; event rows and their hourly rollup — so concurrent ingestions never deadlock.

DROP FUNCTION labelfleet_ingest_annotations(jsonb);
DROP FUNCTION labelfleet_ingest_annotation(integer, text, text, integer, integer, integer, jsonb, timestamptz, integer,
  double precision, boolean, text, text);
DROP FUNCTION labelfleet_apply_annotation(integer, text, integer, integer, integer, jsonb, timestamptz, double precision,
  boolean, text, text);

-- Locks the task and applies CREATED/UPDATED to it (the caller records the event row). A gold
-- task is left untouched ('gold') unless p_gold: then it is applied like any other and the
-- caller scores it in the same transaction (task_id names it).
CREATE FUNCTION labelfleet_apply_annotation(
  p_annotator integer, p_event_type text, p_project integer, p_ls_task integer, p_annotation integer,
  p_result jsonb, p_updated_at timestamptz, p_lead_time double precision, p_was_cancelled boolean,
  p_review_decision text, p_review_reason text, p_gold boolean,
  OUT outcome text, OUT batch_id integer, OUT ready boolean, OUT review_recorded boolean, OUT key_ts timestamptz,
  OUT task_id integer)
LANGUAGE plpgsql AS $$
DECLARE
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
    INTO task_id, batch_id, v_status, v_gold, v_applied_at, v_batch_status
    FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
   WHERE a.annotator_id = p_annotator AND t.ls_task_id = p_ls_task
     AND (p_project IS NULL OR a.ls_project_id = p_project)
   ORDER BY (a.status = 'in_progress') DESC, a.id DESC
   LIMIT 1
   FOR UPDATE OF t;
  IF task_id IS NOT NULL AND v_gold AND NOT p_gold THEN
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

  IF task_id IS NOT NULL AND v_batch_status = 'in_progress' AND NOT EXISTS (
       SELECT 1 FROM annotation_events d
        WHERE d.annotator_id = p_annotator AND d.ls_annotation_id = p_annotation AND d.event_type = 'annotation_deleted'
          AND coalesce(d.annotation_updated_at, 'epoch'::timestamptz) = 'epoch'::timestamptz) THEN
    UPDATE assignment_tasks t
       SET result = p_result, ls_annotation_id = p_annotation, ls_annotation_updated_at = p_updated_at,
           lead_time_seconds = p_lead_time, skipped = p_was_cancelled, status = 'annotated',
           annotated_at = coalesce(t.annotated_at, now()), updated_at = now(),
           review_decision = CASE WHEN v_applied_at IS NULL THEN CASE WHEN v_gold THEN NULL ELSE p_review_decision END
                                  ELSE t.review_decision END,
           review_reason = CASE WHEN v_applied_at IS NULL THEN CASE WHEN v_gold THEN NULL ELSE p_review_reason END
                                ELSE t.review_reason END
     WHERE t.id = task_id AND (t.ls_annotation_updated_at IS NULL OR t.ls_annotation_updated_at <= p_updated_at);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows > 0 THEN
      outcome := 'applied';
      review_recorded := v_applied_at IS NULL AND p_review_decision IS NOT NULL AND NOT v_gold;
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

-- One CREATED/UPDATED event: apply it, then record it. p_gold as above.
CREATE FUNCTION labelfleet_ingest_annotation(
  p_annotator integer, p_event_type text, p_source text, p_project integer, p_ls_task integer,
  p_annotation integer, p_result jsonb, p_updated_at timestamptz, p_time_spent_ms integer,
  p_lead_time double precision, p_was_cancelled boolean, p_review_decision text, p_review_reason text,
  p_gold boolean,
  OUT outcome text, OUT batch_id integer, OUT ready boolean, OUT review_recorded boolean, OUT task_id integer)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_event bigint;
BEGIN
  SELECT * INTO r FROM labelfleet_apply_annotation(p_annotator, p_event_type, p_project, p_ls_task, p_annotation,
    p_result, p_updated_at, p_lead_time, p_was_cancelled, p_review_decision, p_review_reason, p_gold);
  outcome := r.outcome;
  batch_id := r.batch_id;
  ready := r.ready;
  review_recorded := r.review_recorded;
  task_id := r.task_id;
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
-- (one hourly-rollup update). A repeat of an event within the group is a duplicate. Gold tasks
-- come back 'gold', untouched. One row per event (its index in the array).
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
      e.result, e.updated_at, e.lead_time, e.was_cancelled, e.review_decision, e.review_reason, false);
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

-- ANNOTATIONS_DELETED, set-based: a fixed number of statements whatever the number of ids (one
-- webhook with 10,000 ids took 95 s and four queries per id before). For each id not deleted
-- before: reopen the task holding that annotation (if its batch is in progress and it was
-- annotated: result, annotation id and its updated_at cleared, so the task takes whatever
-- annotation Label Studio still has; review decision cleared unless applied), one fewer completed
-- task in its batch, its gold result dropped; the annotator touched; one tombstone row per id.
-- recorded: tombstones written (0: a duplicate); applied: tasks reopened; gold_removed: gold
-- results dropped (the caller re-evaluates quality in the same transaction).
CREATE FUNCTION labelfleet_delete_annotations(
  p_annotator integer, p_project integer, p_ls_task integer, p_ids integer[], p_source text,
  OUT recorded integer, OUT applied integer, OUT gold_removed integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_new integer[];
  v_ann integer[];
  v_task integer[];
  v_batch integer[];
  v_reopen integer[];
  v_gold integer[];
BEGIN
  recorded := 0;
  applied := 0;
  gold_removed := 0;
  -- The tasks holding any of these annotations, locked in id order (lock order: tasks first).
  PERFORM 1 FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
   WHERE a.annotator_id = p_annotator AND t.ls_annotation_id = ANY (p_ids)
     AND (p_project IS NULL OR a.ls_project_id = p_project)
   ORDER BY t.id
     FOR UPDATE OF t;
  -- Ids without a tombstone yet (a new statement: sees deletions committed while we waited).
  SELECT coalesce(array_agg(DISTINCT i), '{}') INTO v_new
    FROM unnest(p_ids) AS i
   WHERE NOT EXISTS (SELECT 1 FROM annotation_events d
                      WHERE d.annotator_id = p_annotator AND d.ls_annotation_id = i AND d.event_type = 'annotation_deleted'
                        AND coalesce(d.annotation_updated_at, 'epoch'::timestamptz) = 'epoch'::timestamptz);
  IF cardinality(v_new) = 0 THEN
    RETURN;
  END IF;

  -- For each new id, the task that holds it (the in-progress batch first, then the newest), as
  -- parallel arrays: m_ann[k] is held by task m_task[k] of batch m_batch[k].
  SELECT coalesce(array_agg(m.ls_annotation_id), '{}'), coalesce(array_agg(m.id), '{}'), coalesce(array_agg(m.assignment_id), '{}'),
         coalesce(array_agg(m.id ORDER BY m.id) FILTER (WHERE m.reopen), '{}'),
         coalesce(array_agg(m.id) FILTER (WHERE m.reopen AND m.is_gold), '{}')
    INTO v_ann, v_task, v_batch, v_reopen, v_gold
    FROM (SELECT DISTINCT ON (t.ls_annotation_id) t.ls_annotation_id, t.id, t.assignment_id, t.is_gold,
                 a.status = 'in_progress' AND t.status = 'annotated' AS reopen
            FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
           WHERE a.annotator_id = p_annotator AND t.ls_annotation_id = ANY (v_new)
             AND (p_project IS NULL OR a.ls_project_id = p_project)
           ORDER BY t.ls_annotation_id, (a.status = 'in_progress') DESC, a.id DESC) m;

  IF cardinality(v_reopen) > 0 THEN
    UPDATE assignment_tasks t
       SET status = 'open', result = NULL, ls_annotation_id = NULL, ls_annotation_updated_at = NULL,
           lead_time_seconds = NULL, skipped = false, annotated_at = NULL, updated_at = now(),
           review_decision = CASE WHEN t.review_applied_at IS NULL THEN NULL ELSE t.review_decision END,
           review_reason = CASE WHEN t.review_applied_at IS NULL THEN NULL ELSE t.review_reason END
     WHERE t.id = ANY (v_reopen);
    GET DIAGNOSTICS applied = ROW_COUNT;
    PERFORM 1 FROM assignments a
     WHERE a.id IN (SELECT b FROM unnest(v_task, v_batch) AS x(t, b) WHERE x.t = ANY (v_reopen))
     ORDER BY a.id FOR UPDATE;
    UPDATE assignments a SET completed_count = greatest(a.completed_count - d.n, 0), updated_at = now()
      FROM (SELECT x.b, count(*)::integer AS n FROM unnest(v_task, v_batch) AS x(t, b) WHERE x.t = ANY (v_reopen) GROUP BY 1) d
     WHERE a.id = d.b;
    IF cardinality(v_gold) > 0 THEN
      DELETE FROM gold_results g WHERE g.assignment_task_id = ANY (v_gold);
      GET DIAGNOSTICS gold_removed = ROW_COUNT;
    END IF;
  END IF;

  UPDATE annotators n SET last_active_at = now()
   WHERE n.id = p_annotator AND (n.last_active_at IS NULL OR n.last_active_at < now());

  INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_project_id, ls_task_id, ls_annotation_id,
                                 annotation_updated_at, time_spent_ms, source)
  SELECT p_annotator, d.assignment_id, 'annotation_deleted', p_project, p_ls_task, i, NULL, NULL, p_source
    FROM unnest(v_new) AS i LEFT JOIN unnest(v_ann, v_batch) AS d(ls_annotation_id, assignment_id) ON d.ls_annotation_id = i
   ORDER BY i
  ON CONFLICT DO NOTHING;
  -- Ids no task of ours holds may be recorded concurrently by a duplicate: that one counts them.
  GET DIAGNOSTICS recorded = ROW_COUNT;
END $$;

-- Time buckets have one home: this function, used by the hourly rollup's triggers (GET
-- /api/monitoring's timeDistribution reads the rollup). Time spent in ms → bucket 0: [0, 10) s
-- (negative counts here), 1: [10, 30) s, 2: [30, 60) s, 3: [60 s, ∞); NULL when not timed.
CREATE FUNCTION labelfleet_time_bucket(p_ms integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_ms IS NULL THEN NULL WHEN p_ms < 10000 THEN 0 WHEN p_ms < 30000 THEN 1 WHEN p_ms < 60000 THEN 2 ELSE 3 END::smallint
$$;

CREATE OR REPLACE FUNCTION annotation_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotation_hourly AS h
    (annotator_id, hour, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
  SELECT annotator_id, date_trunc('hour', created_at, 'UTC'), count(*), count(time_spent_ms),
         coalesce(sum(time_spent_ms), 0),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 0),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 1),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 2),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 3)
    FROM new_rows
   WHERE event_type = 'annotation_created'
   GROUP BY 1, 2
   ORDER BY 1, 2
  ON CONFLICT (annotator_id, hour) DO UPDATE SET
    created_count = h.created_count + EXCLUDED.created_count,
    timed_count   = h.timed_count + EXCLUDED.timed_count,
    time_spent_ms = h.time_spent_ms + EXCLUDED.time_spent_ms,
    under10s     = h.under10s + EXCLUDED.under10s,
    under30s     = h.under30s + EXCLUDED.under30s,
    under60s     = h.under60s + EXCLUDED.under60s,
    over60s      = h.over60s + EXCLUDED.over60s;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION annotation_hourly_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH d AS (
    SELECT annotator_id, date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS n, count(time_spent_ms) AS timed,
           coalesce(sum(time_spent_ms), 0) AS spent,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 0) AS b0,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 1) AS b1,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 2) AS b2,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 3) AS b3
      FROM old_rows
     WHERE event_type = 'annotation_created'
     GROUP BY 1, 2
  )
  UPDATE annotation_hourly h SET
    created_count = h.created_count - d.n,
    timed_count   = h.timed_count - d.timed,
    time_spent_ms = h.time_spent_ms - d.spent,
    under10s     = h.under10s - d.b0,
    under30s     = h.under30s - d.b1,
    under60s     = h.under60s - d.b2,
    over60s      = h.over60s - d.b3
  FROM d
  WHERE h.annotator_id = d.annotator_id AND h.hour = d.hour;
  DELETE FROM annotation_hourly h
   USING (SELECT DISTINCT annotator_id, date_trunc('hour', created_at, 'UTC') AS hour
            FROM old_rows WHERE event_type = 'annotation_created') d
   WHERE h.annotator_id = d.annotator_id AND h.hour = d.hour AND h.created_count <= 0;
  RETURN NULL;
END $$;
