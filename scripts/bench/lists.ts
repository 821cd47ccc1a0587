/**
 * `npm run bench -- lists`: every list route with each of its filters, at ten times the sizes the
 * other benchmarks use (issue 15: "indexes for every list filter at 10× today's sizes"):
 * 100,000 annotators, 10,000 workflows, 200,000 assignments, 200,000 rejections, 10,000 gold
 * tasks, 100,000 container events and 1,000,000 annotation events, against a real `fleet serve`
 * over loopback, one client at a time, GET /api/health in the same run as the baseline.
 * Reported per request: p50/p99 and the p99's ratio to health's. The first page (limit=100) is
 * what a client reads most; each figure includes the page's exact total.
 */
import { sql } from 'kysely';
import type { Db } from '../../src/db/index.ts';
import { load, ratio } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const N = {
  annotators: 100_000,
  workflows: 10_000,
  assignments: 200_000,
  rejections: 200_000,
  goldTasks: 10_000,
  containerEvents: 100_000,
  annotationEvents: 1_000_000,
};

async function seed(db: Db) {
  await sql`INSERT INTO roles (name, color) SELECT 'role-' || g, '#3B82F6' FROM generate_series(1, 20) g`.execute(db);
  await sql`INSERT INTO labeling_configs (name, config_xml)
    SELECT 'config ' || g, '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>'
    FROM generate_series(1, 10) g`.execute(db);
  // 60 % active, the rest spread over the other statuses (1 % deleted).
  await sql`INSERT INTO annotators (name, email, subdomain, role_id, status)
    SELECT 'Annotator ' || g, 'a' || g || '@bench.local', 'a-' || g, 1 + g % 20,
           CASE WHEN g % 100 = 0 THEN 'deleted' WHEN g % 10 < 6 THEN 'active'
                ELSE (ARRAY['created','starting','stopping','stopped','error'])[1 + g % 5] END
    FROM generate_series(1, ${N.annotators}) g`.execute(db);
  await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, is_active)
    SELECT 'Workflow ' || g, 1 + g % 20, 1 + g % 10, 'in/' || g || '/', 'out/' || g || '/', g % 7 <> 0
    FROM generate_series(1, ${N.workflows}) g`.execute(db);
  await sql`UPDATE workflows SET previous_workflow_id = id - 1 WHERE id % 10 <> 1`.execute(db);
  // Mostly history: 5 % of the assignments are open.
  await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count, completed_count, created_at)
    SELECT 1 + g % ${N.workflows}, 1 + (g * 7) % ${N.annotators},
           CASE WHEN g % 20 = 0 THEN 'in_progress' WHEN g % 20 = 1 THEN 'pending'
                ELSE (ARRAY['completed','completed','completed','failed','cancelled'])[1 + g % 5] END,
           100, 100, now() - make_interval(secs => g)
    FROM generate_series(1, ${N.assignments}) g`.execute(db);
  await sql`INSERT INTO rejections (workflow_id, original_annotator_id, reviewer_annotator_id, image_key, action_taken, created_at)
    SELECT 1 + g % ${N.workflows}, 1 + g % ${N.annotators}, 1 + (g + 1) % ${N.annotators}, 'images/' || g || '.jpg',
           (ARRAY['none','archive','route_to_workflow'])[1 + g % 3], now() - make_interval(secs => g)
    FROM generate_series(1, ${N.rejections}) g`.execute(db);
  await sql`INSERT INTO gold_tasks (name, s3_image_key, expected_labels, labeling_config_id, category)
    SELECT 'Gold ' || g, 'gold/' || g || '.jpg', '[{"type":"choices"}]', 1 + g % 10, 'cat-' || (g % 50)
    FROM generate_series(1, ${N.goldTasks}) g`.execute(db);
  await sql`INSERT INTO container_events (annotator_id, event_type, from_status, to_status, created_at)
    SELECT 1 + g % ${N.annotators}, 'status_change', 'starting', 'active', now() - make_interval(secs => g)
    FROM generate_series(1, ${N.containerEvents}) g`.execute(db);
  for (let from = 1; from <= N.annotationEvents; from += 250_000) {
    await sql`INSERT INTO annotation_events (annotator_id, event_type, ls_annotation_id, time_spent_ms, created_at)
      SELECT 1 + (g::bigint * 7919) % ${N.annotators}, 'annotation_created', g, 10000, now() - make_interval(secs => g)
      FROM generate_series(${from}::int, ${Math.min(N.annotationEvents, from + 249_999)}::int) g`.execute(db);
  }
  await sql`VACUUM ANALYZE`.execute(db);
}

export default async function bench() {
  const started = performance.now();
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => seed(db));
  const seedSeconds = Math.round((performance.now() - started) / 1000);
  try {
    const get = (path: string) => async () => {
      const res = await fetch(`${fleet.base}${path}`, { headers: { cookie: fleet.cookie } });
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      await res.arrayBuffer();
    };
    const lists = [
      '/api/annotators',
      '/api/annotators?status=active',
      '/api/annotators?status=deleted',
      '/api/annotators?roleId=7',
      '/api/annotators?status=error&roleId=7',
      '/api/workflows',
      '/api/workflows?roleId=3',
      '/api/workflows?labelingConfigId=4',
      '/api/workflows?previousWorkflowId=5001',
      '/api/workflows?isActive=false',
      '/api/assignments',
      '/api/assignments?workflowId=77',
      '/api/assignments?annotatorId=777',
      '/api/assignments?status=completed',
      '/api/assignments?status=in_progress',
      '/api/assignments?workflowId=77&annotatorId=50540',
      '/api/rejections',
      '/api/rejections?workflowId=77',
      '/api/rejections?annotatorId=777',
      '/api/rejections?actionTaken=archive',
      '/api/gold-tasks',
      '/api/gold-tasks?labelingConfigId=3',
      '/api/gold-tasks?category=cat-7',
      '/api/events?type=container',
      '/api/events?annotatorId=777',
      '/api/events',
      '/api/roles',
      '/api/labeling-configs',
      '/api/settings',
    ];
    const opts = { count: 60, concurrency: 1, maxMs: 20_000 };
    for (const p of ['/api/health', ...lists]) await get(p)();
    const health = await load(get('/api/health'), { ...opts, count: 300 });
    const results: Record<string, { p50: number; p99: number; p99RatioToHealth: number | null }> = {};
    for (const p of lists) {
      const s = await load(get(p), opts);
      results[p] = { p50: s.p50, p99: s.p99, p99RatioToHealth: ratio(s.p99, health.p99) };
    }
    return { seeded: { ...N, seedSeconds }, health: { p50: health.p50, p99: health.p99 }, lists: results };
  } finally {
    await fleet.stop();
  }
}
