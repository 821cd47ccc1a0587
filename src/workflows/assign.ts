/**
 * Assignment: reserve a batch of a workflow's queued items for one annotator, mix in gold tasks,
 * and record the assignment (status pending) with its tasks — atomically, no I/O. The reconciler
 * then sets it up in Label Studio (provision.ts).
 *
 * Requests made together are served in groups (assignBatch → assignGroup, issue 15): one
 * transaction per group, the annotators' locks and checks for all at once, and the batches of
 * one workflow in one statement (reserveGroup in assign-group.ts). A request alone takes one of
 * two paths (assignOne). Without a per-annotator rule to hold (no maxProjects, not auto), one
 * read and then the whole reservation in one statement (reserveFull), both on one pool
 * connection. Otherwise one short transaction under the annotator's lock: one read for every
 * check, then the same one-statement reservation — or, when the queue cannot fill the batch (or an
 * image had to be left out), the reservation (`claimItems`; repeated only to replace an image it
 * had to leave out) and one write of the batch.
 *
 * Concurrency. Items are taken with `FOR UPDATE SKIP LOCKED`, so concurrent assignments of one
 * workflow take disjoint items without waiting for each other; the partial unique index
 * work_items_reserved_image_key additionally guarantees that no image is in two open batches of a
 * workflow even when it is queued twice (a rework and a chained copy of the same image): such a
 * collision rolls the reservation back and it is retried (a group's requests one by one).
 * Assignments of one annotator that a rule constrains (maxProjects, auto's one open batch), and
 * every request of a group, are serialised by a transaction-level advisory lock on the annotator,
 * so the rule holds.
 *
 * Order. Items reserved for this annotator (rework returned to them) come first, then rework,
 * then chained items, then catalog images; within a priority, a shuffled workflow takes items by
 * their random rank (sort_key, drawn once per item) and an unshuffled one by key. The batch's
 * tasks are then shuffled (shuffleImages) or kept in key order (byte order), and gold tasks placed
 * at random positions (batchLayout in domain/gold-mixing.ts).
 *
 * maxProjects counts the annotator's batches of the workflow that are pending, in progress or
 * completed (failed and cancelled ones do not count).
 */
import { randomInt } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import type { Db, Executor, Tx } from '../db/index.ts';
import type { Annotator, Assignment, Workflow } from '../db/types.ts';
import { batchLayout, mixGold, pickGold, seededRandom, type BatchLayout } from '../domain/gold-mixing.ts';
import { badRequest, conflict, notFound, PG, pgCode } from '../errors.ts';
import { reserveGroup } from './assign-group.ts';
import { GroupCommitUnknown, groupQueue, type GroupQueue } from './group-queue.ts';

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

interface ClaimSpec {
  workflow: Pick<Workflow, 'id' | 'shuffleImages' | 'overlap'>;
  annotatorId: number;
  /** How many items to take. */
  want: number;
  /** Where a shuffled workflow starts in its random ranks (0..1). */
  start: number;
  /** Items this transaction already holds, not to be taken again. */
  locked: number[];
}

/**
 * Overlap k > 1 (work_item_seats, migrations/0020_overlap.sql): a queued item may be taken while
 * it has a free seat and the annotator holds none of its seats. Those rows are locked (FOR UPDATE)
 * before a seat is written, so two reservations never seat the same item at once; a stale read
 * under READ COMMITTED is caught by the seats' unique keys (item × seat, item × annotator) and the
 * reservation retried (assignBatch). Overlap 1 adds nothing: today's statement exactly.
 */
function seatFree(overlap: number, annotatorId: number) {
  if (overlap <= 1) return sql``;
  return sql` AND NOT EXISTS (SELECT 1 FROM work_item_seats s WHERE s.work_item_id = work_items.id AND s.annotator_id = ${annotatorId})
    AND (SELECT count(*) FROM work_item_seats s WHERE s.work_item_id = work_items.id) < ${overlap}`;
}

/**
 * The reservation, as the CTEs that end in `claimed (part, n, id, image_key, source,
 * open_elsewhere)`: up to `want` queued items of the workflow for this annotator, locked, in queue
 * order (`part`, then `n`). Order: items reserved for this annotator (rework returned to them),
 * then rework, then chained and catalog items; a shuffled workflow takes the latter by their random
 * rank from `start`, wrapping around, so concurrent reservations begin in different places instead
 * of all skipping each other's rows at the head of the queue; an unshuffled one by key. Rows other
 * transactions hold are skipped (FOR UPDATE SKIP LOCKED), so concurrent reservations never wait
 * for each other and never take the same item, and each part locks only what the batch still
 * needs. `open_elsewhere` marks an item whose image is already in an open batch of the workflow
 * (an image queued twice: a rework beside a chained copy), found by one probe of the unique index
 * work_items_reserved_image_key per item.
 */
function claimCtes({ workflow, annotatorId, want, start, locked }: ClaimSpec) {
  const queued = sql`workflow_id = ${workflow.id} AND status = 'queued' AND id <> ALL(${locked}::bigint[])${seatFree(workflow.overlap, annotatorId)}`;
  return sql`
    targeted AS (SELECT id, image_key, source FROM work_items WHERE ${queued} AND target_annotator_id = ${annotatorId}
                  ORDER BY priority, id LIMIT ${want}::int FOR UPDATE SKIP LOCKED),
    ${sharedParts(workflow, sql`${queued} AND target_annotator_id IS NULL`, start, sql`${want}::int - (SELECT count(*) FROM targeted)`)},
    claimed AS (
      SELECT c.part, c.n, c.id, c.image_key, c.source, dup.found IS NOT NULL AS open_elsewhere
        FROM (SELECT 1 AS part, row_number() OVER () AS n, * FROM targeted
              UNION ALL SELECT 2, row_number() OVER (), * FROM rework
              UNION ALL SELECT 3, row_number() OVER (), * FROM ranked
              UNION ALL SELECT 4, row_number() OVER (), * FROM wrapped) AS c
        LEFT JOIN LATERAL ${openElsewhere(workflow.id, sql`c.image_key`)} AS dup ON true)`;
}

/**
 * The queue after the items reserved for one annotator, as CTEs `rework`, `ranked`, `wrapped`
 * (id, image_key, source) in queue order: rework, then chained and catalog items — a shuffled
 * workflow's by their random rank from `start`, wrapping around, an unshuffled one's by key.
 * `open` selects the queued items anyone may take; `want` is how many the three may lock in all.
 */
export function sharedParts(workflow: Pick<Workflow, 'shuffleImages'>, open: RawBuilder<unknown>, start: number, want: RawBuilder<unknown>) {
  // What the parts before this one took: the next part locks at most the rest.
  const rest = (...before: string[]) =>
    sql`greatest(${want} ${sql.join(
      before.map((b) => sql`- (SELECT count(*) FROM ${sql.table(b)})`),
      sql` `,
    )}, 0)`;
  const later = workflow.shuffleImages
    ? sql`
      ranked AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0 AND sort_key >= ${start}
                  ORDER BY priority, sort_key LIMIT ${rest('rework')} FOR UPDATE SKIP LOCKED),
      wrapped AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0 AND sort_key < ${start}
                  ORDER BY priority, sort_key LIMIT ${rest('rework', 'ranked')} FOR UPDATE SKIP LOCKED)`
    : sql`
      ranked AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority > 0
                  ORDER BY priority, image_key LIMIT ${rest('rework')} FOR UPDATE SKIP LOCKED),
      wrapped AS (SELECT id, image_key, source FROM work_items WHERE false)`;
  return sql`
    rework AS (SELECT id, image_key, source FROM work_items WHERE ${open} AND priority = 0
                ORDER BY id LIMIT ${rest()} FOR UPDATE SKIP LOCKED),${later}`;
}

/**
 * Whether an image is already in an open batch of the workflow, for LEFT JOIN LATERAL … ON true
 * (column `found`): LIMIT 1, one probe of the unique index work_items_reserved_image_key per item,
 * never a scan of every reserved row.
 */
export const openElsewhere = (workflowId: number, imageKey: RawBuilder<unknown>) =>
  sql`(SELECT true AS found FROM work_items r WHERE r.workflow_id = ${workflowId} AND r.status = 'reserved' AND r.image_key = ${imageKey} LIMIT 1)`;

/**
 * The reservation on its own (inside a transaction): locks `want` of the workflow's queued items
 * for this annotator — fewer only when the queue runs out — and returns them in queue order (see
 * claimCtes). One statement, repeated only when an image had to be left out (already in an open
 * batch, or taken twice): those rows stay locked, so no one else takes them either, and the next
 * statement tops the batch up. A reservation of the same image not yet committed is caught by the
 * unique index work_items_reserved_image_key when the batch is written.
 */
export async function claimItems(trx: Tx, spec: Omit<ClaimSpec, 'locked'>): Promise<QueuedItem[]> {
  const kept: QueuedItem[] = [];
  const images = new Set<string>();
  const locked: number[] = [];
  while (kept.length < spec.want) {
    const { rows } = await sql<QueuedItem & { openElsewhere: boolean }>`
      WITH ${claimCtes({ ...spec, want: spec.want - kept.length, locked })}
      SELECT id, image_key, source, open_elsewhere FROM claimed ORDER BY part, n`.execute(trx);
    if (!rows.length) break;
    for (const { openElsewhere, ...item } of rows) {
      locked.push(Number(item.id));
      if (!openElsewhere && !images.has(item.imageKey)) {
        images.add(item.imageKey);
        kept.push({ ...item, id: Number(item.id) });
      }
    }
  }
  return kept;
}

/** A batch to write: its gold tasks and where every task goes. */
export interface BatchPlan {
  workflowId: number;
  annotatorId: number;
  /** The workflow's overlap: above 1, items are seated instead of reserved (seatCtes). */
  overlap: number;
  /** Real items in key order (unshuffled workflow) rather than in the order they were taken. */
  keyOrder: boolean;
  gold: { id: number; s3ImageKey: string }[];
  layout: BatchLayout;
}

function planBatch(
  workflow: Pick<AssignWorkflow, 'id' | 'shuffleImages' | 'overlap'>,
  annotatorId: number,
  mix: { real: number; gold: number },
  gold: AssignContext['gold'],
  random: () => number,
): BatchPlan {
  const picked = pickGold(gold, mix.gold, random);
  return {
    workflowId: workflow.id,
    annotatorId,
    overlap: workflow.overlap,
    keyOrder: !workflow.shuffleImages,
    gold: picked,
    layout: batchLayout(mix.real, picked.length, workflow.shuffleImages, random),
  };
}

/**
 * The CTEs that write a batch from `fill (id, image_key, source, k)`, the real items numbered k =
 * 1.. in the order they fill plan.layout.realSlots: the assignment (only when `fill` has rows),
 * its items marked reserved, routed rejections pointed at it, its tasks in slot order. Ends in
 * `a`, the assignment row.
 */
function writeCtes(plan: BatchPlan) {
  const { layout } = plan;
  const total = layout.realSlots.length + layout.goldSlots.length;
  return sql`
    a AS (
      INSERT INTO assignments (workflow_id, annotator_id, task_count, gold_task_count, status, updated_at)
      SELECT ${plan.workflowId}, ${plan.annotatorId}, ${total}, ${layout.goldSlots.length}, 'pending', now()
       WHERE EXISTS (SELECT 1 FROM fill)
      RETURNING *),
    ${plan.overlap > 1 ? seatCtes(plan) : sql`items AS (
      UPDATE work_items SET status = 'reserved', assignment_id = a.id, updated_at = now()
        FROM a, fill WHERE work_items.id = fill.id)`},
    routed AS (
      -- A routed rejection's item has found its batch.
      UPDATE rejections SET routed_to_assignment_id = a.id
        FROM a, fill
       WHERE fill.source = 'rework' AND rejections.routed_work_item_id = fill.id AND rejections.routed_to_assignment_id IS NULL),
    tasks AS (
      INSERT INTO assignment_tasks (assignment_id, s3_image_key, work_item_id, gold_task_id, is_gold, position, updated_at)
      SELECT a.id, fill.image_key, fill.id, NULL, false, (${layout.realSlots}::int[])[fill.k], now() FROM a, fill
      UNION ALL
      SELECT a.id, g.key, NULL, g.id, true, g.slot, now()
        FROM a, unnest(${plan.gold.map((g) => g.s3ImageKey)}::text[], ${plan.gold.map((g) => g.id)}::int[], ${layout.goldSlots}::int[])
             AS g (key, id, slot))`;
}

/**
 * Overlap k > 1: each item gets the annotator's seat (the lowest free seat number) instead of the
 * batch; it stays queued while seats remain and is 'reserved' (no assignment_id: it is in several
 * batches) once the last one is taken. Counts read the statement's snapshot, taken before this
 * seat: the item rows are locked, so no other seat appeared since except through a stale read,
 * which the seats' primary key refuses.
 */
function seatCtes(plan: BatchPlan) {
  return sql`items AS (
      UPDATE work_items SET status = CASE WHEN (SELECT count(*) FROM work_item_seats s WHERE s.work_item_id = work_items.id) + 1 >= ${plan.overlap}
                                          THEN 'reserved' ELSE 'queued' END,
                            updated_at = now()
        FROM a, fill WHERE work_items.id = fill.id),
    seats AS (
      INSERT INTO work_item_seats (work_item_id, seat, annotator_id, assignment_id)
      SELECT fill.id,
             (SELECT min(n) FROM generate_series(1, ${plan.overlap}::int) AS n
               WHERE n NOT IN (SELECT seat FROM work_item_seats s WHERE s.work_item_id = fill.id)),
             a.annotator_id, a.id
        FROM a, fill)`;
}

/** The order real items fill their slots: as taken (shuffled workflow) or by key, byte order. */
const fillOrder = (plan: BatchPlan, taken: string) => (plan.keyOrder ? sql`image_key COLLATE "C"` : sql.raw(taken));

/** Writes a planned batch of `items` (in the order they were taken) in one statement. */
async function writeBatch(trx: Tx, plan: BatchPlan, items: QueuedItem[]): Promise<Assignment> {
  const { rows } = await sql<Assignment>`
    WITH fill AS (
      SELECT id, image_key, source, row_number() OVER (ORDER BY ${fillOrder(plan, 'taken')}) AS k
        FROM unnest(${items.map((i) => i.id)}::bigint[], ${items.map((i) => i.imageKey)}::text[], ${items.map((i) => i.source)}::text[])
             WITH ORDINALITY AS t (id, image_key, source, taken)),
    ${writeCtes(plan)}
    SELECT * FROM a`.execute(trx);
  return rows[0]!;
}

/**
 * The whole reservation as one statement: takes a full batch (`plan.layout.realSlots.length`
 * distinct items) and writes it — or, when the queue cannot fill it (or had to leave an image
 * out), writes nothing and returns null.
 */
async function reserveFull(db: Executor, plan: BatchPlan, claim: Omit<ClaimSpec, 'locked'>): Promise<Assignment | null> {
  const { rows } = await sql<Assignment>`
    WITH ${claimCtes({ ...claim, locked: [] })},
    usable AS (SELECT DISTINCT ON (image_key) part, n, id, image_key, source FROM claimed
                WHERE NOT open_elsewhere ORDER BY image_key, part, n),
    fill AS (SELECT id, image_key, source, row_number() OVER (ORDER BY ${fillOrder(plan, 'part, n')}) AS k FROM usable
              WHERE (SELECT count(*) FROM usable) = ${claim.want}),
    ${writeCtes(plan)}
    SELECT * FROM a`.execute(db);
  return rows[0] ?? null;
}

/** The workflow columns a reservation reads. */
type AssignWorkflow = Pick<
  Workflow,
  'id' | 'roleId' | 'labelingConfigId' | 'isActive' | 'maxProjects' | 'imagesPerProject' | 'goldStandardRate' | 'shuffleImages' | 'overlap'
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
 * Everything a reservation checks, in one statement, for each (workflow, annotator) pair, in the
 * pairs' order (after the annotators' locks on the general path, so the counts include every batch
 * committed before them). Gold exposure is counted over the annotator's own batches (index
 * assignment_tasks_gold_by_assignment_idx), not over every batch that ever held the gold task.
 */
async function readContexts(db: Executor, pairs: readonly { workflowId: number; annotatorId: number }[]): Promise<AssignContext[]> {
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
           w.gold_standard_rate, w.shuffle_images, w.overlap,
           a.status AS annotator_status, a.role_id AS annotator_role_id,
           (SELECT count(*)::int FROM assignments
             WHERE annotator_id = p.annotator_id AND workflow_id = p.workflow_id
               AND status IN ('pending', 'in_progress', 'completed')) AS counted,
           EXISTS (SELECT 1 FROM assignments WHERE annotator_id = p.annotator_id AND status IN ('pending', 'in_progress')) AS has_open,
           (SELECT json_agg(json_build_object('id', g.id, 's3ImageKey', g.s3_image_key, 'timesSeen', coalesce(seen.n, 0)) ORDER BY g.id)
              FROM gold_tasks g
              LEFT JOIN (SELECT t.gold_task_id, count(*) AS n
                           FROM assignments x JOIN assignment_tasks t ON t.assignment_id = x.id AND t.gold_task_id IS NOT NULL
                          WHERE x.annotator_id = p.annotator_id
                          GROUP BY t.gold_task_id) AS seen ON seen.gold_task_id = g.id
             WHERE g.labeling_config_id = w.labeling_config_id) AS gold
      FROM unnest(${pairs.map((x) => x.workflowId)}::int[], ${pairs.map((x) => x.annotatorId)}::int[]) WITH ORDINALITY AS p (workflow_id, annotator_id, r)
      LEFT JOIN workflows w ON w.id = p.workflow_id
      LEFT JOIN annotators a ON a.id = p.annotator_id
     ORDER BY p.r`.execute(db);
  return rows.map(({ annotatorStatus, annotatorRoleId, counted, hasOpen, gold, ...workflow }) => ({
    workflow: workflow.id === null ? null : (workflow as AssignWorkflow),
    annotator: annotatorStatus === null ? null : { status: annotatorStatus, roleId: annotatorRoleId },
    counted,
    hasOpen,
    gold: gold ?? [],
  }));
}

const readContext = async (db: Executor, workflowId: number, annotatorId: number) => (await readContexts(db, [{ workflowId, annotatorId }]))[0]!;

type AssignFailed = Extract<AssignResult, { ok: false }>;

function fail(reason: AssignFailure, message: string): AssignFailed {
  return { ok: false, reason, message };
}

/** The checks that need no lock (all but maxProjects and auto's one open batch). */
function checkContext({ workflow, annotator }: AssignContext, annotatorId: number): AssignFailed | null {
  if (!workflow) return fail('workflow_missing', 'Workflow not found');
  if (!annotator) return fail('annotator_missing', `Annotator ${annotatorId} not found`);
  if (annotator.status !== 'active') return fail('annotator_not_active', `Annotator ${annotatorId} is not active (status ${annotator.status})`);
  if (workflow.roleId !== null && annotator.roleId !== workflow.roleId) {
    return fail('wrong_role', `Annotator ${annotatorId} does not have the workflow's role (${workflow.roleId})`);
  }
  if (!workflow.isActive) return fail('workflow_inactive', 'Workflow is paused (isActive is false)');
  if (workflow.labelingConfigId === null) return fail('no_labeling_config', 'Workflow has no labeling config');
  return null;
}

/** Every check, under the annotator's lock: checkContext, then maxProjects and auto's one open batch. */
function checkLocked(ctx: AssignContext, annotatorId: number, auto: boolean): AssignFailed | null {
  const failure = checkContext(ctx, annotatorId);
  if (failure) return failure;
  const { maxProjects } = ctx.workflow!;
  if (maxProjects !== null && ctx.counted >= maxProjects) {
    return fail('max_projects', `Annotator ${annotatorId} already has ${ctx.counted} batches of this workflow (maxProjects ${maxProjects})`);
  }
  // Auto-assignment gives an annotator one open batch at a time, whatever the workflow.
  if (auto && ctx.hasOpen) return fail('max_projects', `Annotator ${annotatorId} already has an open batch`);
  return null;
}

/** A full batch's counts: lock only as many items as it uses (a locked item others skip must be one this batch keeps). */
const fullBatch = (workflow: AssignWorkflow, goldAvailable: number) =>
  mixGold({ batchSize: workflow.imagesPerProject, rate: workflow.goldStandardRate, realAvailable: workflow.imagesPerProject, goldAvailable });

/**
 * The fast path, for a reservation no per-annotator rule constrains (no maxProjects, not auto):
 * one read, then the whole reservation in one statement, no explicit transaction. Returns null
 * when the general path must decide (a rule to hold under the annotator's lock, or a batch the
 * queue cannot fill as planned).
 */
async function reserveFast(db: Db, workflowId: number, annotatorId: number, seed: number): Promise<AssignResult | null> {
  const ctx = await readContext(db, workflowId, annotatorId);
  const failure = checkContext(ctx, annotatorId);
  if (failure) return failure;
  const workflow = ctx.workflow!;
  if (workflow.maxProjects !== null) return null;
  const random = seededRandom(seed);
  const mix = fullBatch(workflow, ctx.gold.length);
  const start = workflow.shuffleImages ? random() : 0;
  const plan = planBatch(workflow, annotatorId, mix, ctx.gold, random);
  const assignment = await reserveFull(db, plan, { workflow, annotatorId, want: mix.real, start });
  return assignment && { ok: true, assignment };
}

/**
 * The general path: under the annotator's lock, every check, then the whole reservation in one
 * statement (reserveFull), or when that cannot fill the batch, the reservation and the write.
 */
async function reserveLocked(trx: Tx, workflowId: number, annotatorId: number, opts: { auto: boolean; seed: number }): Promise<AssignResult> {
  await sql`SELECT pg_advisory_xact_lock(${ASSIGN_LOCK_CLASS}, ${annotatorId})`.execute(trx);
  const ctx = await readContext(trx, workflowId, annotatorId);
  const failure = checkLocked(ctx, annotatorId, opts.auto);
  if (failure) return failure;
  const workflow = ctx.workflow!;

  // A full batch in one statement, as on the fast path: its items are locked only for that
  // statement and the commit, not across round trips.
  const full = fullBatch(workflow, ctx.gold.length);
  let random = seededRandom(opts.seed);
  const start = workflow.shuffleImages ? random() : 0;
  const assignment = await reserveFull(trx, planBatch(workflow, annotatorId, full, ctx.gold, random), { workflow, annotatorId, want: full.real, start });
  if (assignment) return { ok: true, assignment };

  // The queue cannot fill it (or an image had to be left out): take what there is, and plan the
  // batch afresh from the same seed.
  random = seededRandom(opts.seed);
  if (workflow.shuffleImages) random();
  const taken = await claimItems(trx, { workflow, annotatorId, want: full.real, start });
  if (!taken.length) return fail('no_items', 'No images available for assignment');
  // A short queue shrinks the batch, and its gold is recounted for the smaller batch.
  const mix = mixGold({ batchSize: workflow.imagesPerProject, rate: workflow.goldStandardRate, realAvailable: taken.length, goldAvailable: ctx.gold.length });
  const plan = planBatch(workflow, annotatorId, mix, ctx.gold, random);
  return { ok: true, assignment: await writeBatch(trx, plan, taken.slice(0, mix.real)) };
}

/** One assignment request. `auto`: the reconciler's (one open batch per annotator); `seed`: tests' fixed randomness. */
export interface AssignInput {
  workflowId: number;
  annotatorId: number;
  auto?: boolean;
  seed?: number;
}

/**
 * Groups served side by side and the most requests in one group (group-queue.ts). Four workers,
 * twice the database's two cores: while one group waits (on the network, the commit, or a core
 * other processes hold) another runs. Measured with 50 at once on the shared machine (load 9–11,
 * 2026-12-01): 2 workers p99 0.80–0.92 s, 4 workers 0.58–0.68 s, 8 workers 0.47–0.55 s but ~10 %
 * more database CPU per assignment than 4 (7–9 ms, against 15–16 ms for 50 separate
 * statements). 13 = 50 / 4 rounded up:
 * a group holds its items and annotators' locks for about 13 reservations' time.
 */
const ASSIGN_WORKERS = 4;
const ASSIGN_MAX_GROUP = 13;

const queues = new WeakMap<Db, GroupQueue<AssignInput, AssignResult>>();

/**
 * Reserves one batch. Requests made together, or while others are being served, wait in a
 * per-pool queue and are served in groups (assignGroup: one transaction, one statement for the
 * batches, one commit; four groups at a time), so that 50 concurrent requests cost about what 50
 * reservations in a row cost (~8 ms of database CPU each), not 50 transactions competing for the
 * cores and the commit (~16 ms each). A request alone is served at once (assignOne). Never throws
 * for business reasons: see AssignResult.
 */
export function assignBatch(db: Db, input: AssignInput): Promise<AssignResult> {
  let queue = queues.get(db);
  if (!queue) {
    queue = groupQueue({ workers: ASSIGN_WORKERS, maxGroup: ASSIGN_MAX_GROUP, runGroup: (inputs) => assignGroup(db, inputs), runOne: (i) => assignOne(db, i) });
    queues.set(db, queue);
  }
  return queue.submit(input);
}

/**
 * A group of requests in one transaction, one commit for all. First every annotator's lock, in
 * ascending order in one statement (two groups never wait for each other in a cycle), then every
 * request's checks in one read (readContexts), then the batches of the first request of each
 * annotator for the group's workflow (overlap 1) in one statement (reserveGroup). The others — a
 * second request of the same annotator, whose checks must count the first one's batch, another
 * workflow, overlap above 1, a batch the group statement could not fill — are served one by one
 * after it in the same transaction (reserveLocked; the lock is already held). Only for two or more
 * requests: the queue serves a request alone by assignOne. Throws GroupCommitUnknown when the
 * commit may have happened (connection lost); any other error means nothing was written (the group
 * queue then serves each alone).
 */
async function assignGroup(db: Db, inputs: AssignInput[]): Promise<AssignResult[]> {
  const seeds = inputs.map((input) => input.seed ?? randomInt(2 ** 31));
  const results: AssignResult[] = [];
  let committing = false;
  try {
    await db.transaction().execute(async (trx) => {
      const annotators = [...new Set(inputs.map((i) => i.annotatorId))].sort((x, y) => x - y);
      await sql`SELECT pg_advisory_xact_lock(${ASSIGN_LOCK_CLASS}, a) FROM unnest(${annotators}::int[]) AS a`.execute(trx);
      const contexts = await readContexts(trx, inputs);
      const grouped: { i: number; plan: BatchPlan }[] = [];
      const later: number[] = [];
      let group: { workflow: AssignWorkflow; start: number } | null = null;
      const seen = new Set<number>();
      for (const [i, input] of inputs.entries()) {
        if (seen.has(input.annotatorId)) {
          later.push(i);
          continue;
        }
        seen.add(input.annotatorId);
        const ctx = contexts[i]!;
        const failure = checkLocked(ctx, input.annotatorId, !!input.auto);
        if (failure) {
          results[i] = failure;
          continue;
        }
        const workflow = ctx.workflow!;
        // As reserveLocked plans a full batch from the request's seed.
        const full = fullBatch(workflow, ctx.gold.length);
        if (workflow.overlap > 1 || full.real < 1 || (group && group.workflow.id !== workflow.id)) {
          later.push(i);
          continue;
        }
        const random = seededRandom(seeds[i]!);
        const start = workflow.shuffleImages ? random() : 0;
        group ??= { workflow, start };
        grouped.push({ i, plan: planBatch(workflow, input.annotatorId, full, ctx.gold, random) });
      }
      if (group) {
        const { workflow, start } = group;
        const written = await reserveGroup(trx, workflow, start, grouped.map((g) => g.plan));
        for (const { i, plan } of grouped) {
          const assignment = written.get(plan.annotatorId);
          if (assignment) results[i] = { ok: true, assignment };
          else later.push(i);
        }
      }
      for (const i of later.sort((x, y) => x - y)) {
        const input = inputs[i]!;
        results[i] = await reserveLocked(trx, input.workflowId, input.annotatorId, { auto: !!input.auto, seed: seeds[i]! });
      }
      committing = true;
    });
  } catch (err) {
    // An error the server reported (a code) rolled the transaction back; without one, the
    // connection failed and the commit may have happened.
    if (committing && pgCode(err) === undefined) throw new GroupCommitUnknown(err);
    throw err;
  }
  return results;
}

/**
 * One request on its own. Without maxProjects and outside auto-assignment, the fast path: one
 * read, then the whole reservation in one statement. Otherwise (or when the queue cannot fill the
 * batch as planned) one short transaction under the annotator's lock: the read, the reservation
 * (claimItems), the write. Retried when a concurrent reservation of the same image wins the unique
 * index.
 */
async function assignOne(db: Db, input: AssignInput): Promise<AssignResult> {
  for (let attempt = 1; ; attempt++) {
    const seed = input.seed ?? randomInt(2 ** 31);
    try {
      // One pool connection for both statements: with a busy pool, the reservation does not queue
      // for a connection a second time.
      const fast = input.auto ? null : await db.connection().execute((conn) => reserveFast(conn, input.workflowId, input.annotatorId, seed));
      if (fast) return fast;
      return await db.transaction().execute((trx) => reserveLocked(trx, input.workflowId, input.annotatorId, { auto: !!input.auto, seed }));
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
    // Overlap: an item this annotator already holds a seat on is not work for them.
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('workItemSeats as s').select('s.seat').whereRef('s.workItemId', '=', 'workItems.id').where('s.annotatorId', '=', annotatorId))),
    )
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
