/**
 * `npm run bench -- monitoring`: GET /api/monitoring, /api/monitoring/annotator/:id, /api/quality
 * and /api/monitoring/throughput (the last 30 days by day) over loopback against a real
 * `fleet serve` process, on a fresh database seeded with 1,000 annotators, 1,000,000 annotation events over the last 7 days (inserted through the
 * rollup triggers, as webhooks would), 20,000 assignments, 100,000 gold results and 20,000
 * rejections. GET /api/health in the same run is the baseline. Target (issue 6): p99 < 200 ms.
 *
 * Also reported, to show what the rollup buys: the same "today per annotator" and "per hour"
 * aggregates computed from the rollup and from the raw events, and the cost the triggers add to
 * a single-event INSERT ... ON CONFLICT DO NOTHING (the webhook's write).
 */
import { sql } from 'kysely';
import type { Db } from '../../src/db/index.ts';
import { lastHours, startOfDay } from '../../src/domain/time-buckets.ts';
import { load, processMemoryMb, ratio, stats } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const ANNOTATORS = 1_000;
const EVENTS = 1_000_000;
const EVENT_CHUNK = 200_000;
const ASSIGNMENTS = 20_000;
const GOLD_RESULTS = 100_000;
const REJECTIONS = 20_000;
const DAYS = 7;

export async function seed(db: Db) {
  await sql`INSERT INTO labeling_configs (name, config_xml)
    VALUES ('bench', '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>')`.execute(db);
  await sql`INSERT INTO workflows (name, labeling_config_id, s3_source_path, s3_export_path) VALUES ('bench', 1, 'in/', 'out/')`.execute(db);
  await sql`INSERT INTO gold_tasks (name, s3_image_key, expected_labels, labeling_config_id)
    SELECT 'Gold ' || g, 'gold/' || g || '.jpg', '[{"type":"choices"}]', 1 FROM generate_series(1, 50) g`.execute(db);
  // 70% active, the rest created / stopped / error / deleted.
  await sql`INSERT INTO annotators (name, email, subdomain, status, status_changed_at, reviewed_count, rejection_count)
    SELECT 'Annotator ' || g, 'a' || g || '@bench.local', 'a-' || g,
           (ARRAY['active','active','active','active','active','active','active','created','stopped','error'])[1 + g % 10],
           now() - make_interval(mins => g % 600), 100 + g % 50, g % 20
      FROM generate_series(1, ${ANNOTATORS}) g`.execute(db);
  await sql`UPDATE annotators SET status = 'deleted' WHERE id % 20 = 0`.execute(db);
  await sql`INSERT INTO container_events (annotator_id, event_type, from_status, to_status, created_at)
    SELECT id, 'status_changed', 'starting', 'active', status_changed_at FROM annotators`.execute(db);
  await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count)
    SELECT 1, 1 + (g - 1) % ${ANNOTATORS},
           (ARRAY['pending','in_progress','completed','completed','completed','failed','cancelled'])[1 + g % 7], 100
      FROM generate_series(1, ${ASSIGNMENTS}) g`.execute(db);
  // Events evenly over the last DAYS days, oldest first (as they arrive): 80% created, 15% updated,
  // 5% deleted; 0–120 s spent; annotators interleaved.
  for (let from = 1; from <= EVENTS; from += EVENT_CHUNK) {
    await sql`INSERT INTO annotation_events (annotator_id, assignment_id, event_type, ls_task_id, ls_annotation_id, time_spent_ms, created_at)
      SELECT 1 + (g::bigint * 7919) % ${ANNOTATORS}, 1 + g % ${ASSIGNMENTS},
             CASE WHEN g % 20 < 16 THEN 'annotation_created' WHEN g % 20 < 19 THEN 'annotation_updated' ELSE 'annotation_deleted' END,
             g, g, (g * 37) % 120000,
             now() - make_interval(secs => (${EVENTS} - g) * ${(DAYS * 86_400) / EVENTS}::float8)
        FROM generate_series(${from}::int, ${Math.min(EVENTS, from + EVENT_CHUNK - 1)}::int) g`.execute(db);
  }
  await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, is_gold, gold_task_id, status)
    SELECT 1 + (g - 1) % ${ASSIGNMENTS}, 'img/' || g || '.jpg', true, 1 + g % 50, 'annotated'
      FROM generate_series(1, ${GOLD_RESULTS}) g`.execute(db);
  await sql`INSERT INTO gold_results (assignment_task_id, assignment_id, annotator_id, gold_task_id, score, evaluated_at)
    SELECT t.id, t.assignment_id, a.annotator_id, t.gold_task_id, ((t.id * 31) % 101) / 100.0,
           now() - make_interval(secs => (t.id * 13) % ${DAYS * 86_400})
      FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id`.execute(db);
  await sql`INSERT INTO rejections (workflow_id, original_annotator_id, reviewer_annotator_id, image_key, reason, action_taken, created_at)
    SELECT 1, 1 + g % ${ANNOTATORS}, 1 + (g + 7) % ${ANNOTATORS}, 'images/' || g || '.jpg', 'Reason ' || g,
           (ARRAY['none','archive','route_to_workflow'])[1 + g % 3], now() - make_interval(secs => g * 17)
      FROM generate_series(1, ${REJECTIONS}) g`.execute(db);
  await sql`VACUUM ANALYZE`.execute(db);
}

/** Median and p99 of `runs` executions of one SQL query, ms. */
async function timeQuery(query: () => Promise<unknown>, runs = 15) {
  await query();
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await query();
    samples.push(performance.now() - t0);
  }
  const s = stats(samples, performance.now() - started);
  return { p50: s.p50, p99: s.p99 };
}

async function compareRollup(db: Db) {
  const now = new Date();
  const dayStart = startOfDay(now, 'UTC');
  const windowStart = lastHours(now)[0]!;
  return {
    todayPerAnnotator: {
      // What GET /api/monitoring reads for a UTC "today" (migration 0033): one row per annotator.
      dailyRollup: await timeQuery(() =>
        sql`SELECT annotator_id, sum(created_count), sum(timed_count), sum(time_spent_ms) FROM annotation_daily
             WHERE day >= ${dayStart} AND day < ${new Date(dayStart.getTime() + 86_400_000)} GROUP BY annotator_id`.execute(db),
      ),
      // What it read before: the hours elapsed today × annotators.
      rollup: await timeQuery(() =>
        sql`SELECT annotator_id, sum(created_count), sum(timed_count), sum(time_spent_ms) FROM annotation_hourly
             WHERE hour >= ${dayStart} GROUP BY annotator_id`.execute(db),
      ),
      rawEvents: await timeQuery(() =>
        sql`SELECT annotator_id, count(*), count(time_spent_ms), sum(time_spent_ms) FROM annotation_events
             WHERE event_type = 'annotation_created' AND created_at >= ${dayStart} GROUP BY annotator_id`.execute(db),
      ),
    },
    last24Hours: {
      rollup: await timeQuery(() =>
        sql`SELECT hour, sum(created_count) FROM annotation_hourly WHERE hour >= ${windowStart} GROUP BY hour`.execute(db),
      ),
      rawEvents: await timeQuery(() =>
        sql`SELECT date_trunc('hour', created_at, 'UTC'), count(*) FROM annotation_events
             WHERE event_type = 'annotation_created' AND created_at >= ${windowStart} GROUP BY 1`.execute(db),
      ),
    },
  };
}

/**
 * Single-row webhook-style inserts: with every trigger and without the rollups' (hourly and daily,
 * one trigger since migration 0034) — the difference is that trigger's cost per event.
 */
async function insertCost(db: Db) {
  let next = 10_000_000;
  const insertOne = async () => {
    next++;
    await sql`INSERT INTO annotation_events (annotator_id, event_type, ls_annotation_id, time_spent_ms)
      VALUES (${1 + (next % ANNOTATORS)}, 'annotation_created', ${next}, 12000) ON CONFLICT DO NOTHING`.execute(db);
  };
  const opts = { count: 2_000, concurrency: 4, maxMs: 30_000 };
  const without = async (trigger: string) => {
    await sql`ALTER TABLE annotation_events DISABLE TRIGGER ${sql.id(trigger)}`.execute(db);
    try {
      return await load(insertOne, opts);
    } finally {
      await sql`ALTER TABLE annotation_events ENABLE TRIGGER ${sql.id(trigger)}`.execute(db);
    }
  };
  const withTrigger = await load(insertOne, opts);
  const withoutTrigger = await without('annotation_events_rollups_ins');
  return { withTrigger, withoutTrigger, p50Ratio: ratio(withTrigger.p50, withoutTrigger.p50) };
}

export default async function bench() {
  const seedStarted = performance.now();
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => seed(db));
  const seedSeconds = Math.round((performance.now() - seedStarted) / 100) / 10;
  const db = fleet.database.handle.db;
  try {
    const get = (path: string | ((i: number) => string)) => async (i: number) => {
      const p = typeof path === 'string' ? path : path(i);
      const res = await fetch(`${fleet.base}${p}`, { headers: { cookie: fleet.cookie } });
      if (res.status !== 200) throw new Error(`${p} answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    const annotatorPath = (i: number) => `/api/monitoring/annotator/${1 + ((i * 37) % ANNOTATORS)}`;
    for (const p of ['/api/health', '/api/monitoring', '/api/monitoring/annotator/1', '/api/quality', '/api/monitoring/throughput']) await get(p)(0);

    const run = async (concurrency: number) => {
      const opts = { count: 500, concurrency, maxMs: 30_000 };
      const health = await load(get('/api/health'), { ...opts, count: 2_000 });
      const monitoring = await load(get('/api/monitoring'), opts);
      const annotator = await load(get(annotatorPath), opts);
      const quality = await load(get('/api/quality'), opts);
      const throughput = await load(get('/api/monitoring/throughput'), opts);
      return {
        health,
        monitoring,
        annotator,
        quality,
        throughput,
        p99RatioToHealth: {
          monitoring: ratio(monitoring.p99, health.p99),
          annotator: ratio(annotator.p99, health.p99),
          quality: ratio(quality.p99, health.p99),
          throughput: ratio(throughput.p99, health.p99),
        },
      };
    };
    const sequential = await run(1);
    const concurrent = await run(4);

    // A zone whose midnight is not a whole UTC hour: the partial hours come from raw events.
    await sql`INSERT INTO settings (key, value) VALUES ('monitoring.timeZone', '"Asia/Kolkata"')`.execute(db);
    await get('/api/monitoring')(0);
    const kolkata = {
      monitoring: await load(get('/api/monitoring'), { count: 300, concurrency: 1, maxMs: 30_000 }),
      annotator: await load(get(annotatorPath), { count: 300, concurrency: 1, maxMs: 30_000 }),
    };

    const counts = (
      await sql<{ events: number; rollupRows: number; dailyRollupRows: number }>`
        SELECT (SELECT count(*)::int FROM annotation_events) AS events, (SELECT count(*)::int FROM annotation_hourly) AS rollup_rows,
               (SELECT count(*)::int FROM annotation_daily) AS daily_rollup_rows`.execute(db)
    ).rows[0]!;
    const rollupVsRaw = await compareRollup(db);
    const webhookInsert = await insertCost(db);
    const memory = processMemoryMb(fleet.pid);

    const worstP99 = Math.max(
      ...[sequential, concurrent].flatMap((r) => [r.monitoring.p99, r.annotator.p99, r.quality.p99, r.throughput.p99]),
      kolkata.monitoring.p99,
      kolkata.annotator.p99,
    );
    return {
      seeded: {
        annotators: ANNOTATORS,
        annotationEvents: counts.events,
        rollupRows: counts.rollupRows,
        dailyRollupRows: counts.dailyRollupRows,
        assignments: ASSIGNMENTS,
        goldResults: GOLD_RESULTS,
        rejections: REJECTIONS,
        days: DAYS,
        seedSeconds,
      },
      concurrency1: sequential,
      concurrency4: concurrent,
      timeZoneAsiaKolkata: kolkata,
      rollupVsRawEventsSqlMs: rollupVsRaw,
      webhookInsertMs: webhookInsert,
      serviceMemoryMb: memory,
      target: { p99Ms: 200 },
      met: worstP99 < 200,
      worstP99Ms: worstP99,
    };
  } finally {
    await fleet.stop();
  }
}
