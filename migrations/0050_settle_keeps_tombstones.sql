-- A deleted annotation never comes back (issue 11; found by an adversarial review).
--
-- Settling (the comparison with Label Studio, src/workflows/compare.ts) applied an export's
-- annotation even when its deletion had been recorded: an export read just before the annotator
-- deleted that annotation, then settled just after the deletion webhook, put the deleted
-- annotation back on its task — counted toward the batch and exported. Label Studio never gives
-- a deleted annotation's id back, so a tombstone (its annotation_deleted row) is newer than any
-- export still showing that annotation: settling now leaves such a task as the deletion left it,
-- as ingestion always did. labelfleet_ingest_annotations of migration 0025, that one condition
-- (`live`) changed.
CREATE OR REPLACE FUNCTION labelfleet_ingest_annotations(p_events jsonb, p_gold boolean DEFAULT false, p_settle boolean DEFAULT false)
RETURNS TABLE (idx integer, outcome text, batch_id integer, ready boolean, review_recorded boolean, task_id integer)
LANGUAGE plpgsql
-- The events' row count is unknown to the planner whatever p_events holds, so a custom plan per
-- call buys nothing and costs its planning (a third of a one-event call, measured).
SET plan_cache_mode = force_generic_plan
-- Migration 0044's setting, restated: CREATE OR REPLACE sets every property the command names or implies.
SET enable_seqscan = off
AS $$
DECLARE
  r record;
  v_tasks integer[];
BEGIN
  -- Every task an event may name: per event, lookups by index (its Label Studio task id, then the
  -- batch), so a call costs the same whatever the number of tasks, batches and annotators.
  SELECT coalesce(array_agg(m.id), '{}') INTO v_tasks
    FROM jsonb_to_recordset(p_events) AS x(annotator integer, project integer, ls_task integer)
   CROSS JOIN LATERAL (
         SELECT t.id FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
          WHERE t.ls_task_id = x.ls_task AND a.annotator_id = x.annotator AND (x.project IS NULL OR a.ls_project_id = x.project)
         OFFSET 0) m;  -- not flattened into a join: the planner would hash the whole table
  -- Those tasks, locked in id order.
  PERFORM 1 FROM assignment_tasks t WHERE t.id = ANY (v_tasks) ORDER BY t.id FOR UPDATE;
  -- Batches that may gain a completed task (an open task of theirs is named; settling: any), in id order.
  PERFORM 1
     FROM assignments b
    WHERE b.id = ANY (ARRAY(SELECT t.assignment_id FROM assignment_tasks t WHERE t.id = ANY (v_tasks) AND (t.status = 'open' OR p_settle)))
      AND b.status = 'in_progress'
    ORDER BY b.id
      FOR NO KEY UPDATE OF b;
  -- Annotators whose lastActiveAt moves forward, in id order.
  PERFORM 1
     FROM annotators n
     JOIN (SELECT x.annotator, max(coalesce(x.updated_at, now())) AS at
             FROM jsonb_to_recordset(p_events) AS x(annotator integer, updated_at timestamptz)
            GROUP BY 1) x ON x.annotator = n.id
    WHERE NOT p_settle
      AND n.id = ANY (ARRAY(SELECT DISTINCT y.annotator FROM jsonb_to_recordset(p_events) AS y(annotator integer)))
      AND (n.last_active_at IS NULL OR n.last_active_at < x.at)
    ORDER BY n.id
      FOR NO KEY UPDATE OF n;

  FOR r IN
  WITH x AS (
    SELECT x.*, CASE WHEN x.event_type = 'annotation_created' THEN NULL ELSE x.updated_at END AS key_ts
      FROM jsonb_to_recordset(p_events) AS x(
        i integer, annotator integer, event_type text, source text, project integer, ls_task integer, annotation integer,
        result jsonb, updated_at timestamptz, time_spent_ms integer, lead_time double precision, was_cancelled boolean,
        review_decision text, review_reason text)
  ),
  -- Each event with the task it names (the in-progress batch's first, then the newest batch's)
  -- and its place among the group's events with the same key.
  m AS (
    SELECT x.*, t.id AS tid, t.assignment_id AS asg, t.status AS tstatus, t.is_gold, t.review_applied_at,
           t.ls_annotation_updated_at AS t_ts, t.ls_annotation_id AS t_annotation, t.batch_status,
           row_number() OVER (PARTITION BY x.annotator, x.annotation, x.event_type, coalesce(x.key_ts, 'epoch'::timestamptz)
                              ORDER BY x.i) AS nth
      FROM x
      LEFT JOIN LATERAL (
        SELECT t.id, t.assignment_id, t.status, t.is_gold, t.review_applied_at, t.ls_annotation_updated_at, t.ls_annotation_id,
               a.status AS batch_status
          FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
         WHERE a.annotator_id = x.annotator AND t.ls_task_id = x.ls_task AND (x.project IS NULL OR a.ls_project_id = x.project)
         ORDER BY (a.status = 'in_progress') DESC, a.id DESC
         LIMIT 1) t ON true
  ),
  -- gold, duplicate (of a stored event or of an earlier one in the group) or new; new events
  -- about a task of an in-progress batch whose annotation has no tombstone are candidates.
  -- (Lateral probes, so each is one lookup in the unique key's index however many events exist.)
  k AS (
    SELECT m.*,
           CASE WHEN m.tid IS NOT NULL AND m.is_gold AND NOT p_gold THEN 'gold'
                WHEN p_settle THEN 'new'
                WHEN m.nth > 1 OR dup.found IS NOT NULL THEN 'duplicate'
                ELSE 'new' END AS kind,
           m.tid IS NOT NULL AND m.batch_status = 'in_progress' AND m.tstatus <> 'removed' AND tomb.found IS NULL AS live
      FROM m
      LEFT JOIN LATERAL (
        SELECT true AS found FROM annotation_events d
         WHERE d.annotator_id = m.annotator AND d.ls_annotation_id = m.annotation AND d.event_type = m.event_type
           AND coalesce(d.annotation_updated_at, 'epoch'::timestamptz) = coalesce(m.key_ts, 'epoch'::timestamptz)
         LIMIT 1) dup ON true
      LEFT JOIN LATERAL (
        SELECT true AS found FROM annotation_events d
         WHERE d.annotator_id = m.annotator AND d.ls_annotation_id = m.annotation AND d.event_type = 'annotation_deleted'
           AND coalesce(d.annotation_updated_at, 'epoch'::timestamptz) = 'epoch'::timestamptz
         LIMIT 1) tomb ON true
  ),
  -- The ordering rule, set-based: taken in arrival order, an event applies when the task holds no
  -- timestamp yet or its updated_at is at least the newest one before it (the task's own and the
  -- group's earlier candidates'); the last one applied is what the task holds.
  c AS (
    SELECT k.*,
           greatest(k.t_ts, max(k.updated_at) OVER (PARTITION BY k.tid ORDER BY k.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) AS before_ts
      FROM k
     WHERE k.kind = 'new' AND k.live
  ),
  a AS (
    SELECT c.*, row_number() OVER (PARTITION BY c.tid ORDER BY c.i DESC) = 1 AS last_applied,
           row_number() OVER (PARTITION BY c.tid ORDER BY c.i) = 1 AS first_applied
      FROM c
     WHERE CASE WHEN p_settle
                THEN NOT (CASE WHEN c.annotation IS NULL THEN c.tstatus = 'open'
                               ELSE c.tstatus = 'annotated' AND c.t_annotation = c.annotation AND coalesce(c.t_ts >= c.updated_at, false) END)
                ELSE c.before_ts IS NULL OR c.updated_at >= c.before_ts END
  ),
  tasks AS (
    UPDATE assignment_tasks t
       SET result = a.result, ls_annotation_id = a.annotation,
           ls_annotation_updated_at = CASE WHEN a.annotation IS NULL THEN NULL ELSE a.updated_at END,
           lead_time_seconds = CASE WHEN a.annotation IS NULL THEN NULL ELSE a.lead_time END,
           skipped = a.annotation IS NOT NULL AND coalesce(a.was_cancelled, false),
           status = CASE WHEN a.annotation IS NULL THEN 'open' ELSE 'annotated' END,
           annotated_at = CASE WHEN a.annotation IS NULL THEN NULL ELSE coalesce(t.annotated_at, now()) END, updated_at = now(),
           review_decision = CASE WHEN t.review_applied_at IS NOT NULL THEN t.review_decision WHEN t.is_gold THEN NULL ELSE a.review_decision END,
           review_reason = CASE WHEN t.review_applied_at IS NOT NULL THEN t.review_reason WHEN t.is_gold THEN NULL ELSE a.review_reason END
      FROM a
     WHERE a.last_applied AND t.id = a.tid
    RETURNING t.id
  ),
  -- Tasks annotated now that were open: one more completed task each in their batch (settling:
  -- one fewer for a task reopened).
  done AS (
    SELECT a.asg, sum(CASE WHEN a.tstatus = 'open' AND a.annotation IS NOT NULL THEN 1
                           WHEN a.tstatus = 'annotated' AND a.annotation IS NULL THEN -1 ELSE 0 END)::integer AS n
      FROM a WHERE a.first_applied GROUP BY a.asg
  ),
  batches AS (
    UPDATE assignments b SET completed_count = greatest(b.completed_count + done.n, 0), updated_at = now()
      FROM done
     WHERE b.id = done.asg AND done.n <> 0
    RETURNING b.id, b.completed_count, b.task_count
  ),
  touched AS (
    UPDATE annotators n SET last_active_at = s.at
      FROM (SELECT k.annotator, max(coalesce(k.updated_at, now())) AS at FROM k WHERE k.kind = 'new' AND NOT p_settle GROUP BY 1) s
     WHERE n.id = s.annotator AND n.id = ANY (ARRAY(SELECT DISTINCT k.annotator FROM k))
       AND (n.last_active_at IS NULL OR n.last_active_at < s.at)
    RETURNING n.id
  ),
  recorded AS (
    INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_project_id, ls_task_id, ls_annotation_id,
                                   annotation_updated_at, time_spent_ms, source)
    SELECT k.annotator, k.asg, k.event_type, k.project, k.ls_task, k.annotation, k.key_ts, k.time_spent_ms, k.source
      FROM k
     WHERE k.kind = 'new' AND NOT p_settle
     ORDER BY k.annotator, k.annotation, k.event_type
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT k.i, CASE WHEN k.kind <> 'new' THEN k.kind WHEN a.i IS NOT NULL THEN 'applied' ELSE 'recorded' END AS outcome,
         k.asg,
         coalesce(a.first_applied AND a.tstatus = 'open' AND bt.task_count > 0 AND bt.completed_count >= bt.task_count, false) AS ready,
         coalesce(a.i IS NOT NULL AND k.review_applied_at IS NULL AND k.review_decision IS NOT NULL AND NOT k.is_gold, false) AS review,
         k.tid,
         (SELECT count(*) FROM recorded) < (SELECT count(*) FROM k WHERE k.kind = 'new' AND NOT p_settle) AS lost_race
    FROM k
    LEFT JOIN a ON a.i = k.i
    LEFT JOIN batches bt ON bt.id = a.asg
  LOOP
    IF r.lost_race THEN
      -- An event about no task of ours recorded meanwhile by another call: undo; the retry is a duplicate.
      RAISE EXCEPTION 'annotation event recorded concurrently' USING ERRCODE = 'unique_violation';
    END IF;
    idx := r.i;
    outcome := r.outcome;
    batch_id := r.asg;
    ready := r.ready;
    review_recorded := r.review;
    task_id := r.tid;
    RETURN NEXT;
  END LOOP;
END $$;
