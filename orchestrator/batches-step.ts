/**
 * The reconciler step for batches, by key and when due (orchestrator/due.ts, migration 0021).
 * Each pass, in order:
 *  1. on a full resync (every FULL_RESYNC_MS, the safety net for missed wake-ups): release the
 *     items of failed and cancelled batches and un-target rework reserved for deleted annotators
 *     (migration 0021's triggers do both when it happens), and mark every root catalog, open
 *     batch and active annotator due;
 *  2. sync the S3 catalogs that are due (incremental; full every catalog.fullResyncMinutes),
 *     requeued catalog.syncIntervalSeconds later (with backoff on errors);
 *  3. due in-progress batches: update the webhook if its secret is stale (the annotator
 *     restarted); compare with the Label Studio project every batches.compareIntervalSeconds
 *     (every batch when forced: POST /api/reconcile) and ingest what no webhook delivered
 *     (source 'reconcile'); a batch whose annotator is not active waits for the annotator;
 *  4. apply recorded review decisions (counts, rejections, routing, archive);
 *  5. export and complete the due batches whose tasks are all annotated, and chain their items;
 *  6. auto-assign the annotators due for it (a batch closed, work appeared, the annotator or a
 *     workflow changed): each active annotator with no open batch (and auto-assignment not paused)
 *     gets a batch from the first eligible workflow that has work; then it waits for a wake-up;
 *  7. provision the due pending batches in Label Studio (those just assigned included), failing
 *     them past batches.provisionTimeoutMinutes; while the annotator is not active a pending batch
 *     is not due until the annotator changes (or the timeout);
 *  8. when anything was due: refresh each workflow's totalImagesAvailable / totalImagesAssigned.
 * Each object is requeued from its outcome. Failures are reported per object and do not stop the
 * others. A pass with nothing due sends a fixed number of statements and writes nothing.
 */import { sql } from 'kysely';
import type { AppContext } from '../src/context.ts';
import { InstanceUnavailable } from '../src/labelstudio/instances.ts';
import { getSetting } from '../src/settings.ts';
import { fleetBucket, storageFor } from '../src/storage/s3.ts';
import { autoAssign } from '../src/workflows/assign.ts';
import { syncCatalog } from '../src/workflows/catalog.ts';
import { completeAssignment, reconcileAssignment } from '../src/workflows/complete.ts';
import { provisionAssignment, rotateWebhooks } from '../src/workflows/provision.ts';
import { applyPendingReviews } from '../src/workflows/review.ts';
import type { Assignment } from '../src/db/types.ts';
import { backoffMs, claimDue, FailureStreaks, FullResync, markAllDue, requeue, CLAIM_LIMIT, type Claimed } from './due.ts';
import type { ReconcileStep, StepReport } from './reconciler.ts';

export interface BatchesPassOptions {
  /** Compare every in-progress batch with Label Studio and sync catalogs now (POST /api/reconcile). */
  force?: boolean;
  /** Run the full resync now (the step's own schedule decides when absent). */
  resync?: boolean;
}

/** Failure streaks per key in this process (retry backoff), per kind. */
const streaks = { catalogs: new FailureStreaks(), batches: new FailureStreaks(), assign: new FailureStreaks() };
const OPEN = sql<boolean>`status IN ('pending', 'in_progress')`;
const ROOT_CATALOG = sql<boolean>`is_active AND previous_workflow_id IS NULL`;

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

const CATALOG = { table: 'workflows', column: 'catalog_due_at' } as const;
const BATCH = { table: 'assignments', column: 'due_at' } as const;
const ASSIGN = { table: 'annotators', column: 'assign_due_at' } as const;
const later = (ms: number) => new Date(Date.now() + ms);

type Requeue = Array<{ id: number; seen: Date | null; next: Date | null }>;

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
  /** A claim came back full: more is due than one pass takes. */
  let more = false;

  // 1. Full resync: the safety nets, and everything due once.
  if (opts.resync) {
    // Released items go back to the queue (failAssignment releases its own; this catches the rest).
    const released = await db
      .updateTable('workItems')
      .set({ status: 'queued', assignmentId: null, updatedAt: new Date() })
      .where('status', '=', 'reserved')
      .where('assignmentId', 'in', (eb) => eb.selectFrom('assignments').select('id').where('status', 'in', ['failed', 'cancelled']))
      .executeTakeFirst();
    report.counts.released = Number(released.numUpdatedRows);
    if (report.counts.released) report.actions.push(`released ${report.counts.released} items of failed or cancelled batches`);
    // Work reserved for a deleted annotator is open to everyone of the role.
    await db
      .updateTable('workItems')
      .set({ targetAnnotatorId: null, updatedAt: new Date() })
      .where('status', '=', 'queued')
      .where('targetAnnotatorId', 'in', (eb) => eb.selectFrom('annotators').select('id').where('status', '=', 'deleted'))
      .execute();
    await markAllDue(db, ASSIGN, sql<boolean>`status = 'active'`);
  }
  if (opts.resync || opts.force) {
    await markAllDue(db, CATALOG, ROOT_CATALOG);
    await markAllDue(db, BATCH, OPEN);
  }

  // 2. Catalogs.
  // Every due workflow is claimed: one that is not an active root has no catalog and leaves the queue.
  const catalogs = await claimDue(db, CATALOG);
  more ||= catalogs.length === CLAIM_LIMIT;
  if (catalogs.length) {
    const intervalMs = Number(await getSetting(db, 'catalog.syncIntervalSeconds')) * 1000;
    const workflows = new Map(
      (
        await db
          .selectFrom('workflows')
          .select(['id', 's3SourcePath'])
          .where('id', 'in', catalogs.map((c) => c.id))
          .where(ROOT_CATALOG)
          .execute()
      ).map((w) => [w.id, w]),
    );
    let bucket: string | null = null;
    try {
      bucket = await fleetBucket(db, ctx.config);
    } catch (err) {
      error(`catalog: ${(err as Error).message}`);
    }
    const storage = storageFor(ctx.config);
    const next: Requeue = [];
    for (const { id, lease } of catalogs.sort((a, b) => a.id - b.id)) {
      const wf = workflows.get(id);
      if (!wf) {
        next.push({ id, seen: lease, next: null });
        continue;
      }
      if (!bucket) {
        next.push({ id, seen: lease, next: later(backoffMs(streaks.catalogs.fail(id))) });
        continue;
      }
      try {
        const r = await syncCatalog({ database: ctx.database, storage, bucket }, wf, { force: opts.force });
        if (r.added || r.gone) report.actions.push(`workflow ${wf.id}: catalog ${r.mode} sync added ${r.added}, gone ${r.gone}`);
        streaks.catalogs.succeed(id);
        next.push({ id, seen: lease, next: later(intervalMs) });
      } catch (err) {
        error(`workflow ${wf.id}: catalog sync failed: ${(err as Error).message}`);
        next.push({ id, seen: lease, next: later(backoffMs(streaks.catalogs.fail(id))) });
      }
    }
    await requeue(db, CATALOG, next);
  }

  // 3. Due in-progress batches: update webhooks, compare with Label Studio.
  const claimedBatches: Claimed[] = [];
  const batchNext = new Map<number, Date | null>();
  for (;;) {
    const claimed = await claimDue(db, BATCH, { where: sql<boolean>`status = 'in_progress'` });
    claimedBatches.push(...claimed);
    if (claimed.length) await reconcileBatches(ctx, claimed, opts, report, batchNext, error, 'in_progress');
    if (claimed.length < CLAIM_LIMIT) break;
    if (!opts.force) {
      more = true;
      break;
    }
  }

  // 4. Review decisions.
  const reviews = await applyPendingReviews(ctx);
  report.counts.reviews = reviews.applied;
  if (reviews.applied) report.actions.push(`applied ${reviews.applied} review decisions`);
  reviews.errors.forEach(error);

  // 5. Completion of the due batches whose tasks are all annotated.
  if (claimedBatches.length) {
    const ready = await db
      .selectFrom('assignments')
      .select('id')
      .where('id', 'in', claimedBatches.map((c) => c.id))
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
        batchNext.set(id, later(backoffMs(streaks.batches.fail(id))));
      }
    });
  }

  // 6. Auto-assignment of the annotators due for it.
  const assignDue = await claimDue(db, ASSIGN);
  more ||= assignDue.length === CLAIM_LIMIT;
  if (assignDue.length) {
    const ids = assignDue.map((c) => c.id);
    const annotators = new Map((await db.selectFrom('annotators').selectAll().where('id', 'in', ids).execute()).map((a) => [a.id, a]));
    const busy = new Set(
      (await db.selectFrom('assignments').select('annotatorId').where('annotatorId', 'in', ids).where('status', 'in', ['pending', 'in_progress']).execute()).map(
        (r) => r.annotatorId,
      ),
    );
    // Roles with an auto-assigned workflow holding queued work: annotators of other roles have nothing to get.
    const roles = new Set(
      (
        await db
          .selectFrom('workflows as w')
          .select('w.roleId')
          .distinct()
          .where('w.isActive', '=', true)
          .where('w.autoAssign', '=', true)
          .where('w.labelingConfigId', 'is not', null)
          .where('w.roleId', 'is not', null)
          .where(({ exists, selectFrom }) => exists(selectFrom('workItems as i').select('i.id').whereRef('i.workflowId', '=', 'w.id').where('i.status', '=', 'queued')))
          .execute()
      ).map((r) => r.roleId),
    );
    const next: Requeue = [];
    for (const { id, lease } of assignDue.sort((a, b) => a.id - b.id)) {
      const annotator = annotators.get(id);
      // Nothing to do until a wake-up: a batch closes, work appears, the annotator or a workflow changes.
      next.push({ id, seen: lease, next: null });
      if (!annotator || annotator.status !== 'active' || annotator.autoAssignPaused || annotator.roleId === null) continue;
      if (busy.has(id) || !roles.has(annotator.roleId)) continue;
      try {
        const a = await autoAssign(db, annotator);
        streaks.assign.succeed(id);
        if (a) {
          report.counts.assigned++;
          report.actions.push(`annotator ${annotator.id}: assigned batch ${a.id} of workflow ${a.workflowId} (${a.taskCount} tasks)`);
        }
      } catch (err) {
        error(`annotator ${annotator.id}: auto-assignment failed: ${(err as Error).message}`);
        next.at(-1)!.next = later(backoffMs(streaks.assign.fail(id)));
      }
    }
    await requeue(db, ASSIGN, next);
  }

  // 7. Provisioning of the due pending batches (those just assigned included).
  for (;;) {
    const claimed = await claimDue(db, BATCH, { where: sql<boolean>`status = 'pending'` });
    claimedBatches.push(...claimed);
    if (claimed.length) await reconcileBatches(ctx, claimed, opts, report, batchNext, error, 'pending');
    if (claimed.length < CLAIM_LIMIT) break;
    if (!opts.force) {
      more = true;
      break;
    }
  }
  await requeue(db, BATCH, claimedBatches.map((c) => ({ id: c.id, seen: c.lease, next: batchNext.get(c.id) ?? null })));

  // 8. Workflow counters, when anything was due (every change to work items comes with a due
  // catalog, batch or annotator: a sync, a batch closing, a new batch) or on the resync.
  if (opts.resync || report.actions.length || catalogs.length || assignDue.length || claimedBatches.length) {
    await sql`
      UPDATE workflows w SET total_images_available = c.available, total_images_assigned = c.assigned
        FROM (SELECT w2.id,
                     count(i.id) FILTER (WHERE i.status <> 'gone')::int AS available,
                     count(i.id) FILTER (WHERE i.status NOT IN ('queued', 'gone'))::int AS assigned
                FROM workflows w2 LEFT JOIN work_items i ON i.workflow_id = w2.id
               GROUP BY w2.id) c
       WHERE w.id = c.id AND (w.total_images_available <> c.available OR w.total_images_assigned <> c.assigned)`.execute(db);
  }

  if (more) ctx.wake('batches: more due than one pass takes');
  return report;
}

/**
 * Reconciles claimed batches of one status (`kind`) and records in `next` when each is due again: a pending batch
 * is provisioned while its annotator is active (else not due until the annotator changes, or its
 * provisioning timeout); an in-progress one gets a fresh webhook when stale and is compared with
 * Label Studio when its compare interval elapsed (or forced), else due at that time.
 */
async function reconcileBatches(
  ctx: AppContext,
  claimed: Claimed[],
  opts: BatchesPassOptions,
  report: BatchesReport,
  next: Map<number, Date | null>,
  error: (msg: string) => void,
  kind: 'pending' | 'in_progress',
) {
  const { db } = ctx.database;
  const compareMs = Number(await getSetting(db, 'batches.compareIntervalSeconds')) * 1000;
  const timeoutMs = Number(await getSetting(db, 'batches.provisionTimeoutMinutes')) * 60_000;
  const rows = await db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .selectAll('a')
    .select(['n.status as annotatorStatus', 'n.startGeneration as generation'])
    .where('a.id', 'in', claimed.map((c) => c.id))
    .orderBy('a.id')
    .execute();
  const retry = (id: number, cap?: number) => {
    const at = Date.now() + backoffMs(streaks.batches.fail(id));
    next.set(id, new Date(cap === undefined ? at : Math.min(at, cap)));
  };

  const pending = rows.filter((r) => kind === 'pending' && r.status === 'pending');
  const live = rows.filter((r) => kind === 'in_progress' && r.status === 'in_progress' && r.lsProjectId !== null && r.annotatorStatus === 'active');

  // Webhooks whose secret is stale (the annotator restarted).
  const stale = live.filter((r) => r.webhookGeneration === null || r.webhookGeneration !== r.generation);
  if (stale.length) {
    const rotated = await rotateWebhooks(ctx, stale.map((r) => r.id));
    if (rotated.updated) report.actions.push(`updated ${rotated.updated} webhooks to a new secret`);
    rotated.errors.forEach(error);
  }

  // Compare with Label Studio; the others are due when their interval elapses.
  const now = Date.now();
  const toCompare: Assignment[] = [];
  for (const a of live) {
    const checked = a.lsCheckedAt?.getTime() ?? null;
    if (opts.force || checked === null || checked <= now - compareMs) toCompare.push(a);
    else next.set(a.id, new Date(checked + compareMs));
  }
  await inParallel(toCompare, PARALLEL, async (a) => {
    try {
      const { changed } = await reconcileAssignment(ctx, a);
      report.counts.reconciled++;
      streaks.batches.succeed(a.id);
      next.set(a.id, later(compareMs));
      if (changed) report.actions.push(`assignment ${a.id}: ${changed} tasks updated from Label Studio`);
    } catch (err) {
      if (!(err instanceof InstanceUnavailable)) error(`assignment ${a.id}: compare with Label Studio failed: ${(err as Error).message}`);
      retry(a.id);
    }
  });

  // Provisioning: only while the annotator can serve it (a deleted annotator fails it).
  await inParallel(pending, PARALLEL, async (a) => {
    const expiresAt = a.createdAt.getTime() + timeoutMs;
    if (a.annotatorStatus !== 'active' && a.annotatorStatus !== 'deleted' && Date.now() <= expiresAt) {
      next.set(a.id, new Date(expiresAt + 1000)); // then provisionAssignment fails it
      return;
    }
    try {
      const r = await provisionAssignment(ctx, a.id);
      if (r.outcome === 'provisioned') {
        streaks.batches.succeed(a.id);
        report.counts.provisioned++;
        report.actions.push(`assignment ${a.id}: set up in Label Studio`);
      } else if (r.outcome === 'failed') {
        error(`assignment ${a.id}: failed: ${r.message}`);
      } else if (r.outcome === 'waiting') {
        retry(a.id, expiresAt + 1000);
      }
    } catch (err) {
      error(`assignment ${a.id}: provisioning failed (will retry): ${(err as Error).message}`);
      retry(a.id, expiresAt + 1000);
    }
  });
}

export function batchesStep(): ReconcileStep {
  const resync = new FullResync();
  return { name: 'batches', run: (ctx) => runBatchesPass(ctx, { resync: resync.due() }) };
}
