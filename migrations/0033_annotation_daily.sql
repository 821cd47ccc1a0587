-- Monitoring's "today" at the cost of the annotators shown (issue 15): annotation_created events
-- per annotator per UTC day, beside migration 0004's per hour.
--
-- "Today per annotator" summed annotation_hourly over the hours of today: ~hours elapsed ×
-- annotators rows (17,600 at 1,000 annotators late in the day). A day of the configured zone is
-- now read as whole UTC days from this table, with the rest from the hourly rollup and the raw
-- events at partial-hour edges (src/domain/time-buckets.ts splitForRollups: a UTC day more than
-- half covered is read as the day minus the hours outside it), so a UTC "today" reads one row per
-- annotator and another zone's at most 12 hourly rows per partially covered UTC day (hours still
-- in the future hold no rows); exact in every zone.
--
-- Kept like annotation_hourly: statement-level triggers with transition tables, one aggregated
-- upsert per statement of one row per (annotator, day) it touched, ordered by key. A row belongs
-- to one annotator (no fleet-wide hot row), and the ingestion never has two calls in flight for
-- one annotator, so concurrent ingestions take disjoint rows.
CREATE TABLE annotation_daily (
  annotator_id   integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  day            timestamptz NOT NULL,                -- start of the UTC day (date_trunc in UTC)
  created_count  integer NOT NULL DEFAULT 0,          -- annotation_created events
  timed_count    integer NOT NULL DEFAULT 0,          -- ... of which carry time_spent_ms
  time_spent_ms  bigint NOT NULL DEFAULT 0,           -- sum of their time_spent_ms
  under10s       integer NOT NULL DEFAULT 0,          -- labelfleet_time_bucket 0..3 (migration 0018)
  under30s       integer NOT NULL DEFAULT 0,
  under60s       integer NOT NULL DEFAULT 0,
  over60s        integer NOT NULL DEFAULT 0,
  PRIMARY KEY (annotator_id, day)
);
CREATE INDEX annotation_daily_day_idx ON annotation_daily (day);

CREATE FUNCTION annotation_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotation_daily AS d
    (annotator_id, day, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
  SELECT annotator_id, date_trunc('day', created_at, 'UTC'), count(*), count(time_spent_ms),
         coalesce(sum(time_spent_ms), 0),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 0),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 1),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 2),
         count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 3)
    FROM new_rows
   WHERE event_type = 'annotation_created'
   GROUP BY 1, 2
   ORDER BY 1, 2
  ON CONFLICT (annotator_id, day) DO UPDATE SET
    created_count = d.created_count + EXCLUDED.created_count,
    timed_count   = d.timed_count + EXCLUDED.timed_count,
    time_spent_ms = d.time_spent_ms + EXCLUDED.time_spent_ms,
    under10s      = d.under10s + EXCLUDED.under10s,
    under30s      = d.under30s + EXCLUDED.under30s,
    under60s      = d.under60s + EXCLUDED.under60s,
    over60s       = d.over60s + EXCLUDED.over60s;
  RETURN NULL;
END $$;

-- Subtracts removed rows; only UPDATEs, so a cascade that already removed the rollup row is a no-op.
CREATE FUNCTION annotation_daily_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH s AS (
    SELECT annotator_id, date_trunc('day', created_at, 'UTC') AS day, count(*) AS n, count(time_spent_ms) AS timed,
           coalesce(sum(time_spent_ms), 0) AS spent,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 0) AS b0,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 1) AS b1,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 2) AS b2,
           count(*) FILTER (WHERE labelfleet_time_bucket(time_spent_ms) = 3) AS b3
      FROM old_rows
     WHERE event_type = 'annotation_created'
     GROUP BY 1, 2
  )
  UPDATE annotation_daily d SET
    created_count = d.created_count - s.n,
    timed_count   = d.timed_count - s.timed,
    time_spent_ms = d.time_spent_ms - s.spent,
    under10s      = d.under10s - s.b0,
    under30s      = d.under30s - s.b1,
    under60s      = d.under60s - s.b2,
    over60s       = d.over60s - s.b3
  FROM s
  WHERE d.annotator_id = s.annotator_id AND d.day = s.day;
  DELETE FROM annotation_daily d
   USING (SELECT DISTINCT annotator_id, date_trunc('day', created_at, 'UTC') AS day
            FROM old_rows WHERE event_type = 'annotation_created') s
   WHERE d.annotator_id = s.annotator_id AND d.day = s.day AND d.created_count <= 0;
  RETURN NULL;
END $$;

CREATE FUNCTION annotation_daily_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM annotation_daily;
  RETURN NULL;
END $$;

CREATE TRIGGER annotation_events_daily_ins AFTER INSERT ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_daily_add();
CREATE TRIGGER annotation_events_daily_del AFTER DELETE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_daily_sub();
-- An UPDATE is a removal of the old rows, then an insertion of the new ones (triggers fire in name order).
CREATE TRIGGER annotation_events_daily_upd_a_old AFTER UPDATE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_daily_sub();
CREATE TRIGGER annotation_events_daily_upd_b_new AFTER UPDATE ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_daily_add();
CREATE TRIGGER annotation_events_daily_truncate AFTER TRUNCATE ON annotation_events
  FOR EACH STATEMENT EXECUTE FUNCTION annotation_daily_clear();

-- From migration 0004's hourly rollup, which equals the events' aggregate (a UTC day is 24 UTC hours).
INSERT INTO annotation_daily
  (annotator_id, day, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
SELECT annotator_id, date_trunc('day', hour, 'UTC'), sum(created_count), sum(timed_count), sum(time_spent_ms),
       sum(under10s), sum(under30s), sum(under60s), sum(over60s)
  FROM annotation_hourly
 GROUP BY 1, 2;
