/**
 * Review decisions: the effects of an accept or reject recorded on a reviewer's task (ingest.ts
 * parses `review_decision` / `review_reason` from the annotation). Applied by the reconciler,
 * once per reviewer task (review_applied_at; a rejections row is unique per reviewer task), after
 * which the decision is final.
 *
 * The reviewed item is the annotation the reviewer's item carries: its origin task (the
 * annotation a labeler made upstream), whose annotator and batch are the "original" ones.
 * - accept → the original annotator's reviewedCount grows; the item moves on down the chain
 *   when the review batch completes (complete.ts), carrying the reviewed labels.
 * - reject → reviewedCount grows; a rejections row (reason, image key, both annotators, both
 *   batches, action taken, rework iteration); rejectionFlagAnnotator → rejectionCount grows; and
 *   the reviewer workflow's rejectionMode (domain/rejection-routing.ts):
 *   archive → the image and an annotation.json are copied under the archive location;
 *   route_to_workflow → a rework item in rejectionRouteWorkflowId's queue (first in line),
 *   carrying the rejected annotation as a prediction, reserved for the original annotator with
 *   rejectionReturnToOriginal; past maxReworkIterations → escalated: archived, a
 *   'review_escalated' event, no further loop.
 * Archive layout (one folder per reviewer task, so a retried copy overwrites itself):
 *   <archive prefix>workflow-<reviewer workflow id>/task-<reviewer task id>/<image file name>
 *   <archive prefix>workflow-<reviewer workflow id>/task-<reviewer task id>/annotation.json
 * with the archive location `s3://bucket/prefix`, a prefix in the fleet's bucket, or by default
 * `rejections/` in the fleet's bucket.
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { archiveKeys, parseArchiveLocation, planRejection, type RejectionPlan } from '../domain/rejection-routing.ts';
import { fleetBucket, storageFor } from '../storage/s3.ts';
import { emitItemRejected } from '../outbound/events.ts';
import { faultPoint } from '../fault-point.ts';

interface PendingReview {
  taskId: number;
  assignmentId: number;
  reviewerAnnotatorId: number;
  reviewerWorkflowId: number;
  decision: 'accept' | 'reject';
  reason: string | null;
  result: unknown;
  lsAnnotationId: number | null;
  workItemId: number | null;
}

async function pendingReviews(ctx: AppContext, assignmentId?: number): Promise<PendingReview[]> {
  let q = ctx.database.db
    .selectFrom('assignmentTasks as t')
    .innerJoin('assignments as a', 'a.id', 't.assignmentId')
    .select([
      't.id as taskId',
      't.assignmentId',
      'a.annotatorId as reviewerAnnotatorId',
      'a.workflowId as reviewerWorkflowId',
      't.reviewDecision as decision',
      't.reviewReason as reason',
      't.result',
      't.lsAnnotationId',
      't.workItemId',
    ])
    .where('t.reviewDecision', 'is not', null)
    .where('t.reviewAppliedAt', 'is', null)
    .where('t.isGold', '=', false)
    .where('a.status', 'in', ['in_progress', 'completed']);
  if (assignmentId !== undefined) q = q.where('t.assignmentId', '=', assignmentId);
  return (await q.orderBy('t.id').limit(500).execute()) as PendingReview[];
}

/** Applies every recorded, not yet applied decision (of one batch, or all). */
export async function applyPendingReviews(ctx: AppContext, assignmentId?: number): Promise<{ applied: number; errors: string[] }> {
  let applied = 0;
  const errors: string[] = [];
  for (const r of await pendingReviews(ctx, assignmentId)) {
    try {
      if (await applyReview(ctx, r)) applied++;
    } catch (err) {
      errors.push(`review of task ${r.taskId}: ${(err as Error).message}`);
    }
  }
  return { applied, errors };
}

async function applyReview(ctx: AppContext, r: PendingReview): Promise<boolean> {
  const { db } = ctx.database;
  const item = r.workItemId
    ? await db.selectFrom('workItems').selectAll().where('id', '=', r.workItemId).executeTakeFirst()
    : undefined;
  const origin = item?.originTaskId
    ? await db
        .selectFrom('assignmentTasks as t')
        .innerJoin('assignments as a', 'a.id', 't.assignmentId')
        .leftJoin('annotators as n', 'n.id', 'a.annotatorId')
        .select(['t.id', 't.result', 't.assignmentId', 'a.annotatorId', 'a.workflowId', 'n.status as annotatorStatus'])
        .where('t.id', '=', item.originTaskId)
        .executeTakeFirst()
    : undefined;
  const workflow = await db.selectFrom('workflows').selectAll().where('id', '=', r.reviewerWorkflowId).executeTakeFirstOrThrow();
  const imageKey = item?.imageKey ?? (await db.selectFrom('assignmentTasks').select('s3ImageKey').where('id', '=', r.taskId).executeTakeFirstOrThrow()).s3ImageKey;

  let plan: RejectionPlan | null = null;
  if (r.decision === 'reject') {
    plan = planRejection(
      {
        rejectionMode: workflow.rejectionMode,
        rejectionRouteWorkflowId: workflow.rejectionRouteWorkflowId,
        rejectionReturnToOriginal: workflow.rejectionReturnToOriginal,
        rejectionFlagAnnotator: workflow.rejectionFlagAnnotator,
        maxReworkIterations: workflow.maxReworkIterations,
      },
      {
        priorRejections: item?.reworkIteration ?? 0,
        originalAnnotatorId: origin?.annotatorId ?? null,
        originalAnnotatorAvailable: !!origin && origin.annotatorStatus !== 'deleted' && origin.annotatorStatus !== null,
      },
    );
    if (plan.archive) {
      // The copy comes first and is keyed by the reviewer task: a crash before the transaction
      // below commits just copies the same objects again.
      const bucket = await fleetBucket(db, ctx.config);
      const keys = archiveKeys(parseArchiveLocation(workflow.rejectionArchiveBucket, bucket), workflow.id, r.taskId, imageKey);
      const storage = storageFor(ctx.config);
      await storage.copy({ bucket, key: imageKey }, { bucket: keys.bucket, key: keys.image });
      const record = {
        imageKey,
        reason: r.reason,
        escalated: plan.escalated,
        reworkIteration: plan.reworkIteration,
        reviewerWorkflowId: workflow.id,
        reviewerAssignmentId: r.assignmentId,
        reviewerAnnotatorId: r.reviewerAnnotatorId,
        reviewerTaskId: r.taskId,
        originalAnnotatorId: origin?.annotatorId ?? null,
        originalAssignmentId: origin?.assignmentId ?? null,
        originalWorkflowId: origin?.workflowId ?? null,
        annotation: origin?.result ?? item?.prediction ?? null,
        review: r.result,
      };
      await storage.put(keys.bucket, keys.annotation, JSON.stringify(record, null, 2), { contentType: 'application/json' });
    }
  }

  return db.transaction().execute(async (trx) => {
    const task = await trx
      .selectFrom('assignmentTasks')
      .select(['reviewAppliedAt', 'reviewDecision'])
      .where('id', '=', r.taskId)
      .forUpdate()
      .executeTakeFirstOrThrow();
    if (task.reviewAppliedAt !== null || task.reviewDecision !== r.decision) return false;
    const now = new Date();
    await trx.updateTable('assignmentTasks').set({ reviewAppliedAt: now, updatedAt: now }).where('id', '=', r.taskId).execute();
    if (origin) {
      await trx
        .updateTable('annotators')
        .set({
          reviewedCount: sql`reviewed_count + 1`,
          ...(plan?.flagAnnotator ? { rejectionCount: sql`rejection_count + 1` } : {}),
          updatedAt: now,
        })
        .where('id', '=', origin.annotatorId)
        .execute();
    }
    if (!plan) return true;

    let routedWorkItemId: number | null = null;
    if (plan.route) {
      const inserted = await trx
        .insertInto('workItems')
        .values({
          workflowId: plan.route.workflowId,
          imageKey,
          source: 'rework',
          priority: 0,
          targetAnnotatorId: plan.route.annotatorId,
          upstreamTaskId: r.taskId,
          originTaskId: origin?.id ?? null,
          prediction: JSON.stringify(origin?.result ?? item?.prediction ?? []),
          reworkIteration: plan.reworkIteration,
        })
        .onConflict((oc) => oc.columns(['workflowId', 'upstreamTaskId']).where('upstreamTaskId', 'is not', null).doNothing())
        .returning('id')
        .executeTakeFirst();
      routedWorkItemId = inserted?.id ?? null;
      // Chaos suite: inside the applying transaction, the rework item queued, nothing committed.
      faultPoint('review:routed');
    }
    await trx
      .insertInto('rejections')
      .values({
        workflowId: workflow.id,
        originalAnnotatorId: origin?.annotatorId ?? null,
        reviewerAnnotatorId: r.reviewerAnnotatorId,
        originalAssignmentId: origin?.assignmentId ?? null,
        reviewerAssignmentId: r.assignmentId,
        imageKey,
        reason: r.reason,
        actionTaken: plan.actionTaken,
        reworkIteration: plan.reworkIteration,
        routedWorkItemId,
        reviewerTaskId: r.taskId,
      })
      .onConflict((oc) => oc.column('reviewerTaskId').where('reviewerTaskId', 'is not', null).doNothing())
      .execute();
    await emitItemRejected(trx, { review: r, plan, origin, workflowId: workflow.id, imageKey });
    if (item) {
      await trx
        .updateTable('workItems')
        .set({ status: plan.escalated ? 'escalated' : 'rejected', updatedAt: now })
        .where('id', '=', item.id)
        .where('status', 'in', ['reserved', 'done'])
        .execute();
    }
    if (plan.escalated && r.lsAnnotationId !== null) {
      await trx
        .insertInto('annotationEvents')
        .values({
          annotatorId: r.reviewerAnnotatorId,
          assignmentId: r.assignmentId,
          eventType: 'review_escalated',
          lsAnnotationId: r.lsAnnotationId,
          source: 'reconcile',
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
    return true;
  });
}
