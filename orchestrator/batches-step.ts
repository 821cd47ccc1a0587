/**
 * The reconciler step for batches. Each pass, in order:
 *  1. release the items of failed and cancelled batches (back to their queue);
 *  2. un-target rework items reserved for annotators who were deleted;
 *  3. sync the S3 catalog of active root workflows (incremental; full every catalog.fullResyncMinutes);
 *  4. update webhooks whose secret is stale (the annotator restarted);
 *  5. compare in-progress batches with their Label Studio projects — every batch when forced
 *     (POST /api/reconcile), else those not compared for batches.compareIntervalSeconds — and
 *     ingest what no webhook delivered (source 'reconcile');
 *  6. apply recorded review decisions (counts, rejections, routing, archive);
 *  7. export and complete every batch whose tasks are all annotated, and chain its items;
 *  8. auto-assign: each active annotator with no open batch (and auto-assignment not paused)
 *     gets a batch from the first eligible workflow that has work;
 *  9. provision pending batches in Label Studio (fail them past batches.provisionTimeoutMinutes);
 * 10. refresh each workflow's totalImagesAvailable / totalImagesAssigned.
 * Failures are reported per batch and do not stop the others.
 */
import { sql } from 'kysely';
import type { AppContext } from '../src/context.ts';
import { InstanceUnavailable } from '../src/labelstudio/instances.ts';
import { getSetting } from '../src/settings.ts';
import { fleetBucket, storageFor } from '../src/storage/s3.ts';
import { autoAssign } from '../src/workflows/assign.ts';
import { catalogWorkflows, syncCatalog } from '../src/workflows/catalog.ts';
import { completeAssignment, reconcileAssignment } from '../src/workflows/complete.ts';
import { provisionAssignment, rotateWebhooks } from '../src/workflows/provision.ts';
import { applyPendingReviews } from '../src/workflows/review.ts';
import type { ReconcileStep, StepReport } from './reconciler.ts';

export interface BatchesPassOptions {
  /** Compare every in-progress batch with Label Studio and sync catalogs now (POST /api/reconcile). */
  force?: boolean;
}

export interface BatchesReport extends StepReport {
  counts: { reconciled: number; completed: number; assigned: number; provisioned: number; released: number; reviews: number };
}

const PARALLEL = 4;

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
    counts: { reconciled: 0, completed: 0, assigned: 0, provisioned: 0, released: 0, reviews: 0 },
  };
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

  // 5. Compare with Label Studio.
  const intervalMs = Number(await getSetting(db, 'batches.compareIntervalSeconds')) * 1000;
  let toCompare = db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .selectAll('a')
    .where('a.status', '=', 'in_progress')
    .where('a.lsProjectId', 'is not', null)
    .where('n.status', '=', 'active');
  if (!opts.force) {
    toCompare = toCompare.where((eb) =>
      eb.or([eb('a.lsCheckedAt', 'is', null), eb('a.lsCheckedAt', '<', new Date(Date.now() - intervalMs))]),
    );
  }
  await inParallel(await toCompare.orderBy('a.id').execute(), PARALLEL, async (a) => {
    try {
      const { changed } = await reconcileAssignment(ctx, a);
      report.counts.reconciled++;
      if (changed) report.actions.push(`assignment ${a.id}: ${changed} tasks updated from Label Studio`);
    } catch (err) {
      if (!(err instanceof InstanceUnavailable)) error(`assignment ${a.id}: compare with Label Studio failed: ${(err as Error).message}`);
    }
  });

  // 6. Review decisions.
  const reviews = await applyPendingReviews(ctx);
  report.counts.reviews = reviews.applied;
  if (reviews.applied) report.actions.push(`applied ${reviews.applied} review decisions`);
  reviews.errors.forEach(error);

  // 7. Completion.
  const ready = await db
    .selectFrom('assignments')
    .select('id')
    .where('status', '=', 'in_progress')
    .where('taskCount', '>', 0)
    .where(sql<boolean>`completed_count >= task_count`)
    .orderBy('id')
    .execute();
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

  // 9. Provisioning.
  const pending = await db.selectFrom('assignments').select('id').where('status', '=', 'pending').orderBy('id').execute();
  await inParallel(pending, PARALLEL, async ({ id }) => {
    try {
      const r = await provisionAssignment(ctx, id);
      if (r.outcome === 'provisioned') {
        report.counts.provisioned++;
        report.actions.push(`assignment ${id}: set up in Label Studio`);
      } else if (r.outcome === 'failed') {
        error(`assignment ${id}: failed: ${r.message}`);
      }
    } catch (err) {
      error(`assignment ${id}: provisioning failed (will retry): ${(err as Error).message}`);
    }
  });

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
