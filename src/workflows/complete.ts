/**
 * Completing a batch (the comparison with Label Studio is compare.ts).
 *
 * Completion, when every task still in the batch is annotated (tasks deleted in Label Studio are
 * 'removed' and left out of the export and of chaining):
 * 1. compare once more (the export must reflect the last word) and apply pending review decisions;
 * 2. write the export to S3 under `<s3ExportPath>/assignment-<assignment id>.json` in the fleet's
 *    bucket: Label Studio's JSON export of the batch's real tasks (gold tasks are left out), in
 *    batch order, each task's meta.labelfleet telling {task, imageKey, assignmentId, workflowId,
 *    annotatorId}. The object carries its content's sha256 in its metadata: a retry after a crash
 *    finds it and does not write it again (unless Label Studio's content changed meanwhile);
 * 3. in one transaction: the batch becomes completed (export_key, completed_at), its items done,
 *    and every annotated, non-skipped, non-rejected real task becomes an item of each workflow whose
 *    previousWorkflowId is this one, carrying the annotation as a prediction (for an accepted
 *    review: the reviewed labels, corrected by the reviewer if they changed them). Chained items
 *    are keyed by their upstream task, so nothing is chained twice.
 * A crash anywhere repeats the unfinished steps on the next pass; the batch completes once.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Tx } from '../db/index.ts';
import type { Assignment } from '../db/types.ts';
import type { LsTask } from '../labelstudio/client.ts';
import { InstanceUnavailable } from '../labelstudio/instances.ts';
import { fleetBucket, joinKey, storageFor } from '../storage/s3.ts';
import { reconcileAssignment } from './compare.ts';
import { fleetTaskId } from './provision.ts';
import { applyPendingReviews } from './review.ts';
import { writeBatchJsonl } from './export.ts';
import { emitBatchCompleted } from '../outbound/events.ts';
import { finishOverlap } from './consensus.ts';
import { faultPoint } from '../fault-point.ts';

export const exportKeyFor = (s3ExportPath: string, assignmentId: number) => joinKey(s3ExportPath, `assignment-${assignmentId}.json`);

async function allAnnotated(ctx: AppContext, assignmentId: number): Promise<boolean> {
  const row = await ctx.database.db
    .selectFrom('assignmentTasks')
    .select(sql<number>`count(*) FILTER (WHERE status = 'open')::int`.as('open'))
    .where('assignmentId', '=', assignmentId)
    .executeTakeFirstOrThrow();
  return row.open === 0;
}

export type CompleteOutcome = 'completed' | 'not_ready' | 'skipped';

/** Exports, completes and chains one in-progress batch whose tasks are all annotated. */
export async function completeAssignment(ctx: AppContext, assignmentId: number): Promise<CompleteOutcome> {
  const { db } = ctx.database;
  const a = await db.selectFrom('assignments').selectAll().where('id', '=', assignmentId).executeTakeFirst();
  if (!a || a.status !== 'in_progress' || a.lsProjectId === null) return 'skipped';
  if (!(await allAnnotated(ctx, a.id))) return 'not_ready';

  let lsTasks: LsTask[];
  try {
    ({ lsTasks } = await reconcileAssignment(ctx, a));
  } catch (err) {
    if (err instanceof InstanceUnavailable) return 'not_ready';
    throw err;
  }
  const reviews = await applyPendingReviews(ctx, a.id);
  if (reviews.errors.length) throw new Error(reviews.errors.join('; '));
  if (!(await allAnnotated(ctx, a.id))) return 'not_ready';

  const workflow = await db.selectFrom('workflows').selectAll().where('id', '=', a.workflowId).executeTakeFirstOrThrow();
  const tasks = await db
    .selectFrom('assignmentTasks')
    .select(['id', 'lsTaskId', 's3ImageKey', 'isGold', 'position'])
    .where('assignmentId', '=', a.id)
    .where('status', '<>', 'removed')
    .orderBy('position')
    .execute();
  const byLs = new Map(lsTasks.map((t) => [t.id, t]));
  const exported = tasks
    .filter((t) => !t.isGold && t.lsTaskId !== null && byLs.has(t.lsTaskId))
    .map((t) => {
      const ls = byLs.get(t.lsTaskId!)!;
      const meta = { ...(ls.meta ?? {}), labelfleet: { task: fleetTaskId(ls) ?? t.id, imageKey: t.s3ImageKey, assignmentId: a.id, workflowId: a.workflowId, annotatorId: a.annotatorId } };
      return { ...ls, meta };
    });
  const body = JSON.stringify(exported);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const bucket = await fleetBucket(db, ctx.config);
  const key = exportKeyFor(workflow.s3ExportPath, a.id);
  const storage = storageFor(ctx.config);
  const existing = await storage.head(bucket, key);
  if (existing?.metadata?.sha256 !== sha256) {
    await storage.put(bucket, key, body, {
      contentType: 'application/json',
      metadata: { sha256, 'assignment-id': String(a.id), 'workflow-id': String(a.workflowId) },
    });
  }
  // Chaos suite: the JSON export is in S3, the JSONL beside it not yet.
  faultPoint('complete:json-exported');
  await writeBatchJsonl(db, storage, bucket, workflow.s3ExportPath, a);
  // Chaos suite: both exports are in S3, the batch is not completed yet.
  faultPoint('complete:exported');

  return db.transaction().execute(async (trx) => {
    const locked = await trx.selectFrom('assignments').select(['status']).where('id', '=', a.id).forUpdate().executeTakeFirstOrThrow();
    if (locked.status !== 'in_progress') return 'skipped';
    const open = await trx
      .selectFrom('assignmentTasks')
      .select('id')
      .where('assignmentId', '=', a.id)
      .where('status', '=', 'open')
      .limit(1)
      .executeTakeFirst();
    if (open) return 'not_ready';
    const now = new Date();
    await trx
      .updateTable('assignments')
      .set({ status: 'completed', exportKey: key, completedAt: now, error: null, updatedAt: now })
      .where('id', '=', a.id)
      .execute();
    await trx
      .updateTable('workItems')
      .set({ status: 'done', updatedAt: now })
      .where('assignmentId', '=', a.id)
      .where('status', '=', 'reserved')
      .execute();
    await chainDownstream(trx, a);
    // Chaos suite: inside the completing transaction, items chained, nothing committed.
    faultPoint('complete:chained');
    // Overlap workflows (issue 13): seats done, consensus of finished items, adjudication results.
    await finishOverlap(trx, a);
    await emitBatchCompleted(trx, a.id, { bucket, jsonKey: key });
    return 'completed';
  });
}

/** Queues the batch's finished real tasks in every workflow whose previousWorkflowId is this one. */
async function chainDownstream(trx: Tx, a: Assignment) {
  await sql`
    INSERT INTO work_items (workflow_id, image_key, source, priority, upstream_task_id, origin_task_id, prediction, rework_iteration)
    SELECT d.id, t.s3_image_key, 'chain', 1, t.id,
           CASE WHEN t.review_decision = 'accept' THEN coalesce(i.origin_task_id, t.id) ELSE t.id END,
           CASE WHEN t.review_decision = 'accept'
                THEN coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(coalesce(t.result, '[]'::jsonb)) AS e
                                WHERE e->>'from_name' NOT IN ('review_decision', 'review_reason')),
                              i.prediction, '[]'::jsonb)
                ELSE coalesce(t.result, '[]'::jsonb) END,
           coalesce(i.rework_iteration, 0)
      FROM assignment_tasks t
      LEFT JOIN work_items i ON i.id = t.work_item_id
      CROSS JOIN workflows d
     WHERE t.assignment_id = ${a.id}
       AND d.previous_workflow_id = ${a.workflowId}
       AND NOT t.is_gold
       AND t.status = 'annotated'
       AND NOT t.skipped
       AND t.review_decision IS DISTINCT FROM 'reject'
       -- An overlap item flows on once, with its consensus (consensus.ts), not per annotator.
       AND NOT EXISTS (SELECT 1 FROM work_item_seats s WHERE s.work_item_id = t.work_item_id)
    ON CONFLICT (workflow_id, upstream_task_id) WHERE upstream_task_id IS NOT NULL DO NOTHING`.execute(trx);
}
