/**
 * The comparison of a batch with its Label Studio project. Label Studio is the truth; webhooks only
 * make us fast. Whatever order or subset of webhooks arrived, after a comparison:
 *
 * - each of our tasks whose Label Studio task exists holds that task's state: its counting
 *   annotation (countingAnnotation in src/domain/batch-decision.ts: the surviving annotation
 *   updated last), skipped (the counting annotation was cancelled), or none (open). An annotation
 *   no webhook told us about is first recorded as its webhook would have been (ingest.ts, source
 *   'reconcile'); where the task still differs (e.g. the newest annotation was deleted and the
 *   older one survives, which the ingestion's ordering rule would refuse), the task is set to
 *   Label Studio's state directly, with the batch's counts, its pending review decision and its
 *   gold score following;
 * - a task deleted in Label Studio (TASKS_DELETED, or any path) is removed from the batch: status
 *   'removed', its image back in the queue (a gold task just leaves), the batch's task_count no
 *   longer counting it and removed_task_count counting it. The batch finishes without it;
 * - tasks in the project that LabelFleet did not create (added by hand) are ignored and counted
 *   in unknown_ls_task_count (the batch's problem shows them).
 * Every change takes the task's row lock first, then the batch's, as ingestion does.
 */
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Tx } from '../db/index.ts';
import type { Assignment } from '../db/types.ts';
import { countingAnnotation } from '../domain/batch-decision.ts';
import { isoMicros, projectKey } from '../domain/task-data.ts';
import type { LsAnnotation, LsTask } from '../labelstudio/client.ts';
import { labelStudioFor } from '../labelstudio/instances.ts';
import { ingestEvent, settleTaskState, type IngestEvent } from './ingest.ts';
import { evaluateQuality } from './quality.ts';

export interface CompareOutcome {
  /** Tasks whose state changed (annotated, reopened, corrected). */
  changed: number;
  /** Tasks found deleted in Label Studio this time. */
  removed: number;
  /** Tasks in the project LabelFleet did not create. */
  unknown: number;
  lsTasks: LsTask[];
}

interface OurTask {
  id: number;
  lsTaskId: number | null;
  status: 'open' | 'annotated' | 'removed';
  lsAnnotationId: number | null;
  updatedMicros: number | string | null;
}

/**
 * Whether our task holds Label Studio's state for it (`ann`: its counting annotation): a pre-check
 * on the rows read without locks, so tasks in sync cost no transaction. Settling checks the same
 * under the task's lock, in SQL (labelfleet_ingest_annotations), and that check decides.
 */
const inSync = (t: OurTask, ann: LsAnnotation | undefined) =>
  ann
    ? t.status === 'annotated' && t.lsAnnotationId === ann.id && t.updatedMicros !== null && Number(t.updatedMicros) >= isoMicros(ann.updated_at)
    : t.status === 'open';

const ourTasks = (trx: AppContext['database']['db'] | Tx, where: { assignmentId?: number; id?: number }) => {
  let q = trx
    .selectFrom('assignmentTasks')
    .select([
      'id',
      'lsTaskId',
      'status',
      'lsAnnotationId',
      sql<string | null>`(extract(epoch from ls_annotation_updated_at) * 1000000)::bigint`.as('updatedMicros'),
    ]);
  if (where.assignmentId !== undefined) q = q.where('assignmentId', '=', where.assignmentId);
  if (where.id !== undefined) q = q.where('id', '=', where.id);
  return q;
};

/** Compares the batch with Label Studio's export of its project (every task, with annotations). */
export async function compareWithLabelStudio(ctx: AppContext, a: Assignment, lsTasks: LsTask[]): Promise<CompareOutcome> {
  const { db } = ctx.database;
  const ours = (await ourTasks(db, { assignmentId: a.id }).execute()) as OurTask[];
  const removedIds = await db
    .selectFrom('assignmentTasks')
    .select('removedLsTaskId')
    .where('assignmentId', '=', a.id)
    .where('removedLsTaskId', 'is not', null)
    .execute();
  const known = new Set<number>([...ours.map((t) => t.lsTaskId), ...removedIds.map((r) => r.removedLsTaskId)].filter((x): x is number => x !== null));
  const byLsId = new Map(lsTasks.map((t) => [t.id, t]));
  const out: CompareOutcome = { changed: 0, removed: 0, unknown: lsTasks.filter((t) => !known.has(t.id)).length, lsTasks };

  for (const t of ours) {
    if (t.lsTaskId === null || t.status === 'removed') continue;
    const ls = byLsId.get(t.lsTaskId);
    if (!ls) {
      if (await removeTask(db, a, t.id)) out.removed++;
      continue;
    }
    const ann = countingAnnotation(ls.annotations);
    if (inSync(t, ann)) continue;
    // Record what no webhook delivered, as its webhook would have been (events, throughput).
    const ev = await eventFor(ctx, a, t, ann);
    if (ev) out.changed += (await ingestEvent(db, ev)).applied;
    // Then make the task hold Label Studio's state, whatever the ingestion's ordering rules allowed.
    if (await settleTask(db, a, t.id, ann)) out.changed++;
  }
  await db
    .updateTable('assignments')
    .set({ lsCheckedAt: new Date(), unknownLsTaskCount: out.unknown })
    .where('id', '=', a.id)
    .execute();
  return out;
}

async function eventFor(ctx: AppContext, a: Assignment, t: OurTask, ann: LsAnnotation | undefined): Promise<IngestEvent | null> {
  const base = { annotatorId: a.annotatorId, source: 'reconcile' as const, lsProjectId: a.lsProjectId, lsTaskId: t.lsTaskId };
  if (!ann) return t.status === 'annotated' && t.lsAnnotationId !== null ? { ...base, action: 'ANNOTATIONS_DELETED', deletedIds: [t.lsAnnotationId] } : null;
  const created = await ctx.database.db
    .selectFrom('annotationEvents')
    .select('id')
    .where('annotatorId', '=', a.annotatorId)
    .where('lsAnnotationId', '=', ann.id)
    .where('eventType', '=', 'annotation_created')
    .limit(1)
    .executeTakeFirst();
  return {
    ...base,
    action: created ? 'ANNOTATION_UPDATED' : 'ANNOTATION_CREATED',
    annotation: { id: ann.id, result: ann.result ?? [], updatedAt: ann.updated_at ?? null, leadTime: ann.lead_time ?? null, wasCancelled: !!ann.was_cancelled },
  };
}

/**
 * Sets one task to Label Studio's state (`ann`: its counting annotation, or none), with the
 * batch's completed count, the task's review decision (until applied) and its gold result. true
 * when something changed. Only in-progress batches change. The rule is the ingestion's own
 * (ingest.ts settleTaskState → labelfleet_ingest_annotations, settling), so what a task holds once
 * an annotation lands on it has one implementation.
 */
export async function settleTask(db: AppContext['database']['db'], a: Assignment, taskId: number, ann: LsAnnotation | undefined): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const t = await trx.selectFrom('assignmentTasks').select(['lsTaskId', 'assignmentId']).where('id', '=', taskId).executeTakeFirst();
    if (!t || t.lsTaskId === null || t.assignmentId !== a.id) return false;
    const r = await settleTaskState(
      trx,
      { annotatorId: a.annotatorId, lsProjectId: a.lsProjectId, lsTaskId: t.lsTaskId },
      ann
        ? { id: ann.id, result: ann.result ?? [], updatedAt: ann.updated_at ?? null, leadTime: ann.lead_time ?? null, wasCancelled: !!ann.was_cancelled }
        : null,
    );
    return r.outcome === 'applied' && r.taskId === taskId;
  });
}

/**
 * Removes a task deleted in Label Studio from its in-progress batch: status 'removed' (its Label
 * Studio id moves to removed_ls_task_id, so late webhooks about it find nothing), the batch no
 * longer counts it (task_count, gold_task_count, completed_count) and counts it removed, its image
 * goes back to the queue, a gold result of it is dropped. true when it was removed now.
 */
export async function removeTask(db: AppContext['database']['db'], a: Assignment, taskId: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const t = await trx
      .selectFrom('assignmentTasks')
      .select(['id', 'status', 'lsTaskId', 'isGold', 'workItemId'])
      .where('id', '=', taskId)
      .forUpdate()
      .executeTakeFirst();
    if (!t || t.status === 'removed') return false;
    const batch = await trx.selectFrom('assignments').select('status').where('id', '=', a.id).forUpdate().executeTakeFirstOrThrow();
    if (batch.status !== 'in_progress') return false;
    const now = new Date();
    await trx
      .updateTable('assignmentTasks')
      .set({ status: 'removed', removedLsTaskId: t.lsTaskId, lsTaskId: null, removedAt: now, updatedAt: now })
      .where('id', '=', taskId)
      .execute();
    await trx
      .updateTable('assignments')
      .set({
        taskCount: sql`greatest(task_count - 1, 0)`,
        goldTaskCount: t.isGold ? sql`greatest(gold_task_count - 1, 0)` : sql`gold_task_count`,
        completedCount: t.status === 'annotated' ? sql`greatest(completed_count - 1, 0)` : sql`completed_count`,
        removedTaskCount: sql`removed_task_count + 1`,
        updatedAt: now,
      })
      .where('id', '=', a.id)
      .execute();
    if (t.workItemId !== null) {
      await trx
        .updateTable('workItems')
        .set({ status: 'queued', assignmentId: null, updatedAt: now })
        .where('id', '=', t.workItemId)
        .where('assignmentId', '=', a.id)
        .where('status', '=', 'reserved')
        .execute();
    }
    if (t.isGold) {
      const gone = await trx.deleteFrom('goldResults').where('assignmentTaskId', '=', taskId).executeTakeFirst();
      if (Number(gone.numDeletedRows)) await evaluateQuality(trx, a.annotatorId);
    }
    return true;
  });
}

/** The batch's Label Studio project is gone, or the id now names a project that is not the batch's. */
export class ProjectGone extends Error {}

/**
 * Compares one in-progress batch with Label Studio (every task of its project, with annotations).
 * Before any task is taken as deleted, the project is checked to still be the batch's (its
 * description carries the batch's key): an instance whose database was replaced may hand out the
 * same project id for another project, and its tasks must not release ours. Throws ProjectGone
 * when it is not (or a 404 LabelStudioError when no project has the id).
 */
export async function reconcileAssignment(ctx: AppContext, a: Assignment): Promise<CompareOutcome> {
  const annotator = await ctx.database.db.selectFrom('annotators').selectAll().where('id', '=', a.annotatorId).executeTakeFirstOrThrow();
  const client = labelStudioFor(ctx, annotator);
  const lsTasks = await client.exportTasks(a.lsProjectId!, { all: true });
  const there = new Set(lsTasks.map((t) => t.id));
  const missing = await ctx.database.db
    .selectFrom('assignmentTasks')
    .select('id')
    .where('assignmentId', '=', a.id)
    .where('lsTaskId', 'is not', null)
    .where('lsTaskId', 'not in', there.size ? [...there] : [-1])
    .limit(1)
    .executeTakeFirst();
  if (missing) {
    const project = await client.getProject(a.lsProjectId!);
    if (!(project.description ?? '').includes(projectKey(a.id))) {
      throw new ProjectGone(`Label Studio project ${a.lsProjectId} is no longer batch ${a.id}'s`);
    }
  }
  return compareWithLabelStudio(ctx, a, lsTasks);
}

/**
 * Label Studio actions whose payload LabelFleet does not ingest but that change a batch's tasks or
 * annotations (ANNOTATIONS_CREATED — "create annotations from predictions" —, TASKS_CREATED,
 * TASKS_DELETED): the batches of that project (of every project of the annotator when the payload
 * names none) become due for comparison at once (ls_checked_at cleared, due_at now). Returns how many.
 */
export const COMPARE_ACTIONS = new Set(['ANNOTATIONS_CREATED', 'TASKS_CREATED', 'TASKS_DELETED']);

export async function markForComparison(db: AppContext['database']['db'], annotatorId: number, lsProjectId: number | null): Promise<number> {
  let q = db
    .updateTable('assignments')
    // Due now for the batches step (orchestrator/due.ts), even when already waiting to be compared.
    .set({ lsCheckedAt: null, dueAt: sql<Date>`clock_timestamp()` })
    .where('annotatorId', '=', annotatorId)
    .where('status', '=', 'in_progress');
  if (lsProjectId !== null) q = q.where('lsProjectId', '=', lsProjectId);
  return Number((await q.executeTakeFirst()).numUpdatedRows);
}
