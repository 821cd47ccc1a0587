/**
 * `npm run bench -- console`: the console's pages over loopback from a real `fleet serve` (the
 * bundle `npm start` runs) with 10,000 annotators, 1,000 workflows (chains of 10, with rejection
 * routes) and 20,000 batches. Server time (request to last byte) p50/p99 of the annotators page —
 * first page, a deep page, sorted by last activity, searched, filtered — and of the workflow graph
 * page, against GET /api/health in the same run. Also the JavaScript (and CSS) each page ships,
 * gzip-compressed as served. Targets (issue 12): annotators page p99 < 50 ms, graph page p99 <
 * 150 ms, JavaScript per page < 150 kB compressed.
 */
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { load, ratio } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const ANNOTATORS = 10_000;
const WORKFLOWS = 1_000;
const ASSIGNMENTS = 20_000;

/** Every script a page loads: its module script and, transitively, the chunks those import. */
async function pageScripts(base: string, cookie: string, path: string) {
  const html = await (await fetch(`${base}${path}`, { headers: { cookie } })).text();
  const queue = [...html.matchAll(/<script[^>]+src="([^"]+)"/g)].map((m) => m[1]!);
  const css = [...html.matchAll(/<link rel="stylesheet" href="([^"]+)"/g)].map((m) => m[1]!);
  const seen = new Map<string, number>();
  while (queue.length) {
    const url = queue.shift()!;
    if (seen.has(url)) continue;
    const body = Buffer.from(await (await fetch(`${base}${url}`)).arrayBuffer());
    seen.set(url, gzipSync(body, { level: 9 }).length);
    const dir = url.slice(0, url.lastIndexOf('/') + 1);
    for (const m of body.toString('utf8').matchAll(/["']\.\/([\w-]+\.js)["']/g)) queue.push(dir + m[1]);
  }
  let cssBytes = 0;
  for (const url of css) cssBytes += gzipSync(Buffer.from(await (await fetch(`${base}${url}`)).arrayBuffer()), { level: 9 }).length;
  const js = [...seen.values()].reduce((a, b) => a + b, 0);
  return { scripts: [...seen.keys()], jsGzipKb: Math.round(js / 102.4) / 10, cssGzipKb: Math.round(cssBytes / 102.4) / 10 };
}

export default async function bench() {
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => {
    await sql`INSERT INTO roles (name, color) SELECT 'role-' || g, '#3B82F6' FROM generate_series(1, 20) g`.execute(db);
    await sql`INSERT INTO labeling_configs (name, config_xml)
      VALUES ('bench', '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="a"/></Choices></View>')`.execute(db);
    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status, last_active_at)
      SELECT 'Annotator ' || g, 'annotator' || g || '@bench.local', 'annotator-' || g, 1 + g % 20,
             (ARRAY['created','active','stopped'])[1 + g % 3], now() - make_interval(secs => (g * 7919) % 864000)
      FROM generate_series(1, ${ANNOTATORS}) g`.execute(db);
    await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path)
      SELECT 'Workflow ' || g, 1 + g % 20, 1, 'images/' || g || '/', 'exports/' || g || '/' FROM generate_series(1, ${WORKFLOWS}) g`.execute(db);
    await sql`UPDATE workflows SET previous_workflow_id = id - 1 WHERE id % 10 <> 1`.execute(db);
    await sql`UPDATE workflows SET rejection_mode = 'route_to_workflow', rejection_route_workflow_id = id - 1 WHERE id % 10 = 0`.execute(db);
    await sql`UPDATE workflows SET rejection_mode = 'archive', rejection_archive_bucket = 'exports/rejected/' WHERE id % 10 = 5`.execute(db);
    await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count)
      SELECT 1 + g % ${WORKFLOWS}, 1 + g % ${ANNOTATORS}, (ARRAY['pending','in_progress','completed','completed'])[1 + g % 4], 100
      FROM generate_series(1, ${ASSIGNMENTS}) g`.execute(db);
    await sql`ANALYZE`.execute(db);
  });
  try {
    const get = (path: string) => async () => {
      const res = await fetch(`${fleet.base}${path}`, { headers: { cookie: fleet.cookie, 'accept-encoding': 'gzip' } });
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      await res.arrayBuffer();
    };
    const annotatorPages = {
      first: '/annotators',
      deep: '/annotators?offset=9950',
      lastActive: '/annotators?sort=lastActive&dir=desc',
      search: '/annotators?q=annotator42',
      filtered: '/annotators?status=active&roleId=3&sort=email',
    };
    const graphPage = '/workflows';
    // Warm up every path (first-request costs, the assets' bundling, the graph layout) first.
    for (const p of ['/api/health', ...Object.values(annotatorPages), graphPage]) await get(p)();
    const opts = { count: 1_000, concurrency: 4, maxMs: 30_000 };
    const health = await load(get('/api/health'), opts);
    const annotators: Record<string, Awaited<ReturnType<typeof load>>> = {};
    for (const [name, path] of Object.entries(annotatorPages)) annotators[name] = await load(get(path), { ...opts, count: 500 });
    const graph = await load(get(graphPage), { ...opts, count: 300 });
    const graphHtmlKb = Math.round(gzipSync(Buffer.from(await (await fetch(`${fleet.base}${graphPage}`, { headers: { cookie: fleet.cookie } })).arrayBuffer())).length / 102.4) / 10;

    const pages = ['/', '/annotators', '/annotators/1', '/workflows', '/workflows/new', '/batches', '/quality', '/labeling-configs', '/gold-tasks', '/roles', '/events', '/settings'];
    const shipped: Record<string, { jsGzipKb: number; cssGzipKb: number; scripts: number }> = {};
    for (const p of pages) {
      const s = await pageScripts(fleet.base, fleet.cookie, p);
      shipped[p] = { jsGzipKb: s.jsGzipKb, cssGzipKb: s.cssGzipKb, scripts: s.scripts.length };
    }
    const worstAnnotatorsP99 = Math.max(...Object.values(annotators).map((s) => s.p99));
    const maxJs = Math.max(...Object.values(shipped).map((s) => s.jsGzipKb));
    return {
      seeded: { annotators: ANNOTATORS, workflows: WORKFLOWS, assignments: ASSIGNMENTS },
      health,
      annotatorsPage: annotators,
      workflowGraphPage: { ...graph, htmlGzipKb: graphHtmlKb },
      p99RatioToHealth: {
        ...Object.fromEntries(Object.entries(annotators).map(([k, s]) => [`annotators.${k}`, ratio(s.p99, health.p99)])),
        workflowGraph: ratio(graph.p99, health.p99),
      },
      javascriptPerPage: shipped,
      targets: { annotatorsPageP99Ms: 50, workflowGraphPageP99Ms: 150, jsPerPageGzipKb: 150 },
      met: { annotatorsPage: worstAnnotatorsP99 < 50, workflowGraphPage: graph.p99 < 150, javascript: maxJs < 150 },
    };
  } finally {
    await fleet.stop();
  }
}
