-- Webhook ingestion at the database's pace (issue 15): the per-annotator rollups of
-- annotation_events — per UTC hour (migration 0004) and per UTC day (migration 0033) — are kept by
-- one set of statement triggers and one function, instead of two sets that each repeated the same
-- aggregation (four copies of the rules): one trigger call and one statement per writing statement.
--
-- The rules are those of 0004/0018/0033: annotation_created events only; an UPDATE is a removal of
-- the old rows then an insertion of the new ones; a removal only UPDATEs (a cascade that already
-- removed the rollup row is a no-op) and drops rows whose count reaches 0; TRUNCATE clears both.
-- The time buckets are labelfleet_time_bucket's (migration 0018). Rows are upserted in key order,
-- the hourly table before the daily one, in every path, so concurrent writers never deadlock.
-- Cost: no measurable change per ingestion call (backend CPU, paired runs); one rule instead of four.

DROP TRIGGER annotation_events_hourly_ins ON annotation_events;
DROP TRIGGER annotation_events_hourly_del ON annotation_events;
DROP TRIGGER annotation_events_hourly_upd_a_old ON annotation_events;
DROP TRIGGER annotation_events_hourly_upd_b_new ON annotation_events;
DROP TRIGGER annotation_events_hourly_truncate ON annotation_events;
DROP TRIGGER annotation_events_daily_ins ON annotation_events;
DROP TRIGGER annotation_events_daily_del ON annotation_events;
DROP TRIGGER annotation_events_daily_upd_a_old ON annotation_events;
DROP TRIGGER annotation_events_daily_upd_b_new ON annotation_events;
DROP TRIGGER annotation_events_daily_truncate ON annotation_events;
DROP FUNCTION annotation_hourly_add();
DROP FUNCTION annotation_hourly_sub();
DROP FUNCTION annotation_hourly_clear();
DROP FUNCTION annotation_daily_add();
DROP FUNCTION annotation_daily_sub();
DROP FUNCTION annotation_daily_clear();

-- Both rollups from one aggregation of the statement's rows (`changed_rows`, the name every
-- trigger below gives its transition table): TG_ARGV[0] 1 (rows added) or -1 (rows removed). Per
-- (annotator, UTC hour) into the hourly rollup, then summed per UTC day into the daily one, in one
-- statement (the daily upsert waits for the hourly one: it reads its row count first), each in
-- key order. Added rows are upserted; removed ones only update rows that exist, then rows whose
-- count reached 0 are dropped.
CREATE FUNCTION annotation_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_sign integer := TG_ARGV[0]::integer;
BEGIN
  WITH h AS (
    SELECT e.annotator_id, date_trunc('hour', e.created_at, 'UTC') AS hour, date_trunc('day', e.created_at, 'UTC') AS day,
           v_sign * count(*) AS n, v_sign * count(e.time_spent_ms) AS timed, v_sign * coalesce(sum(e.time_spent_ms), 0) AS spent,
           v_sign * count(*) FILTER (WHERE labelfleet_time_bucket(e.time_spent_ms) = 0) AS b0,
           v_sign * count(*) FILTER (WHERE labelfleet_time_bucket(e.time_spent_ms) = 1) AS b1,
           v_sign * count(*) FILTER (WHERE labelfleet_time_bucket(e.time_spent_ms) = 2) AS b2,
           v_sign * count(*) FILTER (WHERE labelfleet_time_bucket(e.time_spent_ms) = 3) AS b3
      FROM changed_rows e
     WHERE e.event_type = 'annotation_created'
     GROUP BY 1, 2, 3
  ),
  hourly AS (
    INSERT INTO annotation_hourly AS r (annotator_id, hour, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
    SELECT h.annotator_id, h.hour, h.n, h.timed, h.spent, h.b0, h.b1, h.b2, h.b3
      FROM h
     WHERE v_sign > 0 OR EXISTS (SELECT 1 FROM annotation_hourly x WHERE x.annotator_id = h.annotator_id AND x.hour = h.hour)
     ORDER BY h.annotator_id, h.hour
    ON CONFLICT (annotator_id, hour) DO UPDATE SET
      created_count = r.created_count + EXCLUDED.created_count,
      timed_count   = r.timed_count + EXCLUDED.timed_count,
      time_spent_ms = r.time_spent_ms + EXCLUDED.time_spent_ms,
      under10s      = r.under10s + EXCLUDED.under10s,
      under30s      = r.under30s + EXCLUDED.under30s,
      under60s      = r.under60s + EXCLUDED.under60s,
      over60s       = r.over60s + EXCLUDED.over60s
    RETURNING 1
  )
  INSERT INTO annotation_daily AS r (annotator_id, day, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
  SELECT h.annotator_id, h.day, sum(h.n), sum(h.timed), sum(h.spent), sum(h.b0), sum(h.b1), sum(h.b2), sum(h.b3)
    FROM h
   WHERE (SELECT count(*) FROM hourly) >= 0
     AND (v_sign > 0 OR EXISTS (SELECT 1 FROM annotation_daily x WHERE x.annotator_id = h.annotator_id AND x.day = h.day))
   GROUP BY h.annotator_id, h.day
   ORDER BY h.annotator_id, h.day
  ON CONFLICT (annotator_id, day) DO UPDATE SET
    created_count = r.created_count + EXCLUDED.created_count,
    timed_count   = r.timed_count + EXCLUDED.timed_count,
    time_spent_ms = r.time_spent_ms + EXCLUDED.time_spent_ms,
    under10s      = r.under10s + EXCLUDED.under10s,
    under30s      = r.under30s + EXCLUDED.under30s,
    under60s      = r.under60s + EXCLUDED.under60s,
    over60s       = r.over60s + EXCLUDED.over60s;
  IF v_sign < 0 THEN
    DELETE FROM annotation_hourly r USING (SELECT DISTINCT annotator_id, date_trunc('hour', created_at, 'UTC') AS hour FROM changed_rows) d
     WHERE r.annotator_id = d.annotator_id AND r.hour = d.hour AND r.created_count <= 0;
    DELETE FROM annotation_daily r USING (SELECT DISTINCT annotator_id, date_trunc('day', created_at, 'UTC') AS day FROM changed_rows) d
     WHERE r.annotator_id = d.annotator_id AND r.day = d.day AND r.created_count <= 0;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION annotation_rollups_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM annotation_hourly;
  DELETE FROM annotation_daily;
  RETURN NULL;
END $$;

CREATE TRIGGER annotation_events_rollups_ins AFTER INSERT ON annotation_events
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_rollups_apply('1');
CREATE TRIGGER annotation_events_rollups_del AFTER DELETE ON annotation_events
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_rollups_apply('-1');
-- An UPDATE is a removal of the old rows, then an insertion of the new ones (triggers fire in name order).
CREATE TRIGGER annotation_events_rollups_upd_a_old AFTER UPDATE ON annotation_events
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_rollups_apply('-1');
CREATE TRIGGER annotation_events_rollups_upd_b_new AFTER UPDATE ON annotation_events
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_rollups_apply('1');
CREATE TRIGGER annotation_events_rollups_truncate AFTER TRUNCATE ON annotation_events
  FOR EACH STATEMENT EXECUTE FUNCTION annotation_rollups_clear();
