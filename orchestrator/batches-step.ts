/**
 * The reconciler step for batches. Each pass, in order:
 *  1. release the items of failed and cancelled batches (back to their queue);
 *  2. un-target rework items reserved for annotators who were deleted;
 *  3. sync the S3 catalog of active root workflows (incremental; full every catalog.fullResyncMinutes);
 *  4. update webhooks whose secret is stale (the annotator restarted);
 *  5. decide for every in-progress batch (decideBatch, src/domain/batch-decision.ts — the step only
 *     gathers state and performs the actions): reclaim those untouched for their workflow's
 *     expiryHours; compare with Label Studio those due (every one when forced, POST
 *     /api/reconcile; else those not compared for batches.compareIntervalSeconds; sooner after
 *     Label Studio did not answer) — Label Studio's state wins (compare.ts); a batch whose
 *     project is gone fails and releases its images;
 *  6. apply recorded review decisions (counts, rejections, routing, archive);
 *  7. decide again: export and complete every batch whose remaining tasks are all answered, and
 *     chain its items;
 *  8. auto-assign: each active annotator with no open batch (and auto-assignment not paused)
 *     gets a batch from the first eligible workflow that has work;
 *  9. decide for pending batches: provision them in Label Studio (fail them past
 *     batches.provisionTimeoutMinutes, or when their annotator was deleted);
 *    then record each open batch's problem (batchProblem; an event when one appears or clears);
 * 10. refresh each workflow's totalImagesAvailable / totalImagesAssigned.
 * Failures are reported per batch and do not stop the others.
 */
import { sql } from 'kysely';
import type { AppContext } from '../src/context.ts';
import type { Db } from '../src/db/index.ts';
import type { Assignment, AssignmentStatus } from '../src/db/types.ts';
import type { AnnotatorStatusValue } from '../src/domain/annotator-status.ts';
import { batchProblem, decideBatch, type BatchInput, type ProblemCode } from '../src/domain/batch-decision.ts';
import { LabelStudioError } from '../src/labelstudio/client.ts';
import { InstanceUnavailable } from '../src/labelstudio/instances.ts';
import { getSetting } from '../src/settings.ts';
import { fleetBucket, storageFor } from '../src/storage/s3.ts';
import { autoAssign } from '../src/workflows/assign.ts';
import { catalogWorkflows, syncCatalog } from '../src/workflows/catalog.ts';
import { reclaimAssignment, recordProblem } from '../src/workflows/batch-problems.ts';
import { ProjectGone, reconcileAssignment } from '../src/workflows/compare.ts';
import { completeAssignment } from '../src/workflows/complete.ts';
import { failAssignment, provisionAssignment, rotateWebhooks } from '../src/workflows/provision.ts';
import { applyPendingReviews } from '../src/workflows/review.ts';
import type { ReconcileStep, StepReport } from './reconciler.ts';

export interface BatchesPassOptions {
  /** Compare every in-progress batch with Label Studio and sync catalogs now (POST /api/reconcile). */
  force?: boolean;
}

export interface BatchesReport extends StepReport {
  counts: {
    reconciled: number;
    completed: number;
    assigned: number;
    provisioned: number;
    released: number;
    reviews: number;
    reclaimed: number;
  };
}

const PARALLEL = 4;
/** How soon a failed attempt to reach Label Studio is tried again (the next due time). */
const RETRY_SECONDS = 15;

interface OpenBatch extends Assignment {
  annotatorStatus: AnnotatorStatusValue;
  expiryHours: number | null;
  lastTouchedAt: Date | null;
}

/**
 * Batches in the given statuses with what their decision needs: the annotator's status, the
 * workflow's expiryHours and when the annotator last touched the batch (started it, or the newest
 * annotation's updated_at).
 */
async function openBatches(db: Db, statuses: AssignmentStatus[]): Promise<OpenBatch[]> {
  return (await db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .innerJoin('workflows as w', 'w.id', 'a.workflowId')
    .selectAll('a')
    .select([
      'n.status as annotatorStatus',
      'w.expiryHours',
      sql<Date | null>`greatest(a.started_at, (SELECT max(t.ls_annotation_updated_at) FROM assignment_tasks t WHERE t.assignment_id = a.id))`.as(
        'lastTouchedAt',
      ),
    ])
    .where('a.status', 'in', statuses)
    .orderBy('a.id')
    .execute()) as OpenBatch[];
}

function batchInput(b: OpenBatch, policy: { compareIntervalSeconds: number; retrySeconds: number }, force: boolean): BatchInput {
  return {
    now: Date.now(),
    status: b.status,
    annotatorStatus: b.annotatorStatus,
    taskCount: b.taskCount,
    completedCount: b.completedCount,
    removedTaskCount: b.removedTaskCount,
    hasProject: b.lsProjectId !== null,
    lsCheckedAt: b.lsCheckedAt?.getTime() ?? null,
    problemCode: b.problemCode,
    lastTouchedAt: b.lastTouchedAt ? new Date(b.lastTouchedAt).getTime() : null,
    force,
    policy: { ...policy, expiryHours: b.expiryHours },
  };
}

/** Open batches, and closed ones still showing a problem (to clear it). */
async function batchesForProblems(db: Db) {
  return db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .select([
      'a.id',
      'a.status',
      'a.error',
      'a.problemCode',
      'a.problemMessage',
      'a.removedTaskCount',
      'a.unknownLsTaskCount',
      'n.status as annotatorStatus',
    ])
    .where((eb) => eb.or([eb('a.status', 'in', ['pending', 'in_progress']), eb('a.problemCode', 'is not', null)]))
    .orderBy('a.id')
    .execute();
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function runBatchesPass(ctx: AppContext, opts: BatchesPassOptions = {}): Promise<BatchesReport> {
  const { db } = ctx.database;
  const report: BatchesReport = {
    actions: [],
    errors: [],
    counts: { reconciled: 0, completed: 0, assigned: 0, provisioned: 0, released: 0, reviews: 0, reclaimed: 0 },
  };
  /** What this pass learned about reaching each batch's Label Studio (for its problem). */
  const seen = new Map<number, { lsUnreachable?: boolean; lsError?: string }>();
  const error = (msg: string) => {
    report.errors.push(msg);
    ctx.logger.warn({ step: 'batches' }, msg);
  };

  // 1. Released items go back to the queue (targeted rework keeps its target).
  const released = await db
    .updateTable('workItems')
    .set({ status: 'queued', assignmentId: null, updatedAt: new Date() })
    .where('status', '=', 'reserved')
    .where('assignmentId', 'in', (eb) => eb.selectFrom('assignments').select('id').where('status', 'in', ['failed', 'cancelled']))
    .executeTakeFirst();
  report.counts.released = Number(released.numUpdatedRows);
  if (report.counts.released) report.actions.push(`released ${report.counts.released} items of failed or cancelled batches`);

  // 2. Work reserved for a deleted annotator is open to everyone of the role.
  await db
    .updateTable('workItems')
    .set({ targetAnnotatorId: null, updatedAt: new Date() })
    .where('status', '=', 'queued')
    .where('targetAnnotatorId', 'in', (eb) => eb.selectFrom('annotators').select('id').where('status', '=', 'deleted'))
    .execute();

  // 3. Catalogs.
  const roots = await catalogWorkflows(db);
  if (roots.length) {
    let bucket: string | null = null;
    try {
      bucket = await fleetBucket(db, ctx.config);
    } catch (err) {
      error(`catalog: ${(err as Error).message}`);
    }
    if (bucket) {
      const storage = storageFor(ctx.config);
      for (const wf of roots) {
        try {
          const r = await syncCatalog({ database: ctx.database, storage, bucket }, wf, { force: opts.force });
          if (r.added || r.gone) report.actions.push(`workflow ${wf.id}: catalog ${r.mode} sync added ${r.added}, gone ${r.gone}`);
        } catch (err) {
          error(`workflow ${wf.id}: catalog sync failed: ${(err as Error).message}`);
        }
      }
    }
  }

  // 4. Webhook secrets.
  const rotated = await rotateWebhooks(ctx);
  if (rotated.updated) report.actions.push(`updated ${rotated.updated} webhooks to a new secret`);
  rotated.errors.forEach(error);

  // 5. Decide for every open batch (src/domain/batch-decision.ts); reclaim expired ones, compare
  //    the due ones with Label Studio.
  const policy = {
    compareIntervalSeconds: Number(await getSetting(db, 'batches.compareIntervalSeconds')),
    retrySeconds: RETRY_SECONDS,
  };
  const decided = async (statuses: AssignmentStatus[]) =>
    (await openBatches(db, statuses)).map((b) => ({ b, d: decideBatch(batchInput(b, policy, !!opts.force)).decision }));
  const first = await decided(['in_progress']);
  for (const { b, d } of first) {
    if (d.action !== 'reclaim') continue;
    try {
      if (await reclaimAssignment(db, b.id, d.reason)) {
        report.counts.reclaimed++;
        report.actions.push(`assignment ${b.id}: reclaimed (${d.reason})`);
      }
    } catch (err) {
      error(`assignment ${b.id}: reclaim failed: ${(err as Error).message}`);
    }
  }
  await inParallel(
    first.filter(({ d }) => d.action === 'compare').map(({ b }) => b),
    PARALLEL,
    async (a) => {
      try {
        const r = await reconcileAssignment(ctx, a);
        seen.set(a.id, { lsUnreachable: false });
        report.counts.reconciled++;
        if (r.changed) report.actions.push(`assignment ${a.id}: ${r.changed} tasks updated from Label Studio`);
        if (r.removed) report.actions.push(`assignment ${a.id}: ${r.removed} tasks deleted in Label Studio, their images released`);
      } catch (err) {
        const message = (err as Error).message;
        if ((err instanceof LabelStudioError && err.status === 404) || err instanceof ProjectGone) {
          await failAssignment(ctx, a.id, `its Label Studio project ${a.lsProjectId} no longer exists`, ['in_progress']);
          report.actions.push(`assignment ${a.id}: failed, its Label Studio project is gone (images released)`);
          return;
        }
        seen.set(a.id, { lsUnreachable: true, lsError: message });
        if (!(err instanceof InstanceUnavailable)) error(`assignment ${a.id}: compare with Label Studio failed: ${message}`);
      }
    },
  );

  // 6. Review decisions.
  const reviews = await applyPendingReviews(ctx);
  report.counts.reviews = reviews.applied;
  if (reviews.applied) report.actions.push(`applied ${reviews.applied} review decisions`);
  reviews.errors.forEach(error);

  // 7. Completion: export and complete every batch whose remaining tasks are all answered.
  const ready = (await decided(['in_progress'])).filter(({ d }) => d.action === 'complete').map(({ b }) => b);
  await inParallel(ready, PARALLEL, async ({ id }) => {
    try {
      if ((await completeAssignment(ctx, id)) === 'completed') {
        report.counts.completed++;
        report.actions.push(`assignment ${id}: exported and completed`);
      }
    } catch (err) {
      error(`assignment ${id}: completion failed: ${(err as Error).message}`);
    }
  });

  // 8. Auto-assignment.
  const idle = await db
    .selectFrom('annotators as n')
    .selectAll('n')
    .where('n.status', '=', 'active')
    .where('n.autoAssignPaused', '=', false)
    .where('n.roleId', 'is not', null)
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('assignments as a').select('a.id').whereRef('a.annotatorId', '=', 'n.id').where('a.status', 'in', ['pending', 'in_progress']))),
    )
    .orderBy('n.id')
    .execute();
  for (const annotator of idle) {
    try {
      const a = await autoAssign(db, annotator);
      if (a) {
        report.counts.assigned++;
        report.actions.push(`annotator ${annotator.id}: assigned batch ${a.id} of workflow ${a.workflowId} (${a.taskCount} tasks)`);
      }
    } catch (err) {
      error(`annotator ${annotator.id}: auto-assignment failed: ${(err as Error).message}`);
    }
  }

  // 9. Provisioning (and failing pending batches whose annotator was deleted).
  const pending = await decided(['pending']);
  await inParallel(pending, PARALLEL, async ({ b, d }) => {
    const id = b.id;
    try {
      if (d.action === 'fail') {
        await failAssignment(ctx, id, d.reason);
        error(`assignment ${id}: failed: ${d.reason}`);
        return;
      }
      if (d.action !== 'provision') return;
      const r = await provisionAssignment(ctx, id);
      if (r.outcome === 'provisioned') {
        seen.set(id, { lsUnreachable: false });
        report.counts.provisioned++;
        report.actions.push(`assignment ${id}: set up in Label Studio`);
      } else if (r.outcome === 'waiting') {
        seen.set(id, { lsUnreachable: true, lsError: r.message });
      } else if (r.outcome === 'failed') {
        error(`assignment ${id}: failed: ${r.message}`);
      }
    } catch (err) {
      error(`assignment ${id}: provisioning failed (will retry): ${(err as Error).message}`);
    }
  });

  // Every open batch shows what it waits on; closed ones show nothing.
  for (const b of await batchesForProblems(db)) {
    const s = seen.get(b.id) ?? {};
    const current = b.problemCode ? { code: b.problemCode as ProblemCode, message: b.problemMessage ?? '' } : null;
    const next = batchProblem({
      status: b.status,
      annotatorStatus: b.annotatorStatus,
      provisionError: b.error,
      lsUnreachable: s.lsUnreachable,
      lsError: s.lsError,
      current,
      removedTaskCount: b.removedTaskCount,
      unknownLsTaskCount: b.unknownLsTaskCount,
    });
    // Unchanged: nothing to write (an idle pass writes nothing).
    if ((next?.code ?? null) === b.problemCode && (next?.message ?? null) === b.problemMessage) continue;
    try {
      const change = await recordProblem(db, b.id, next);
      if (change === 'appeared' || change === 'changed') report.actions.push(`assignment ${b.id}: problem ${next!.code}: ${next!.message}`);
      if (change === 'cleared') report.actions.push(`assignment ${b.id}: problem ${b.problemCode} cleared`);
    } catch (err) {
      error(`assignment ${b.id}: problem not recorded: ${(err as Error).message}`);
    }
  }

  // 10. Workflow counters.
  await sql`
    UPDATE workflows w SET total_images_available = c.available, total_images_assigned = c.assigned
      FROM (SELECT w2.id,
                   count(i.id) FILTER (WHERE i.status <> 'gone')::int AS available,
                   count(i.id) FILTER (WHERE i.status NOT IN ('queued', 'gone'))::int AS assigned
              FROM workflows w2 LEFT JOIN work_items i ON i.workflow_id = w2.id
             GROUP BY w2.id) c
     WHERE w.id = c.id AND (w.total_images_available <> c.available OR w.total_images_assigned <> c.assigned)`.execute(db);

  return report;
}

export function batchesStep(): ReconcileStep {
  return { name: 'batches', run: (ctx) => runBatchesPass(ctx) };
}
