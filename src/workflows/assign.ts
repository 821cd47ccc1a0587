/**
 * Assignment: reserve a batch of a workflow's queued items for one annotator, mix in gold tasks,
 * and record the assignment (status pending) with its tasks — one transaction, no I/O. The
 * reconciler then sets it up in Label Studio (provision.ts).
 *
 * Concurrency. Items are taken with `FOR UPDATE SKIP LOCKED`, so concurrent assignments of one
 * workflow take disjoint items without waiting for each other; the partial unique index
 * work_items_reserved_image_key additionally guarantees that no image is in two open batches of a
 * workflow even when it is queued twice (a rework and a chained copy of the same image): such a
 * collision rolls the transaction back and it is retried. Assignments of one annotator are
 * serialised (a transaction-level advisory lock on the annotator), so maxProjects holds.
 *
 * Order. Items reserved for this annotator (rework returned to them) come first, then rework,
 * then chained items, then catalog images; within a priority, a shuffled workflow takes items by
 * their random rank (sort_key, drawn once per item) and an unshuffled one by key. The batch's
 * tasks are then shuffled (shuffleImages) or kept in key order, and gold tasks placed at random
 * positions (domain/gold-mixing.ts).
 *
 * maxProjects counts the annotator's batches of the workflow that are pending, in progress or
 * completed (failed and cancelled ones do not count).
 */
import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Executor, Tx } from '../db/index.ts';
import type { Annotator, Assignment, Workflow } from '../db/types.ts';
import { mixGold, pickGold, placeGold, seededRandom, shuffle } from '../domain/gold-mixing.ts';
import { badRequest, conflict, notFound, PG, pgCode } from '../errors.ts';

/** Advisory lock class for per-annotator assignment (pg_advisory_xact_lock(class, annotatorId)). */
export const ASSIGN_LOCK_CLASS = 7406;

export const OPEN_STATUSES = ['pending', 'in_progress'] as const;

export type AssignFailure =
  | 'workflow_missing'
  | 'workflow_inactive'
  | 'no_labeling_config'
  | 'annotator_missing'
  | 'annotator_not_active'
  | 'wrong_role'
  | 'max_projects'
  | 'no_items';

export type AssignResult = { ok: true; assignment: Assignment } | { ok: false; reason: AssignFailure; message: string };

interface QueuedItem {
  id: number;
  imageKey: string;
  source: string;
}

async function takeItems(trx: Tx, workflow: Workflow, annotatorId: number, want: number, random: () => number): Promise<QueuedItem[]> {
  if (want <= 0) return [];
  const queued = () =>
    trx
      .selectFrom('workItems')
      .select(['id', 'imageKey', 'source'])
      .where('workflowId', '=', workflow.id)
      .where('status', '=', 'queued');
  const taken: QueuedItem[] = [];
  const take = async (q: ReturnType<typeof queued>) => {
    const n = want - taken.length;
    if (n > 0) taken.push(...(await q.limit(n).forUpdate().skipLocked().execute()));
  };
  // Work reserved for this annotator, then rework, come first.
  await take(queued().where('targetAnnotatorId', '=', annotatorId).orderBy('priority').orderBy('id'));
  const open = () => queued().where('targetAnnotatorId', 'is', null);
  await take(open().where('priority', '=', 0).orderBy('id'));
  if (workflow.shuffleImages) {
    // Items carry a random rank; a batch takes the next ones after a random point (wrapping
    // around), so concurrent assignments start in different places instead of all skipping each
    // other's locked rows at the head of the queue.
    const startAt = random();
    await take(open().where('priority', '>', 0).where('sortKey', '>=', startAt).orderBy('priority').orderBy('sortKey'));
    await take(open().where('priority', '>', 0).where('sortKey', '<', startAt).orderBy('priority').orderBy('sortKey'));
  } else {
    await take(open().where('priority', '>', 0).orderBy('priority').orderBy('imageKey'));
  }
  return withoutOpenImages(trx, workflow.id, taken);
}

/**
 * Drops items whose image is already in an open batch of the workflow (an image can be queued
 * twice: a rework beside a chained copy). A reservation not committed yet is caught by the unique
 * index instead (and the assignment retried). One index lookup per key, whatever the number of
 * reserved images.
 */
async function withoutOpenImages(trx: Tx, workflowId: number, items: QueuedItem[]): Promise<QueuedItem[]> {
  if (!items.length) return items;
  const { rows } = await sql<{ imageKey: string }>`
    SELECT image_key FROM work_items
     WHERE workflow_id = ${workflowId} AND status = 'reserved' AND image_key = ANY(${items.map((i) => i.imageKey)}::text[])`.execute(trx);
  if (!rows.length) return items;
  const open = new Set(rows.map((r) => r.imageKey));
  return items.filter((i) => !open.has(i.imageKey));
}

async function goldCandidates(trx: Tx, labelingConfigId: number, annotatorId: number) {
  const rows = await sql<{ id: number; s3ImageKey: string; timesSeen: number }>`
    SELECT g.id, g.s3_image_key,
           (SELECT count(*)::int FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
             WHERE t.gold_task_id = g.id AND a.annotator_id = ${annotatorId}) AS times_seen
      FROM gold_tasks g
     WHERE g.labeling_config_id = ${labelingConfigId}
     ORDER BY g.id`.execute(trx);
  return rows.rows;
}

function fail(reason: AssignFailure, message: string): AssignResult {
  return { ok: false, reason, message };
}

async function reserveOnce(trx: Tx, workflowId: number, annotatorId: number, opts: { auto: boolean; seed: number }): Promise<AssignResult> {
  await sql`SELECT pg_advisory_xact_lock(${ASSIGN_LOCK_CLASS}, ${annotatorId})`.execute(trx);
  const workflow = await trx.selectFrom('workflows').selectAll().where('id', '=', workflowId).executeTakeFirst();
  if (!workflow) return fail('workflow_missing', 'Workflow not found');
  const annotator = await trx.selectFrom('annotators').selectAll().where('id', '=', annotatorId).executeTakeFirst();
  if (!annotator) return fail('annotator_missing', `Annotator ${annotatorId} not found`);
  if (annotator.status !== 'active') return fail('annotator_not_active', `Annotator ${annotatorId} is not active (status ${annotator.status})`);
  if (workflow.roleId !== null && annotator.roleId !== workflow.roleId) {
    return fail('wrong_role', `Annotator ${annotatorId} does not have the workflow's role (${workflow.roleId})`);
  }
  if (!workflow.isActive) return fail('workflow_inactive', 'Workflow is paused (isActive is false)');
  if (workflow.labelingConfigId === null) return fail('no_labeling_config', 'Workflow has no labeling config');

  const counts = await trx
    .selectFrom('assignments')
    .select([
      sql<number>`count(*) FILTER (WHERE status IN ('pending', 'in_progress', 'completed'))::int`.as('counted'),
      sql<number>`count(*) FILTER (WHERE status IN ('pending', 'in_progress'))::int`.as('open'),
    ])
    .where('workflowId', '=', workflow.id)
    .where('annotatorId', '=', annotatorId)
    .executeTakeFirstOrThrow();
  if (workflow.maxProjects !== null && counts.counted >= workflow.maxProjects) {
    return fail('max_projects', `Annotator ${annotatorId} already has ${counts.counted} batches of this workflow (maxProjects ${workflow.maxProjects})`);
  }
  if (opts.auto) {
    // Auto-assignment gives an annotator one open batch at a time, whatever the workflow.
    const open = await trx
      .selectFrom('assignments')
      .select('id')
      .where('annotatorId', '=', annotatorId)
      .where('status', 'in', OPEN_STATUSES)
      .limit(1)
      .executeTakeFirst();
    if (open) return fail('max_projects', `Annotator ${annotatorId} already has an open batch`);
  }

  const random = seededRandom(opts.seed);
  const gold = await goldCandidates(trx, workflow.labelingConfigId, annotatorId);
  // Lock only as many items as a full batch uses: a locked item other assignments skip must be one
  // this batch keeps, or concurrent batches would come out short.
  const fullBatch = mixGold({ batchSize: workflow.imagesPerProject, rate: workflow.goldStandardRate, realAvailable: workflow.imagesPerProject, goldAvailable: gold.length });
  const taken = await takeItems(trx, workflow, annotatorId, fullBatch.real, random);
  // One image once per batch (an image queued twice, e.g. rework beside a chained copy).
  const seen = new Set<string>();
  const unique = taken.filter((i) => !seen.has(i.imageKey) && seen.add(i.imageKey));
  if (!unique.length) return fail('no_items', 'No images available for assignment');

  const mix = mixGold({
    batchSize: workflow.imagesPerProject,
    rate: workflow.goldStandardRate,
    realAvailable: unique.length,
    goldAvailable: gold.length,
  });
  let real = unique.slice(0, mix.real);
  real = workflow.shuffleImages ? shuffle(real, random) : [...real].sort((a, b) => (a.imageKey < b.imageKey ? -1 : a.imageKey > b.imageKey ? 1 : 0));
  const goldPicked = pickGold(gold, mix.gold, random);
  const slots = placeGold(real, goldPicked, random);

  const now = new Date();
  const assignment = await trx
    .insertInto('assignments')
    .values({
      workflowId: workflow.id,
      annotatorId,
      taskCount: slots.length,
      goldTaskCount: goldPicked.length,
      status: 'pending',
      updatedAt: now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await trx
    .updateTable('workItems')
    .set({ status: 'reserved', assignmentId: assignment.id, updatedAt: now })
    .where('id', 'in', real.map((r) => r.id))
    .execute();
  const rework = real.filter((r) => r.source === 'rework').map((r) => r.id);
  if (rework.length) {
    // A routed rejection's item has found its batch.
    await trx
      .updateTable('rejections')
      .set({ routedToAssignmentId: assignment.id })
      .where('routedWorkItemId', 'in', rework)
      .where('routedToAssignmentId', 'is', null)
      .execute();
  }
  await trx
    .insertInto('assignmentTasks')
    .values(
      slots.map((s, position) =>
        s.kind === 'real'
          ? { assignmentId: assignment.id, s3ImageKey: s.item.imageKey, workItemId: s.item.id, position, updatedAt: now }
          : { assignmentId: assignment.id, s3ImageKey: s.item.s3ImageKey, goldTaskId: s.item.id, isGold: true, position, updatedAt: now },
      ),
    )
    .execute();
  return { ok: true, assignment };
}

/**
 * Reserves one batch in its own transaction (retried when a concurrent reservation of the same
 * image wins the unique index). Never throws for business reasons: see AssignResult.
 */
export async function assignBatch(
  db: Db,
  input: { workflowId: number; annotatorId: number; auto?: boolean; seed?: number },
): Promise<AssignResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db
        .transaction()
        .execute((trx) => reserveOnce(trx, input.workflowId, input.annotatorId, { auto: !!input.auto, seed: input.seed ?? randomInt(2 ** 31) }));
    } catch (err) {
      if (pgCode(err) === PG.uniqueViolation && attempt < 5) continue;
      throw err;
    }
  }
}

/** The manual route's errors: 400 annotator, 404 workflow, 409 state or no images. */
export function assignError(r: Extract<AssignResult, { ok: false }>): Error {
  switch (r.reason) {
    case 'workflow_missing':
      return notFound('Workflow');
    case 'annotator_missing':
    case 'annotator_not_active':
    case 'wrong_role':
      return badRequest(r.message);
    default:
      return conflict(r.message);
  }
}

/** Whether the workflow has queued work an assignment for this annotator could take. */
export async function hasQueuedItems(db: Executor, workflowId: number, annotatorId: number): Promise<boolean> {
  const row = await db
    .selectFrom('workItems')
    .select('id')
    .where('workflowId', '=', workflowId)
    .where('status', '=', 'queued')
    .where((eb) => eb.or([eb('targetAnnotatorId', 'is', null), eb('targetAnnotatorId', '=', annotatorId)]))
    .limit(1)
    .executeTakeFirst();
  return !!row;
}

/**
 * Workflows an annotator can be auto-assigned: active, autoAssign, of the annotator's role, with
 * a labeling config. Those holding work reserved for the annotator come first, then by id.
 * Workflows without a role are assigned manually only.
 */
export async function autoAssignCandidates(db: Executor, annotator: Pick<Annotator, 'id' | 'roleId'>) {
  if (annotator.roleId === null) return [];
  return db
    .selectFrom('workflows as w')
    .select([
      'w.id',
      sql<boolean>`EXISTS (SELECT 1 FROM work_items i WHERE i.workflow_id = w.id AND i.status = 'queued' AND i.target_annotator_id = ${annotator.id})`.as(
        'hasTargeted',
      ),
    ])
    .where('w.isActive', '=', true)
    .where('w.autoAssign', '=', true)
    .where('w.roleId', '=', annotator.roleId)
    .where('w.labelingConfigId', 'is not', null)
    .orderBy(sql`2`, 'desc')
    .orderBy('w.id')
    .execute();
}

/**
 * Gives an active annotator with no open batch its next batch from the first candidate workflow
 * that has work. Returns the assignment, or null when there is nothing to assign.
 */
export async function autoAssign(db: Db, annotator: Pick<Annotator, 'id' | 'roleId' | 'autoAssignPaused' | 'status'>): Promise<Assignment | null> {
  if (annotator.status !== 'active' || annotator.autoAssignPaused) return null;
  for (const wf of await autoAssignCandidates(db, annotator)) {
    if (!(await hasQueuedItems(db, wf.id, annotator.id))) continue;
    const r = await assignBatch(db, { workflowId: wf.id, annotatorId: annotator.id, auto: true });
    if (r.ok) return r.assignment;
    if (r.reason === 'max_projects' && /open batch/.test(r.message)) return null;
  }
  return null;
}

export const toAssignmentSummary = (a: Assignment) => ({
  id: a.id,
  workflowId: a.workflowId,
  annotatorId: a.annotatorId,
  lsProjectId: a.lsProjectId,
  taskCount: a.taskCount,
  goldTaskCount: a.goldTaskCount,
  status: a.status,
});
