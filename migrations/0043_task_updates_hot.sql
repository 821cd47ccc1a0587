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
--   annotation they hold (labelfleet_delete_annotations), always with its annotator, so it now
--   goes annotator → batches (the project Label Studio names; without one, the open batches and
--   those the annotation's events named) → their tasks, as an array of batch ids.
--
-- fillfactor 40: a task row grows from ~150 bytes to ~550 when its result lands; pages filled to
-- 40 % keep that growth on the page. Pages written from now on (new batches) follow it.
DROP INDEX assignment_tasks_assignment_id_idx;
DROP INDEX assignment_tasks_ls_annotation_idx;
ALTER TABLE assignment_tasks SET (fillfactor = 40);

-- labelfleet_delete_annotations of migration 0018, its two task lookups by the annotator's batches.
CREATE OR REPLACE FUNCTION labelfleet_delete_annotations(
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
  v_batches integer[];
BEGIN
  recorded := 0;
  applied := 0;
  gold_removed := 0;
  -- The batches whose tasks may hold these annotations; their tasks are then looked up by batch
  -- (assignment_tasks_assignment_order_idx), then by annotation. The project Label Studio names;
  -- without one, the annotator's in-progress batches (the only ones whose tasks reopen) and the
  -- batches its events of these annotations named (annotation_events_dedup_key): bounded by open
  -- work and by the ids, never by the annotator's history.
  v_batches := ARRAY(
    SELECT a.id FROM assignments a WHERE a.annotator_id = p_annotator AND a.ls_project_id = p_project
    UNION
    SELECT a.id FROM assignments a WHERE p_project IS NULL AND a.annotator_id = p_annotator AND a.status = 'in_progress'
    UNION
    SELECT e.assignment_id FROM annotation_events e
     WHERE p_project IS NULL AND e.annotator_id = p_annotator AND e.ls_annotation_id = ANY (p_ids) AND e.assignment_id IS NOT NULL);
  -- The tasks holding any of these annotations, locked in id order (lock order: tasks first).
  PERFORM 1 FROM assignment_tasks t
   WHERE t.assignment_id = ANY (v_batches) AND t.ls_annotation_id = ANY (p_ids)
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
           WHERE t.assignment_id = ANY (v_batches) AND t.ls_annotation_id = ANY (v_new)
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
