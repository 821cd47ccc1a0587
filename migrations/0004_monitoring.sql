-- Monitoring and quality rollups, maintained by triggers as rows arrive, so GET /api/monitoring
-- and GET /api/quality read a few thousand small rows however many events exist and whoever
-- inserts them (webhooks, reconcile, bulk loads). Statement-level triggers with transition tables:
-- one aggregated upsert per INSERT statement, not one per row.

-- annotation_created events per annotator per UTC hour.
CREATE TABLE annotation_hourly (
  annotator_id   integer NOT NULL REFERENCES annotators (id) ON DELETE CASCADE,
  hour           timestamptz NOT NULL,                -- start of the UTC hour (date_trunc in UTC)
  created_count  integer NOT NULL DEFAULT 0,          -- annotation_created events
  timed_count    integer NOT NULL DEFAULT 0,          -- ... of which carry time_spent_ms
  time_spent_ms  bigint NOT NULL DEFAULT 0,           -- sum of their time_spent_ms
  under10s      integer NOT NULL DEFAULT 0,          -- time spent in [0, 10) s (negative counts here)
  under30s      integer NOT NULL DEFAULT 0,          -- [10, 30) s
  under60s      integer NOT NULL DEFAULT 0,          -- [30, 60) s
  over60s       integer NOT NULL DEFAULT 0,          -- [60, ∞) s
  PRIMARY KEY (annotator_id, hour)
);
CREATE INDEX annotation_hourly_hour_idx ON annotation_hourly (hour);

CREATE FUNCTION annotation_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotation_hourly AS h
    (annotator_id, hour, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
  SELECT annotator_id, date_trunc('hour', created_at, 'UTC'), count(*), count(time_spent_ms),
         coalesce(sum(time_spent_ms), 0),
         count(*) FILTER (WHERE time_spent_ms < 10000),
         count(*) FILTER (WHERE time_spent_ms >= 10000 AND time_spent_ms < 30000),
         count(*) FILTER (WHERE time_spent_ms >= 30000 AND time_spent_ms < 60000),
         count(*) FILTER (WHERE time_spent_ms >= 60000)
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

-- Subtracts removed rows; only UPDATEs, so a cascade that already removed the rollup row is a no-op.
CREATE FUNCTION annotation_hourly_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH d AS (
    SELECT annotator_id, date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS n, count(time_spent_ms) AS timed,
           coalesce(sum(time_spent_ms), 0) AS spent,
           count(*) FILTER (WHERE time_spent_ms < 10000) AS b0,
           count(*) FILTER (WHERE time_spent_ms >= 10000 AND time_spent_ms < 30000) AS b1,
           count(*) FILTER (WHERE time_spent_ms >= 30000 AND time_spent_ms < 60000) AS b2,
           count(*) FILTER (WHERE time_spent_ms >= 60000) AS b3
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

CREATE FUNCTION annotation_hourly_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM annotation_hourly;
  RETURN NULL;
END $$;

CREATE TRIGGER annotation_events_hourly_ins AFTER INSERT ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_hourly_add();
CREATE TRIGGER annotation_events_hourly_del AFTER DELETE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_hourly_sub();
-- An UPDATE is a removal of the old rows, then an insertion of the new ones (triggers fire in name order).
CREATE TRIGGER annotation_events_hourly_upd_a_old AFTER UPDATE ON annotation_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_hourly_sub();
CREATE TRIGGER annotation_events_hourly_upd_b_new AFTER UPDATE ON annotation_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_hourly_add();
CREATE TRIGGER annotation_events_hourly_truncate AFTER TRUNCATE ON annotation_events
  FOR EACH STATEMENT EXECUTE FUNCTION annotation_hourly_clear();

INSERT INTO annotation_hourly
  (annotator_id, hour, created_count, timed_count, time_spent_ms, under10s, under30s, under60s, over60s)
SELECT annotator_id, date_trunc('hour', created_at, 'UTC'), count(*), count(time_spent_ms),
       coalesce(sum(time_spent_ms), 0),
       count(*) FILTER (WHERE time_spent_ms < 10000),
       count(*) FILTER (WHERE time_spent_ms >= 10000 AND time_spent_ms < 30000),
       count(*) FILTER (WHERE time_spent_ms >= 30000 AND time_spent_ms < 60000),
       count(*) FILTER (WHERE time_spent_ms >= 60000)
  FROM annotation_events
 WHERE event_type = 'annotation_created'
 GROUP BY 1, 2;

-- Gold accuracy per annotator, and the state of the below-threshold flag (src/workflows/quality.ts).
CREATE TABLE annotator_quality (
  annotator_id            integer PRIMARY KEY REFERENCES annotators (id) ON DELETE CASCADE,
  evaluation_count        integer NOT NULL DEFAULT 0,
  score_sum               numeric NOT NULL DEFAULT 0,  -- exact decimal sum of gold_results.score
  needs_check             boolean NOT NULL DEFAULT true, -- results changed since the last flag check
  checked_threshold       double precision,             -- settings the last check used
  checked_min_evaluations integer,
  checked_at              timestamptz,
  flagged                 boolean NOT NULL DEFAULT false, -- below threshold as of the last check
  flagged_at              timestamptz
);
CREATE INDEX annotator_quality_needs_check_idx ON annotator_quality (annotator_id) WHERE needs_check;

CREATE FUNCTION annotator_quality_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO annotator_quality AS q (annotator_id, evaluation_count, score_sum, needs_check)
  SELECT annotator_id, count(*), sum(score::numeric), true
    FROM new_rows
   GROUP BY annotator_id
   ORDER BY annotator_id
  ON CONFLICT (annotator_id) DO UPDATE SET
    evaluation_count = q.evaluation_count + EXCLUDED.evaluation_count,
    score_sum        = q.score_sum + EXCLUDED.score_sum,
    needs_check      = true;
  RETURN NULL;
END $$;

CREATE FUNCTION annotator_quality_sub() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH d AS (SELECT annotator_id, count(*) AS n, sum(score::numeric) AS s FROM old_rows GROUP BY annotator_id)
  UPDATE annotator_quality q SET
    evaluation_count = q.evaluation_count - d.n,
    score_sum        = q.score_sum - d.s,
    needs_check      = true
  FROM d
  WHERE q.annotator_id = d.annotator_id;
  RETURN NULL;
END $$;

CREATE FUNCTION annotator_quality_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE annotator_quality SET evaluation_count = 0, score_sum = 0, needs_check = true;
  RETURN NULL;
END $$;

CREATE TRIGGER gold_results_quality_ins AFTER INSERT ON gold_results
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotator_quality_add();
CREATE TRIGGER gold_results_quality_del AFTER DELETE ON gold_results
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotator_quality_sub();
CREATE TRIGGER gold_results_quality_upd_a_old AFTER UPDATE ON gold_results
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotator_quality_sub();
CREATE TRIGGER gold_results_quality_upd_b_new AFTER UPDATE ON gold_results
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotator_quality_add();
CREATE TRIGGER gold_results_quality_truncate AFTER TRUNCATE ON gold_results
  FOR EACH STATEMENT EXECUTE FUNCTION annotator_quality_clear();

INSERT INTO annotator_quality (annotator_id, evaluation_count, score_sum, needs_check)
SELECT annotator_id, count(*), sum(score::numeric), true FROM gold_results GROUP BY annotator_id;
