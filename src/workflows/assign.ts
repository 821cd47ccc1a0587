/**
 * Assignment: reserve a batch of a workflow's queued items for one annotator, mix in gold tasks,
 * and record the assignment (status pending) with its tasks — one transaction, no I/O. The
 * reconciler then sets it up in Label Studio (provision.ts).
 *
 * Four statements in one short transaction: the annotator's lock, one read of everything the
 * checks need, the reservation (`claimItems`; once more only to replace an image it had to leave
 * out), and one write of the batch (`writeBatch`).
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
import { mixGold, pickGold, placeGold, seededRandom, shuffle, type Slot } from '../domain/gold-mixing.ts';
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

/** A queued item a reservation took. */
export interface QueuedItem {
  id: number;
  imageKey: string;
  source: string;
}

/**
 * The reservation: locks `want` of the workflow's queued items for this annotator (fewer only when
 * the queue runs out), in queue order, and returns them. Order: items reserved for this annotator
 * (rework returned to them), then rework, then chained and catalog items; a shuffled workflow takes
 * the latter by their random rank from `start` (0..1, wrapping around), so concurrent reservations
 * begin in different places instead of all skipping each other's rows at the head of the queue;
 * an unshuffled one by key. Rows other transactions hold are skipped (FOR UPDATE SKIP LOCKED), so
 * concurrent reservations never wait for each other and never take the same item, and each part
 * locks only what the batch still needs, so no row is locked that another batch could have used.
 *
 * One statement, repeated only when an image has to be left out: one already in an open batch of
 * the workflow, or taken twice (an image queued twice: a rework beside a chained copy). Those
 * rows stay locked (so no one else takes them either) and the next statement tops the batch up.
 * A reservation of the same image not yet committed is caught by the unique index
 * work_items_reserved_image_key when the batch is written.
 */
export async function claimItems(
  trx: Tx,
  workflow: Pick<Workflow, 'id' | 'shuffleImages'>,
  annotatorId: number,
  want: number,
  start: number,
): Promise<QueuedItem[]> {
  const kept: QueuedItem[] = [];
  const images = new Set<string>();
  const locked: number[] = [];
  while (kept.length < want) {
    const rows = await claimOnce(trx, workflow, annotatorId, want - kept.length, start, locked);
    if (!rows.length) break;
    for (const { openElsewhere, ...item } of rows) {
      locked.push(item.id);
      if (!openElsewhere && !images.has(item.imageKey)) {
        images.add(item.imageKey);
        kept.push(item);
      }
    }
  }
  return kept;
}

/** One claim statement (see claimItems): up to `want` more items, none of `locked`. */
async function claimOnce(
  trx: Tx,
  workflow: Pick<Workflow, 'id' | 'shuffleImages'>,
  annotatorId: number,
  want: number,
  start: number,
  locked: number[],
): Promise<(QueuedItem & { openElsewhere: boolean })[]> {
  const w = workflow.id;
  const queued = sql`workflow_id = ${w} AND status = 'queued' AND id <> ALL(${locked}::bigint[])`;
  // What the parts before this one took: the next part locks at most the rest.
  const rest = (...before: string[]) =>
    sql`greatest(${want}::int ${sql.join(
      before.map((b) => sql`- (SELECT count(*) FROM ${sql.table(b)})`),
      sql` `,
    )}, 0)`;
  const open = sql`${queued} AND target_annotator_id IS NULL`;
  const tail = workflow.shuffleImages
    ? sql`,
      ranked AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0 AND sort_key >= ${start}
                  ORDER BY priority, sort_key LIMIT ${rest('targeted', 'rework')} FOR UPDATE SKIP LOCKED),
      wrapped AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0 AND sort_key < ${start}
                  ORDER BY priority, sort_key LIMIT ${rest('targeted', 'rework', 'ranked')} FOR UPDATE SKIP LOCKED)`
    : sql`,
      ranked AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0
                  ORDER BY priority, image_key LIMIT ${rest('targeted', 'rework')} FOR UPDATE SKIP LOCKED),
      wrapped AS (SELECT id, image_key, source FROM work_items WHERE false)`;
  const { rows } = await sql<QueuedItem & { openElsewhere: boolean }>`
    WITH targeted AS (SELECT id, image_key, source FROM work_items WHERE ${queued} AND target_annotator_id = ${annotatorId}
                       ORDER BY priority, id LIMIT ${want} FOR UPDATE SKIP LOCKED),
         rework AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority = 0
                     ORDER BY id LIMIT ${rest('targeted')} FOR UPDATE SKIP LOCKED)${tail}
    SELECT c.id, c.image_key, c.source, dup.found IS NOT NULL AS open_elsewhere
      FROM (SELECT 1 AS part, row_number() OVER () AS n, * FROM targeted
            UNION ALL SELECT 2, row_number() OVER (), * FROM rework
            UNION ALL SELECT 3, row_number() OVER (), * FROM ranked
            UNION ALL SELECT 4, row_number() OVER (), * FROM wrapped) AS c
      -- LATERAL … LIMIT 1: one probe of the unique index per item, never a scan of every reserved row.
      LEFT JOIN LATERAL (SELECT true AS found FROM work_items r
                          WHERE r.workflow_id = ${w} AND r.status = 'reserved' AND r.image_key = c.image_key LIMIT 1) AS dup ON true
     ORDER BY c.part, c.n`.execute(trx);
  return rows.map((r) => ({ ...r, id: Number(r.id) }));
}

/** The workflow columns a reservation reads. */
type AssignWorkflow = Pick<
  Workflow,
  'id' | 'roleId' | 'labelingConfigId' | 'isActive' | 'maxProjects' | 'imagesPerProject' | 'goldStandardRate' | 'shuffleImages'
>;

interface AssignContext {
  workflow: AssignWorkflow | null;
  annotator: Pick<Annotator, 'status' | 'roleId'> | null;
  /** The annotator's batches of this workflow that count against maxProjects. */
  counted: number;
  /** Whether the annotator has an open batch in any workflow. */
  hasOpen: boolean;
  /** The gold tasks of the workflow's labeling config and how often this annotator was given each. */
  gold: { id: number; s3ImageKey: string; timesSeen: number }[];
}

/**
 * Everything a reservation checks, in one statement (run after the annotator's lock, so the
 * counts include every batch committed before it). Gold exposure is counted over the annotator's
 * own batches (index assignment_tasks_gold_by_assignment_idx), not over every batch that ever held
 * the gold task.
 */
async function readContext(trx: Tx, workflowId: number, annotatorId: number): Promise<AssignContext> {
  const { rows } = await sql<
    { [K in keyof AssignWorkflow]: AssignWorkflow[K] | null } & {
      annotatorStatus: Annotator['status'] | null;
      annotatorRoleId: number | null;
      counted: number;
      hasOpen: boolean;
      gold: AssignContext['gold'] | null;
    }
  >`
    SELECT w.id, w.role_id, w.labeling_config_id, w.is_active, w.max_projects, w.images_per_project,
           w.gold_standard_rate, w.shuffle_images,
           a.status AS annotator_status, a.role_id AS annotator_role_id,
           (SELECT count(*)::int FROM assignments
             WHERE annotator_id = ${annotatorId} AND workflow_id = ${workflowId}
               AND status IN ('pending', 'in_progress', 'completed')) AS counted,
           EXISTS (SELECT 1 FROM assignments WHERE annotator_id = ${annotatorId} AND status IN ('pending', 'in_progress')) AS has_open,
           (SELECT json_agg(json_build_object('id', g.id, 's3ImageKey', g.s3_image_key, 'timesSeen', coalesce(seen.n, 0)) ORDER BY g.id)
              FROM gold_tasks g
              LEFT JOIN (SELECT t.gold_task_id, count(*) AS n
                           FROM assignments x JOIN assignment_tasks t ON t.assignment_id = x.id AND t.gold_task_id IS NOT NULL
                          WHERE x.annotator_id = ${annotatorId}
                          GROUP BY t.gold_task_id) AS seen ON seen.gold_task_id = g.id
             WHERE g.labeling_config_id = w.labeling_config_id) AS gold
      FROM (SELECT 1) AS one
      LEFT JOIN workflows w ON w.id = ${workflowId}
      LEFT JOIN annotators a ON a.id = ${annotatorId}`.execute(trx);
  const { annotatorStatus, annotatorRoleId, counted, hasOpen, gold, ...workflow } = rows[0]!;
  return {
    workflow: workflow.id === null ? null : (workflow as AssignWorkflow),
    annotator: annotatorStatus === null ? null : { status: annotatorStatus, roleId: annotatorRoleId },
    counted,
    hasOpen,
    gold: gold ?? [],
  };
}

function fail(reason: AssignFailure, message: string): AssignResult {
  return { ok: false, reason, message };
}

/**
 * Writes a batch in one statement: the assignment, its items marked reserved, routed rejections
 * pointed at it, and its tasks in slot order. A concurrent reservation of the same image fails it
 * on the unique index (the caller retries).
 */
async function writeBatch(
  trx: Tx,
  input: { workflowId: number; annotatorId: number; slots: Slot<QueuedItem, { id: number; s3ImageKey: string }>[] },
): Promise<Assignment> {
  const { slots } = input;
  const real = slots.flatMap((s) => (s.kind === 'real' ? [s.item] : []));
  const gold = slots.length - real.length;
  const { rows } = await sql<Assignment>`
    WITH a AS (
      INSERT INTO assignments (workflow_id, annotator_id, task_count, gold_task_count, status, updated_at)
      VALUES (${input.workflowId}, ${input.annotatorId}, ${slots.length}, ${gold}, 'pending', now())
      RETURNING *),
    items AS (
      UPDATE work_items SET status = 'reserved', assignment_id = (SELECT id FROM a), updated_at = now()
       WHERE id = ANY(${real.map((r) => r.id)}::bigint[])),
    routed AS (
      -- A routed rejection's item has found its batch.
      UPDATE rejections SET routed_to_assignment_id = (SELECT id FROM a)
       WHERE routed_work_item_id = ANY(${real.filter((r) => r.source === 'rework').map((r) => r.id)}::bigint[])
         AND routed_to_assignment_id IS NULL),
    tasks AS (
      INSERT INTO assignment_tasks (assignment_id, s3_image_key, work_item_id, gold_task_id, is_gold, position, updated_at)
      SELECT (SELECT id FROM a), t.key, t.item, t.gold, t.gold IS NOT NULL, t.slot - 1, now()
        FROM unnest(${slots.map((s) => (s.kind === 'real' ? s.item.imageKey : s.item.s3ImageKey))}::text[],
                    ${slots.map((s) => (s.kind === 'real' ? s.item.id : null))}::bigint[],
                    ${slots.map((s) => (s.kind === 'gold' ? s.item.id : null))}::int[]) WITH ORDINALITY AS t (key, item, gold, slot))
    SELECT * FROM a`.execute(trx);
  return rows[0]!;
}

async function reserveOnce(trx: Tx, workflowId: number, annotatorId: number, opts: { auto: boolean; seed: number }): Promise<AssignResult> {
  await sql`SELECT pg_advisory_xact_lock(${ASSIGN_LOCK_CLASS}, ${annotatorId})`.execute(trx);
  const { workflow, annotator, counted, hasOpen, gold } = await readContext(trx, workflowId, annotatorId);
  if (!workflow) return fail('workflow_missing', 'Workflow not found');
  if (!annotator) return fail('annotator_missing', `Annotator ${annotatorId} not found`);
  if (annotator.status !== 'active') return fail('annotator_not_active', `Annotator ${annotatorId} is not active (status ${annotator.status})`);
  if (workflow.roleId !== null && annotator.roleId !== workflow.roleId) {
    return fail('wrong_role', `Annotator ${annotatorId} does not have the workflow's role (${workflow.roleId})`);
  }
  if (!workflow.isActive) return fail('workflow_inactive', 'Workflow is paused (isActive is false)');
  if (workflow.labelingConfigId === null) return fail('no_labeling_config', 'Workflow has no labeling config');
  if (workflow.maxProjects !== null && counted >= workflow.maxProjects) {
    return fail('max_projects', `Annotator ${annotatorId} already has ${counted} batches of this workflow (maxProjects ${workflow.maxProjects})`);
  }
  // Auto-assignment gives an annotator one open batch at a time, whatever the workflow.
  if (opts.auto && hasOpen) return fail('max_projects', `Annotator ${annotatorId} already has an open batch`);

  const random = seededRandom(opts.seed);
  // Lock only as many items as a full batch uses: a locked item other assignments skip must be one
  // this batch keeps, or concurrent batches would come out short.
  const fullBatch = mixGold({ batchSize: workflow.imagesPerProject, rate: workflow.goldStandardRate, realAvailable: workflow.imagesPerProject, goldAvailable: gold.length });
  const taken = await claimItems(trx, workflow, annotatorId, fullBatch.real, workflow.shuffleImages ? random() : 0);
  if (!taken.length) return fail('no_items', 'No images available for assignment');

  const mix = mixGold({
    batchSize: workflow.imagesPerProject,
    rate: workflow.goldStandardRate,
    realAvailable: taken.length,
    goldAvailable: gold.length,
  });
  let real = taken.slice(0, mix.real);
  real = workflow.shuffleImages ? shuffle(real, random) : [...real].sort((a, b) => (a.imageKey < b.imageKey ? -1 : a.imageKey > b.imageKey ? 1 : 0));
  const slots = placeGold(real, pickGold(gold, mix.gold, random), random);
  return { ok: true, assignment: await writeBatch(trx, { workflowId: workflow.id, annotatorId, slots }) };
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
