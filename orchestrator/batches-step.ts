/**
 * The reconciler step for batches, by key and when due (orchestrator/due.ts, migration 0021).
 * What to do with each batch is decided by the pure decideBatch (src/domain/batch-decision.ts);
 * this step gathers the inputs, performs the action and requeues the batch from the decision's
 * next due time. Each pass, in order:
 *  1. on a full resync (every FULL_RESYNC_MS, the safety net for missed wake-ups): release the
 *     items of failed and cancelled batches and un-target rework reserved for deleted annotators
 *     (migration 0021's triggers do both when it happens), and mark every root catalog, open
 *     batch and active annotator due;
 *  2. sync the S3 catalogs that are due (incremental; full every catalog.fullResyncMinutes),
 *     requeued catalog.syncIntervalSeconds later (with backoff on errors);
 *  3. due in-progress batches: update the webhook if its secret is stale (the annotator
 *     restarted); reclaim those untouched for their workflow's expiryHours; compare with Label
 *     Studio those due (every one when forced: POST /api/reconcile; else every
 *     batches.compareIntervalSeconds) — Label Studio's state wins (compare.ts); a batch whose
 *     project is gone fails and releases its images; a batch whose annotator is not active waits
 *     for the annotator (or its expiry);
 *  4. apply recorded review decisions (counts, rejections, routing, archive);
 *  5. decide again for the due batches: export and complete those whose remaining tasks are all
 *     answered, and chain their items;
 *  6. auto-assign the annotators due for it (a batch closed, work appeared, the annotator or a
 *     workflow changed): each active annotator with no open batch (and auto-assignment not paused)
 *     gets a batch from the first eligible workflow that has work; then it waits for a wake-up;
 *  7. the due pending batches (those just assigned included): provision them in Label Studio,
 *     failing them past batches.provisionTimeoutMinutes or when their annotator was deleted; while
 *     the annotator is not active a pending batch is not due until the annotator changes (or the
 *     timeout);
 *  8. record the problem of every batch looked at (batchProblem; an event when one appears or
 *     clears), and clear it on closed batches that still show one;
 *  9. when anything was due: refresh each workflow's totalImagesAvailable / totalImagesAssigned.
 * Failures are reported per object and do not stop the others. A pass with nothing due sends a
 * fixed number of statements and writes nothing.
 */
import { sql } from 'kysely';
import type { AppContext } from '../src/context.ts';
import type { Db } from '../src/db/index.ts';
import type { Assignment } from '../src/db/types.ts';
import type { AnnotatorStatusValue } from '../src/domain/annotator-status.ts';
import { batchExpiresAt, batchProblem, decideBatch, type BatchDecision, type BatchInput, type ProblemCode } from '../src/domain/batch-decision.ts';
import { LabelStudioError } from '../src/labelstudio/client.ts';
import { InstanceUnavailable } from '../src/labelstudio/instances.ts';
import { getSetting } from '../src/settings.ts';
import { fleetBucket, storageFor } from '../src/storage/s3.ts';
import { autoAssign } from '../src/workflows/assign.ts';
import { reclaimAssignment, recordProblem } from '../src/workflows/batch-problems.ts';
import { syncCatalog } from '../src/workflows/catalog.ts';
import { ProjectGone, reconcileAssignment } from '../src/workflows/compare.ts';
import { completeAssignment } from '../src/workflows/complete.ts';
import { failAssignment, provisionAssignment, rotateWebhooks } from '../src/workflows/provision.ts';
import { applyPendingReviews } from '../src/workflows/review.ts';
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
  counts: { reconciled: number; completed: number; assigned: number; provisioned: number; released: number; reviews: number; reclaimed: number };
}

const PARALLEL = 4;
/** How soon a batch whose Label Studio did not answer is looked at again, at least (decideBatch's retrySeconds). */
const RETRY_SECONDS = 15;
/**
 * When a batch whose attempt failed (Label Studio did not answer, provisioning or completion
 * failed) is due again: RETRY_SECONDS doubling to 5 min with its failures in a row, so the pass
 * after a failure does not take the same batches up again.
 */
const batchRetryMs = (id: number) => backoffMs(streaks.batches.fail(id), undefined, RETRY_SECONDS * 1000);

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
const inSeconds = (s: number | null) => (s === null ? null : later(s * 1000));

type Requeue = Array<{ id: number; seen: Date | null; next: Date | null }>;

interface OpenBatch extends Assignment {
  annotatorStatus: AnnotatorStatusValue;
  generation: number;
  expiryHours: number | null;
  lastTouchedAt: Date | null;
}

/**
 * The given batches with what their decision needs: the annotator's status and start generation,
 * the workflow's expiryHours and when the annotator last touched the batch (started it, or the
 * newest annotation's updated_at).
 */
async function loadBatches(db: Db, ids: number[]): Promise<OpenBatch[]> {
  if (!ids.length) return [];
  return (await db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .innerJoin('workflows as w', 'w.id', 'a.workflowId')
    .selectAll('a')
    .select([
      'n.status as annotatorStatus',
      'n.startGeneration as generation',
      'w.expiryHours',
      sql<Date | null>`greatest(a.started_at, (SELECT max(t.ls_annotation_updated_at) FROM assignment_tasks t WHERE t.assignment_id = a.id))`.as(
        'lastTouchedAt',
      ),
    ])
    .where('a.id', 'in', ids)
    .orderBy('a.id')
    .execute()) as OpenBatch[];
}

type Policy = { compareIntervalSeconds: number; retrySeconds: number };

function decide(b: OpenBatch, policy: Policy, force: boolean): BatchDecision {
  const input: BatchInput = {
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
  return decideBatch(input);
}

/** What this pass learned about reaching each batch's Label Studio (for its problem). */
type Seen = Map<number, { lsUnreachable?: boolean; lsError?: string }>;

export async function runBatchesPass(ctx: AppContext, opts: BatchesPassOptions = {}): Promise<BatchesReport> {
  const { db } = ctx.database;
  const report: BatchesReport = {
    actions: [],
    errors: [],
    counts: { reconciled: 0, completed: 0, assigned: 0, provisioned: 0, released: 0, reviews: 0, reclaimed: 0 },
  };
  const seen: Seen = new Map();
  const policy: Policy = {
    compareIntervalSeconds: Number(await getSetting(db, 'batches.compareIntervalSeconds')),
    retrySeconds: RETRY_SECONDS,
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
    if (claimed.length) await reconcileBatches(ctx, claimed, opts, policy, report, batchNext, seen, error, 'in_progress');
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

  // 5. Completion: decide again for the due in-progress batches (after the comparison and the
  //    reviews); export and complete those whose remaining tasks are all answered.
  const ready = (await loadBatches(db, claimedBatches.map((c) => c.id)))
    .filter((b) => b.status === 'in_progress' && decide(b, policy, false).decision.action === 'complete')
    .map((b) => b.id);
  await inParallel(ready, PARALLEL, async (id) => {
    try {
      if ((await completeAssignment(ctx, id)) === 'completed') {
        report.counts.completed++;
        report.actions.push(`assignment ${id}: exported and completed`);
        batchNext.set(id, null);
      }
    } catch (err) {
      error(`assignment ${id}: completion failed: ${(err as Error).message}`);
      batchNext.set(id, later(batchRetryMs(id)));
    }
  });

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
    if (claimed.length) await reconcileBatches(ctx, claimed, opts, policy, report, batchNext, seen, error, 'pending');
    if (claimed.length < CLAIM_LIMIT) break;
    if (!opts.force) {
      more = true;
      break;
    }
  }
  await requeue(db, BATCH, claimedBatches.map((c) => ({ id: c.id, seen: c.lease, next: batchNext.get(c.id) ?? null })));

  // 8. Every batch looked at shows what it waits on; closed ones show nothing.
  await recordProblems(db, claimedBatches.map((c) => c.id), seen, report, error);

  // 9. Workflow counters, when anything was due (every change to work items comes with a due
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
 * Decides and acts for claimed batches of one status (`kind`), recording in `next` when each is
 * due again (decideBatch's nextInSeconds, or a backoff after a failure) and in `seen` whether its
 * Label Studio answered. In progress: a fresh webhook when stale, reclaim past the expiry, compare
 * with Label Studio when due (a project that is gone fails the batch). Pending: provision while the
 * annotator is active (else not due until the annotator changes, or the provisioning timeout);
 * fail when the annotator was deleted.
 */
async function reconcileBatches(
  ctx: AppContext,
  claimed: Claimed[],
  opts: BatchesPassOptions,
  policy: Policy,
  report: BatchesReport,
  next: Map<number, Date | null>,
  seen: Seen,
  error: (msg: string) => void,
  kind: 'pending' | 'in_progress',
) {
  const { db } = ctx.database;
  const rows = (await loadBatches(db, claimed.map((c) => c.id))).filter((r) => r.status === kind);
  const retry = (id: number, cap?: number) => {
    const at = Date.now() + batchRetryMs(id);
    next.set(id, new Date(cap === undefined ? at : Math.min(at, cap)));
  };

  if (kind === 'in_progress') {
    // Webhooks whose secret is stale (the annotator restarted).
    const stale = rows.filter(
      (r) => r.lsProjectId !== null && r.annotatorStatus === 'active' && (r.webhookGeneration === null || r.webhookGeneration !== r.generation),
    );
    if (stale.length) {
      const rotated = await rotateWebhooks(ctx, stale.map((r) => r.id));
      if (rotated.updated) report.actions.push(`updated ${rotated.updated} webhooks to a new secret`);
      rotated.errors.forEach(error);
    }
    const toCompare: OpenBatch[] = [];
    for (const b of rows) {
      const { decision: d, nextInSeconds } = decide(b, policy, !!opts.force);
      next.set(b.id, inSeconds(nextInSeconds));
      if (d.action === 'compare') toCompare.push(b);
      if (d.action !== 'reclaim') continue;
      try {
        if (await reclaimAssignment(db, b.id, d.reason)) {
          report.counts.reclaimed++;
          report.actions.push(`assignment ${b.id}: reclaimed (${d.reason})`);
        }
      } catch (err) {
        error(`assignment ${b.id}: reclaim failed: ${(err as Error).message}`);
        retry(b.id);
      }
    }
    await inParallel(toCompare, PARALLEL, async (a) => {
      try {
        const r = await reconcileAssignment(ctx, a);
        seen.set(a.id, { lsUnreachable: false });
        streaks.batches.succeed(a.id);
        report.counts.reconciled++;
        if (r.changed) report.actions.push(`assignment ${a.id}: ${r.changed} tasks updated from Label Studio`);
        if (r.removed) report.actions.push(`assignment ${a.id}: ${r.removed} tasks deleted in Label Studio, their images released`);
      } catch (err) {
        const message = (err as Error).message;
        if ((err instanceof LabelStudioError && err.status === 404) || err instanceof ProjectGone) {
          await failAssignment(ctx, a.id, `its Label Studio project ${a.lsProjectId} no longer exists`, ['in_progress']);
          report.actions.push(`assignment ${a.id}: failed, its Label Studio project is gone (images released)`);
          next.set(a.id, null);
          return;
        }
        seen.set(a.id, { lsUnreachable: true, lsError: message });
        if (!(err instanceof InstanceUnavailable)) error(`assignment ${a.id}: compare with Label Studio failed: ${message}`);
        // Retried with backoff, but never later than its expiry (reclaimed then, reachable or not).
        retry(a.id, batchExpiresAt(a.lastTouchedAt ? new Date(a.lastTouchedAt).getTime() : null, a.expiryHours) ?? undefined);
      }
    });
    return;
  }

  const timeoutMs = Number(await getSetting(db, 'batches.provisionTimeoutMinutes')) * 60_000;
  await inParallel(rows, PARALLEL, async (a) => {
    const { decision: d } = decide(a, policy, !!opts.force);
    if (d.action === 'fail') {
      try {
        await failAssignment(ctx, a.id, d.reason);
        error(`assignment ${a.id}: failed: ${d.reason}`);
        next.set(a.id, null);
      } catch (err) {
        error(`assignment ${a.id}: failing it failed (will retry): ${(err as Error).message}`);
        retry(a.id);
      }
      return;
    }
    if (d.action !== 'provision') return;
    // Only while the annotator can serve it; else not due until the annotator changes (a trigger
    // marks its batches due) or the provisioning timeout, when provisionAssignment fails it.
    const expiresAt = a.createdAt.getTime() + timeoutMs;
    if (a.annotatorStatus !== 'active' && Date.now() <= expiresAt) {
      next.set(a.id, new Date(expiresAt + 1000));
      return;
    }
    try {
      const r = await provisionAssignment(ctx, a.id);
      if (r.outcome === 'provisioned') {
        seen.set(a.id, { lsUnreachable: false });
        streaks.batches.succeed(a.id);
        report.counts.provisioned++;
        report.actions.push(`assignment ${a.id}: set up in Label Studio`);
      } else if (r.outcome === 'failed') {
        error(`assignment ${a.id}: failed: ${r.message}`);
        next.set(a.id, null);
      } else if (r.outcome === 'waiting') {
        seen.set(a.id, { lsUnreachable: true, lsError: r.message });
        retry(a.id, expiresAt + 1000);
      }
    } catch (err) {
      error(`assignment ${a.id}: provisioning failed (will retry): ${(err as Error).message}`);
      retry(a.id, expiresAt + 1000);
    }
  });
}

/**
 * Records the problem (batchProblem) of the given batches, and clears it on closed batches that
 * still show one (a batch cancelled through the API is never claimed again; a partial index,
 * migrations/0022_closed_problems.sql, keeps finding them cheap). Unchanged problems are not
 * written (an idle pass writes nothing).
 */
async function recordProblems(db: Db, ids: number[], seen: Seen, report: BatchesReport, error: (msg: string) => void) {
  const rows = await db
    .selectFrom('assignments as a')
    .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
    .select(['a.id', 'a.status', 'a.error', 'a.problemCode', 'a.problemMessage', 'a.removedTaskCount', 'a.unknownLsTaskCount', 'n.status as annotatorStatus'])
    .where((eb) => {
      const closedWithProblem = eb.and([eb('a.status', 'not in', ['pending', 'in_progress']), eb('a.problemCode', 'is not', null)]);
      return ids.length ? eb.or([eb('a.id', 'in', ids), closedWithProblem]) : closedWithProblem;
    })
    .orderBy('a.id')
    .execute();
  for (const b of rows) {
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
    if ((next?.code ?? null) === b.problemCode && (next?.message ?? null) === b.problemMessage) continue;
    try {
      const change = await recordProblem(db, b.id, next);
      if (change === 'appeared' || change === 'changed') report.actions.push(`assignment ${b.id}: problem ${next!.code}: ${next!.message}`);
      if (change === 'cleared') report.actions.push(`assignment ${b.id}: problem ${b.problemCode} cleared`);
    } catch (err) {
      error(`assignment ${b.id}: problem not recorded: ${(err as Error).message}`);
    }
  }
}

export function batchesStep(): ReconcileStep {
  const resync = new FullResync();
  return { name: 'batches', run: (ctx) => runBatchesPass(ctx, { resync: resync.due() }) };
}
