/**
 * Group reservation (issue 15): the batches of several annotators of one workflow (overlap 1) in
 * one statement, each annotator getting a disjoint slice of one scan of the queue — instead of one
 * statement and one transaction each, competing for the cores, the commit and the queue's rows.
 * Used by assignGroup (assign.ts) inside the group's transaction, after every annotator's lock and
 * checks.
 *
 * Order, as for one reservation (claimCtes in assign.ts): each annotator first gets the items
 * reserved for them; the rest of the queue (rework, then chained and catalog items) is taken once,
 * for what all of them still need, and dealt out in queue order: the first annotator's slice first.
 * An image already in an open batch, or taken twice, is left out, so a slice may come up short: a
 * request whose batch is not full gets nothing here (its items stay locked by the transaction) and
 * is served afterwards on its own (reserveLocked), as a short queue is.
 */
import { sql } from 'kysely';
import type { Tx } from '../db/index.ts';
import type { Assignment, Workflow } from '../db/types.ts';
import { openElsewhere, sharedParts, type BatchPlan } from './assign.ts';

/**
 * Reserves and writes the full batches planned by `plans` (distinct annotators; each wants its
 * plan's real slots, at least one item) in one statement. Returns the batches written, by
 * annotator; a plan missing from the map got nothing. Throws on a database error (e.g. an image
 * reserved twice reaching the unique index work_items_reserved_image_key), as one reservation does.
 */
export async function reserveGroup(
  trx: Tx,
  workflow: Pick<Workflow, 'id' | 'shuffleImages'>,
  start: number,
  plans: readonly BatchPlan[],
): Promise<Map<number, Assignment>> {
  const w = workflow.id;
  const want = plans.map((p) => p.layout.realSlots.length);
  const offsets = want.map((_, i) => want.slice(0, i).reduce((s, n) => s + n, 0));
  const gold = plans.flatMap((p, i) => p.gold.map((g, j) => ({ r: i + 1, key: g.s3ImageKey, id: g.id, slot: p.layout.goldSlots[j]! })));
  const open = sql`workflow_id = ${w} AND status = 'queued' AND target_annotator_id IS NULL`;
  // Real items fill their slots as taken (shuffled workflow) or by key, byte order.
  const fillOrder = workflow.shuffleImages ? sql`f.part, f.n` : sql`f.image_key COLLATE "C"`;
  const { rows } = await sql<Assignment>`
    WITH req AS (
      SELECT * FROM unnest(${plans.map((p) => p.annotatorId)}::int[], ${want}::int[], ${offsets}::int[],
                           ${plans.map((p) => p.layout.realSlots.length + p.layout.goldSlots.length)}::int[],
                           ${plans.map((p) => p.layout.goldSlots.length)}::int[])
             WITH ORDINALITY AS t (annotator_id, want, off, total, gold, r)),
    targeted AS (
      SELECT req.r, t.n, t.id, t.image_key, t.source
        FROM req CROSS JOIN LATERAL (
          SELECT row_number() OVER () AS n, x.* FROM (
            SELECT id, image_key, source FROM work_items
             WHERE workflow_id = ${w} AND status = 'queued' AND target_annotator_id = req.annotator_id
             ORDER BY priority, id LIMIT req.want FOR UPDATE SKIP LOCKED) AS x) AS t),
    -- Each request's slice of the shared queue: items after+1 .. after+need in queue order.
    slice AS (
      SELECT r, need, (sum(need) OVER (ORDER BY r))::int - need AS after
        FROM (SELECT req.r, req.want - (SELECT count(*)::int FROM targeted t WHERE t.r = req.r) AS need FROM req) AS x),
    ${sharedParts(workflow, open, start, sql`(SELECT coalesce(sum(need), 0)::int FROM slice)`)},
    usable AS (
      SELECT DISTINCT ON (c.image_key) c.* FROM (
        SELECT r, 1 AS part, n, id, image_key, source FROM targeted
        UNION ALL SELECT NULL, 2, row_number() OVER (), * FROM rework
        UNION ALL SELECT NULL, 3, row_number() OVER (), * FROM ranked
        UNION ALL SELECT NULL, 4, row_number() OVER (), * FROM wrapped) AS c
        LEFT JOIN LATERAL ${openElsewhere(w, sql`c.image_key`)} AS dup ON true
       WHERE dup.found IS NULL
       ORDER BY c.image_key, c.part, c.n),
    dealt AS (
      SELECT r, part, n, id, image_key, source FROM usable WHERE r IS NOT NULL
      UNION ALL
      SELECT s.r, u.part, u.n, u.id, u.image_key, u.source
        FROM (SELECT *, row_number() OVER (ORDER BY part, n) AS g FROM usable WHERE r IS NULL) AS u
        JOIN (SELECT r, generate_series(after + 1, after + need) AS g FROM slice) AS s USING (g)),
    full_req AS (SELECT d.r FROM dealt d JOIN req USING (r) GROUP BY d.r, req.want HAVING count(*) = req.want),
    fill AS (SELECT f.*, row_number() OVER (PARTITION BY f.r ORDER BY ${fillOrder}) AS k FROM dealt f WHERE f.r IN (SELECT r FROM full_req)),
    a AS (
      INSERT INTO assignments (workflow_id, annotator_id, task_count, gold_task_count, status, updated_at)
      SELECT ${w}, req.annotator_id, req.total, req.gold, 'pending', now() FROM req WHERE req.r IN (SELECT r FROM full_req) ORDER BY req.r
      RETURNING *),
    ar AS (SELECT a.id, req.r, req.off FROM a JOIN req ON req.annotator_id = a.annotator_id),
    -- Each real item with its batch and its position.
    placed AS (
      SELECT fill.id, fill.image_key, fill.source, ar.id AS assignment_id,
             (${plans.flatMap((p) => p.layout.realSlots)}::int[])[ar.off + fill.k] AS position
        FROM fill JOIN ar USING (r)),
    items AS (
      UPDATE work_items SET status = 'reserved', assignment_id = placed.assignment_id, updated_at = now()
        FROM placed WHERE work_items.id = placed.id),
    routed AS (
      -- A routed rejection's item has found its batch.
      UPDATE rejections SET routed_to_assignment_id = placed.assignment_id
        FROM placed
       WHERE placed.source = 'rework' AND rejections.routed_work_item_id = placed.id AND rejections.routed_to_assignment_id IS NULL),
    tasks AS (
      INSERT INTO assignment_tasks (assignment_id, s3_image_key, work_item_id, gold_task_id, is_gold, position, updated_at)
      SELECT assignment_id, image_key, id, NULL, false, position, now() FROM placed
      UNION ALL
      SELECT ar.id, g.key, NULL, g.id, true, g.slot, now()
        FROM unnest(${gold.map((g) => g.r)}::int[], ${gold.map((g) => g.key)}::text[], ${gold.map((g) => g.id)}::int[], ${gold.map((g) => g.slot)}::int[])
             AS g (r, key, id, slot)
        JOIN ar USING (r))
    SELECT * FROM a`.execute(trx);
  return new Map(rows.map((a) => [a.annotatorId, a]));
}
