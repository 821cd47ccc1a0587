/**
 * `npm run bench -- assign`: 50 concurrent assignments from a 100,000-image pool — the database
 * part of an assignment (src/workflows/assign.ts: reserve the items with FOR UPDATE SKIP LOCKED,
 * pick and place gold, write the batch and its tasks, one transaction).
 *
 * One workflow (100 images per batch, 10 % gold, shuffled), 50 active annotators, 3 rounds of 50
 * simultaneous assignments, twice: with the service's default pool of 10 connections (latency
 * includes waiting for a connection) and with a pool of 50 (each assignment has its own
 * connection: the database time under 50-way contention), after a sequential baseline of 20.
 * 320 batches, 28,800 images in all.
 * Reported: p50/p99/max per assignment, wall time per round, and the check that matters: no image
 * in two open batches (zero overlaps), every batch full.
 */
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/index.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { createTestDatabase } from '../../test/helpers/db.ts';
import { stats } from './lib.ts';

const POOL_IMAGES = 100_000;
const ANNOTATORS = 50;
const ROUNDS = 3;
const BATCH = 100;

export default async function bench() {
  const database = await createTestDatabase();
  const { db } = database.handle;
  try {
    await sql`INSERT INTO roles (name) VALUES ('bench')`.execute(db);
    await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('bench', '<View><Image name="image" value="$image"/></View>')`.execute(db);
    await sql`INSERT INTO gold_tasks (name, s3_image_key, expected_labels, labeling_config_id)
      SELECT 'gold ' || g, 'gold/' || g || '.png', '[{"from_name":"label","to_name":"image","type":"choices","value":{"choices":["cat"]}}]', 1
      FROM generate_series(1, 20) g`.execute(db);
    await sql`INSERT INTO workflows (name, role_id, labeling_config_id, s3_source_path, s3_export_path, images_per_project, gold_standard_rate, shuffle_images)
      VALUES ('bench', 1, 1, 'images/', 'exports/', ${BATCH}, 0.1, true)`.execute(db);
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority)
      SELECT 1, 'images/img-' || lpad(g::text, 6, '0') || '.jpg', 'catalog', 2 FROM generate_series(1, ${POOL_IMAGES}) g`.execute(db);
    await sql`INSERT INTO annotators (name, email, subdomain, role_id, status)
      SELECT 'A' || g, 'a' || g || '@bench.local', 'a-' || g, 1, 'active' FROM generate_series(1, ${ANNOTATORS}) g`.execute(db);
    await sql`ANALYZE`.execute(db);

    // Warm-up: one assignment, then cancelled and its images released (not measured).
    const warm = await assignBatch(db, { workflowId: 1, annotatorId: 1 });
    if (!warm.ok) throw new Error(warm.message);
    await sql`UPDATE work_items SET status = 'queued', assignment_id = NULL WHERE assignment_id = ${warm.assignment.id}`.execute(db);
    await sql`UPDATE assignments SET status = 'cancelled' WHERE id = ${warm.assignment.id}`.execute(db);

    const runs: Record<string, unknown> = {};
    const failures: string[] = [];
    // Baseline: one assignment at a time (no contention), the same work.
    const sequential: number[] = [];
    const seqStarted = performance.now();
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const r = await assignBatch(db, { workflowId: 1, annotatorId: 1 + (i % ANNOTATORS) });
      sequential.push(performance.now() - t0);
      if (!r.ok) failures.push(r.message);
    }
    runs.sequential = stats(sequential, performance.now() - seqStarted);

    for (const poolSize of [10, 50]) {
      const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize });
      const samples: number[] = [];
      const rounds: { wallMs: number; assigned: number }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const started = performance.now();
        const results = await Promise.all(
          Array.from({ length: ANNOTATORS }, async (_, i) => {
            const t0 = performance.now();
            const r = await assignBatch(handle.db, { workflowId: 1, annotatorId: i + 1 });
            samples.push(performance.now() - t0);
            if (!r.ok) failures.push(r.message);
            return r;
          }),
        );
        rounds.push({ wallMs: Math.round(performance.now() - started), assigned: results.filter((r) => r.ok).length });
      }
      await handle.close();
      runs[`pool${poolSize}`] = { assignment: stats(samples, rounds.reduce((s, r) => s + r.wallMs, 0)), rounds };
    }

    const overlap = await sql<{ reserved: number; distinct: number; batches: number; full: number }>`
      SELECT (SELECT count(*)::int FROM work_items WHERE status = 'reserved') AS reserved,
             (SELECT count(DISTINCT image_key)::int FROM work_items WHERE status = 'reserved') AS distinct,
             (SELECT count(*)::int FROM assignments WHERE status = 'pending') AS batches,
             (SELECT count(*)::int FROM assignments WHERE status = 'pending' AND task_count = ${BATCH} AND gold_task_count = 10) AS full`.execute(db);
    const tasks = await sql<{ rows: number; distinct: number }>`
      SELECT count(*)::int AS rows, count(DISTINCT t.s3_image_key)::int AS distinct
        FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
       WHERE a.status = 'pending' AND NOT t.is_gold`.execute(db);
    const o = overlap.rows[0]!;
    const overlaps = o.reserved - o.distinct + (tasks.rows[0]!.rows - tasks.rows[0]!.distinct);
    return {
      pool: { images: POOL_IMAGES, imagesPerProject: BATCH, goldStandardRate: 0.1, annotators: ANNOTATORS, concurrency: ANNOTATORS },
      ...runs,
      checks: {
        failures: failures.length,
        batches: o.batches,
        fullBatches: o.full,
        imagesReserved: o.reserved,
        distinctImagesReserved: o.distinct,
        overlaps,
      },
      met: { zeroOverlaps: overlaps === 0 && failures.length === 0 && o.full === 2 * ANNOTATORS * ROUNDS + 20 },
    };
  } finally {
    await database.drop();
  }
}
