/**
 * `npm run bench -- api`: the admin API over loopback with 10,000 annotators and 1,000 workflows.
 * Measures GET /api/annotators?limit=100 and GET /api/workflows/graph against GET /api/health
 * (the in-run baseline), plus the service's memory. Targets (issue 2): list p99 < 25 ms,
 * graph p99 < 100 ms, RSS < 200 MB.
 */
import { sql } from 'kysely';
import { load, processMemoryMb, ratio } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const ANNOTATORS = 10_000;
const WORKFLOWS = 1_000;

export default async function bench() {
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => {
    await sql`INSERT INTO roles (name, color) SELECT 'role-' || g, '#3B82F6' FROM generate_series(1, 20) g`.execute(db);
    await sql`INSERT INTO labeling_configs (name, config_xml)
      VALUES ('bench', '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>')`.execute(db);
    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status)
      SELECT 'Annotator ' || g, 'annotator' || g || '@bench.local', 'annotator-' || g, 1 + g % 20,
             (ARRAY['created','active','stopped'])[1 + g % 3]
      FROM generate_series(1, ${ANNOTATORS}) g`.execute(db);
    // Chains of 10: every 10th workflow is an origin, the others follow the previous one.
    await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path)
      SELECT 'Workflow ' || g, 1 + g % 20, 1, 'images/' || g || '/', 'exports/' || g || '/'
      FROM generate_series(1, ${WORKFLOWS}) g`.execute(db);
    await sql`UPDATE workflows SET previous_workflow_id = id - 1 WHERE id % 10 <> 1`.execute(db);
    await sql`UPDATE workflows SET rejection_mode = 'route_to_workflow', rejection_route_workflow_id = id - 1 WHERE id % 10 = 0`.execute(db);
    await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count)
      SELECT 1 + g % ${WORKFLOWS}, 1 + g % ${ANNOTATORS}, (ARRAY['pending','in_progress','completed','completed'])[1 + g % 4], 100
      FROM generate_series(1, 20000) g`.execute(db);
    await sql`ANALYZE`.execute(db);
  });
  try {
    const get = (path: string) => async () => {
      const res = await fetch(`${fleet.base}${path}`, { headers: { cookie: fleet.cookie } });
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      await res.arrayBuffer();
    };
    const opts = { count: 2_000, concurrency: 4, maxMs: 30_000 };
    // Warm up every path once so the first-request costs don't land in the figures.
    for (const p of ['/api/health', '/api/annotators?limit=100', '/api/workflows/graph']) await get(p)();
    const health = await load(get('/api/health'), opts);
    const list = await load(get('/api/annotators?limit=100'), opts);
    const graph = await load(get('/api/workflows/graph'), { ...opts, count: 500 });
    const memory = processMemoryMb(fleet.pid);
    return {
      seeded: { annotators: ANNOTATORS, workflows: WORKFLOWS, assignments: 20_000 },
      health,
      annotatorsList: list,
      workflowGraph: graph,
      ratioToHealth: { annotatorsListP99: ratio(list.p99, health.p99), workflowGraphP99: ratio(graph.p99, health.p99) },
      serviceMemoryMb: memory,
      targets: { annotatorsListP99Ms: 25, workflowGraphP99Ms: 100, rssMb: 200 },
      met: { list: list.p99 < 25, graph: graph.p99 < 100, rss: memory.peak < 200 },
    };
  } finally {
    await fleet.stop();
  }
}
