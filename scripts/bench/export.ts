/**
 * `npm run bench -- export`: GET /api/workflows/:id/export?format=jsonl of 1,000,000 items (10,000
 * completed batches of 100 annotated tasks, each with a choice and a rectangle; a gold score on
 * every tenth batch) with an API key, from a real `fleet serve` process (the bundle `npm start`
 * runs, its heap capped as there) on a fresh PostgreSQL database. Reports the export's time, size
 * and rate, and the service's resident memory before, during (sampled every 100 ms) and its peak
 * (VmHWM). Baseline in the same run: PostgreSQL scanning the same rows and rendering their results
 * as text (`SELECT sum(length(result::text))`), the floor for reading the data at all.
 * Target (issue 14): flat memory, < 250 MB peak.
 */
import { sql } from 'kysely';
import type { Db } from '../../src/db/index.ts';
import { processCpuSeconds, processMemoryMb, ratio } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

const ITEMS = Number(process.env.BENCH_EXPORT_ITEMS ?? 1_000_000);
const PER_BATCH = 100;
const BATCHES = Math.ceil(ITEMS / PER_BATCH);
const CHUNK_BATCHES = 1_000;

async function seed(db: Db) {
  await sql`INSERT INTO roles (name) VALUES ('bench')`.execute(db);
  await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('bench',
    '<View><Image name="image" value="$image"/><Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices><RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels></View>')`.execute(db);
  await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path) VALUES ('bench', 1, 1, 'in/', 'out/')`.execute(db);
  await sql`INSERT INTO annotators (name, email, subdomain, status, role_id) VALUES ('Bench Annotator', 'bench@bench.local', 'bench', 'active', 1)`.execute(db);
  await sql`INSERT INTO assignments (workflow_id, annotator_id, status, task_count, completed_count, completed_at)
    SELECT 1, 1, 'completed', ${PER_BATCH}, ${PER_BATCH}, now() - make_interval(mins => ${BATCHES} - g) FROM generate_series(1, ${BATCHES}) g`.execute(db);
  for (let from = 1; from <= BATCHES; from += CHUNK_BATCHES) {
    const to = Math.min(BATCHES, from + CHUNK_BATCHES - 1);
    await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, status, annotated_at, lead_time_seconds, ls_task_id, ls_annotation_id, result)
      SELECT a, 'images/batch-' || a || '/img-' || lpad(i::text, 4, '0') || '.jpg', 'annotated', now() - make_interval(secs => i), 5 + i % 40, a * 1000 + i, a * 1000 + i,
             jsonb_build_array(
               jsonb_build_object('from_name', 'label', 'to_name', 'image', 'type', 'choices', 'value', jsonb_build_object('choices', jsonb_build_array(CASE WHEN i % 2 = 0 THEN 'cat' ELSE 'dog' END))),
               jsonb_build_object('from_name', 'box', 'to_name', 'image', 'type', 'rectanglelabels', 'original_width', 1280, 'original_height', 720, 'image_rotation', 0,
                                  'value', jsonb_build_object('x', i % 80, 'y', 10.5, 'width', 12.25, 'height', 30, 'rotation', 0, 'rectanglelabels', jsonb_build_array('car'))))
        FROM generate_series(${from}::int, ${to}::int) a, generate_series(1, ${PER_BATCH}) i
       WHERE (a - 1) * ${PER_BATCH} + i <= ${ITEMS}`.execute(db);
  }
  await sql`INSERT INTO gold_tasks (name, s3_image_key, expected_labels, labeling_config_id) VALUES ('gold', 'gold/1.jpg', '[{"type":"choices"}]', 1)`.execute(db);
  await sql`INSERT INTO assignment_tasks (assignment_id, s3_image_key, status, is_gold, gold_task_id, result)
    SELECT a, 'gold/1.jpg', 'annotated', true, 1, '[]' FROM generate_series(1, ${BATCHES}, 10) a`.execute(db);
  await sql`INSERT INTO gold_results (assignment_task_id, assignment_id, annotator_id, gold_task_id, score)
    SELECT id, assignment_id, 1, 1, 0.75 FROM assignment_tasks WHERE is_gold`.execute(db);
  await sql`VACUUM ANALYZE`.execute(db);
}

export default async function bench() {
  const seedStarted = performance.now();
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => seed(db));
  const seedSeconds = Math.round((performance.now() - seedStarted) / 100) / 10;
  const db = fleet.database.handle.db;
  try {
    const key = (await (
      await fetch(`${fleet.base}/api/api-keys`, {
        method: 'POST',
        headers: { cookie: fleet.cookie, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bench', scopes: ['read'] }),
      })
    ).json()) as { key: string };

    const scanStarted = performance.now();
    const scan = await sql<{ n: number; chars: number }>`
      SELECT count(*)::int AS n, sum(length(result::text))::float8 AS chars FROM assignment_tasks WHERE NOT is_gold`.execute(db);
    const scanMs = performance.now() - scanStarted;

    const before = processMemoryMb(fleet.pid);
    const cpuBefore = processCpuSeconds(fleet.pid);
    let peakSampled = before.rss;
    const sampler = setInterval(() => {
      peakSampled = Math.max(peakSampled, processMemoryMb(fleet.pid).rss);
    }, 100);
    const started = performance.now();
    let firstByteMs = 0;
    let bytes = 0;
    let lines = 0;
    try {
      const res = await fetch(`${fleet.base}/api/workflows/1/export?format=jsonl`, { headers: { authorization: `Bearer ${key.key}` } });
      if (res.status !== 200) throw new Error(`export answered ${res.status}: ${await res.text()}`);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!firstByteMs) firstByteMs = performance.now() - started;
        bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      }
    } finally {
      clearInterval(sampler);
    }
    const exportMs = performance.now() - started;
    const after = processMemoryMb(fleet.pid);
    const serviceCpuSeconds = Math.round((processCpuSeconds(fleet.pid) - cpuBefore) * 10) / 10;

    return {
      seeded: { items: ITEMS, batches: BATCHES, seedSeconds },
      export: {
        format: 'jsonl',
        lines,
        complete: lines === ITEMS,
        megabytes: Math.round(bytes / 1e5) / 10,
        seconds: Math.round(exportMs / 100) / 10,
        itemsPerSecond: Math.round((lines * 1000) / exportMs),
        firstByteMs: Math.round(firstByteMs),
        serviceCpuSeconds,
      },
      baseline: { what: 'PostgreSQL scan of the same rows rendering results as text', rows: scan.rows[0]!.n, seconds: Math.round(scanMs / 100) / 10 },
      ratioToBaseline: ratio(exportMs, scanMs),
      serviceMemoryMb: { beforeRss: before.rss, peakRssDuringExport: Math.max(peakSampled, after.rss), afterRss: after.rss, vmHwm: after.peak },
      target: { peakMb: 250 },
      met: after.peak < 250 && lines === ITEMS,
    };
  } finally {
    await fleet.stop();
  }
}
