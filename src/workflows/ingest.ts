/**
 * Ingestion of annotation events, from a webhook or found by reconciliation: one short
 * transaction that records the fact and updates the task it is about. No I/O besides the
 * database: exporting, chaining and review effects happen in the reconciler.
 *
 * Idempotency. Every event is a row in annotation_events, whose unique key is (annotator, Label
 * Studio annotation id, event type, annotation updated_at). An ANNOTATION_CREATED is keyed with no
 * timestamp (an annotation is created once, so a late webhook and a reconcile-found creation are
 * the same event); ANNOTATION_UPDATED is keyed by the annotation's updated_at; a deletion by the
 * annotation id alone. A duplicate inserts nothing and changes nothing.
 *
 * Order. A task keeps the updated_at of the annotation applied last; an older event (a CREATED
 * arriving after the UPDATED) is recorded but not applied. A deleted annotation leaves a
 * tombstone (its 'annotation_deleted' event): events about it that arrive later are not applied.
 *
 * What applies: CREATED/UPDATED set the task's result, lead time and status 'annotated' (a skipped
 * task, was_cancelled, counts as done with skipped = true) and the batch's completed count;
 * ANNOTATIONS_DELETED reopens the task and drops its gold result. Events about batches that are
 * no longer in progress are recorded but change nothing. Gold tasks are scored at once (a skipped
 * gold task scores 0). A review_decision in the result is recorded on the task until the
 * reconciler applies it (review.ts); once applied it is final.
 *
 * Speed. CREATED/UPDATED about non-gold tasks — nearly every webhook — take a fast path with the
 * same rules in the database (labelfleet_ingest_annotation, migrations/0003_batches.sql): one
 * round trip, and under load the events that arrive while a call runs go together in the next one
 * (labelfleet_ingest_annotations, one transaction). Gold tasks and deletions take the
 * transactional path below. Every path takes its locks in one order (task; assignment; quality;
 * annotator; event row and hourly rollup), so concurrent ingestions never deadlock.
 */
import { sql } from 'kysely';
import type { Db, Tx } from '../db/index.ts';
import { scoreGold } from '../domain/gold-scoring.ts';
import { parseReviewDecision } from '../domain/rejection-routing.ts';
import { PG, pgCode } from '../errors.ts';
import { evaluateQuality } from './quality.ts';

export type IngestAction = 'ANNOTATION_CREATED' | 'ANNOTATION_UPDATED' | 'ANNOTATIONS_DELETED';

export interface IngestAnnotation {
  id: number;
  result: unknown[];
  /** ISO timestamp as Label Studio sent it (microseconds kept). */
  updatedAt: string | null;
  leadTime: number | null;
  wasCancelled: boolean;
}

export interface IngestEvent {
  annotatorId: number;
  action: IngestAction;
  source: 'webhook' | 'reconcile';
  lsProjectId: number | null;
  lsTaskId: number | null;
  annotation?: IngestAnnotation;
  /** ANNOTATIONS_DELETED: the deleted annotations' ids. */
  deletedIds?: number[];
}

export interface IngestOutcome {
  /** Event rows inserted (0: a duplicate). */
  recorded: number;
  /** Tasks whose state changed. */
  applied: number;
  /** Batches in which every task is now annotated (ready for export). */
  readyAssignmentIds: number[];
  /** Whether a review decision or a gold result was recorded. */
  reviewRecorded: boolean;
  goldScored: boolean;
}

const eventType = (action: IngestAction) =>
  action === 'ANNOTATION_CREATED' ? 'annotation_created' : action === 'ANNOTATION_UPDATED' ? 'annotation_updated' : 'annotation_deleted';

const timeSpentMs = (leadTime: number | null) =>
  leadTime !== null && Number.isFinite(leadTime) && leadTime >= 0 ? Math.min(2_147_483_647, Math.round(leadTime * 1000)) : null;

interface TaskRow {
  id: number;
  assignmentId: number;
  status: 'open' | 'annotated';
  isGold: boolean;
  goldTaskId: number | null;
  reviewAppliedAt: Date | null;
  assignmentStatus: string;
  taskCount: number;
  expectedLabels: unknown;
}

async function findTask(trx: Tx, ev: IngestEvent, by: { lsTaskId?: number; lsAnnotationId?: number }): Promise<TaskRow | undefined> {
  let q = trx
    .selectFrom('assignmentTasks as t')
    .innerJoin('assignments as a', 'a.id', 't.assignmentId')
    .leftJoin('goldTasks as g', 'g.id', 't.goldTaskId')
    .select([
      't.id',
      't.assignmentId',
      't.status',
      't.isGold',
      't.goldTaskId',
      't.reviewAppliedAt',
      'a.status as assignmentStatus',
      'a.taskCount',
      'g.expectedLabels',
    ])
    .where('a.annotatorId', '=', ev.annotatorId);
  if (by.lsTaskId !== undefined) q = q.where('t.lsTaskId', '=', by.lsTaskId);
  if (by.lsAnnotationId !== undefined) q = q.where('t.lsAnnotationId', '=', by.lsAnnotationId);
  if (ev.lsProjectId !== null) q = q.where('a.lsProjectId', '=', ev.lsProjectId);
  const row = await q
    .orderBy(sql`(a.status = 'in_progress')`, 'desc')
    .orderBy('a.id', 'desc')
    .limit(1)
    .forUpdate('t')
    .executeTakeFirst();
  return row as TaskRow | undefined;
}

interface EventKey {
  type: string;
  lsAnnotationId: number;
  /** null for CREATED and deletions (see the module comment). */
  updatedAt: string | null;
}

async function eventRecorded(trx: Tx, annotatorId: number, key: EventKey): Promise<boolean> {
  const { rows } = await sql<{ id: number }>`
    SELECT id FROM annotation_events
     WHERE annotator_id = ${annotatorId} AND ls_annotation_id = ${key.lsAnnotationId} AND event_type = ${key.type}
       AND coalesce(annotation_updated_at, 'epoch'::timestamptz) = coalesce(${key.updatedAt}::timestamptz, 'epoch'::timestamptz)
     LIMIT 1`.execute(trx);
  return rows.length > 0;
}

/** A delivery of the same event committed between our check and our insert: retry, as a duplicate. */
class RecordedConcurrently extends Error {}

async function insertEvent(
  trx: Tx,
  ev: IngestEvent,
  key: EventKey,
  row: { assignmentId: number | null; lsTaskId: number | null; leadTime: number | null },
): Promise<void> {
  const res = await sql<{ id: number }>`
    INSERT INTO annotation_events
      (annotator_id, assignment_id, event_type, ls_project_id, ls_task_id, ls_annotation_id, annotation_updated_at, time_spent_ms, source)
    VALUES (${ev.annotatorId}, ${row.assignmentId}, ${key.type}, ${ev.lsProjectId}, ${row.lsTaskId}, ${key.lsAnnotationId},
            ${key.updatedAt}::timestamptz, ${timeSpentMs(row.leadTime)}, ${ev.source})
    ON CONFLICT DO NOTHING
    RETURNING id`.execute(trx);
  if (!res.rows.length) throw new RecordedConcurrently();
}

async function touchAnnotator(trx: Tx, annotatorId: number, at: string | null) {
  await sql`
    UPDATE annotators SET last_active_at = GREATEST(coalesce(last_active_at, '-infinity'::timestamptz), coalesce(${at}::timestamptz, now()))
     WHERE id = ${annotatorId}
       AND (last_active_at IS NULL OR last_active_at < coalesce(${at}::timestamptz, now()))`.execute(trx);
}

async function readyIfComplete(trx: Tx, assignmentId: number, out: IngestOutcome) {
  const a = await trx
    .selectFrom('assignments')
    .select(['completedCount', 'taskCount', 'status'])
    .where('id', '=', assignmentId)
    .executeTakeFirst();
  if (a && a.status === 'in_progress' && a.taskCount > 0 && a.completedCount >= a.taskCount) out.readyAssignmentIds.push(assignmentId);
}

/*
 * Lock order, as in labelfleet_ingest_annotation: the task, then (applying) the assignment and the
 * gold quality row, then the annotator, then the event row and its hourly rollup — the same in
 * every path, so concurrent ingestions never deadlock.
 */
async function applyAnnotation(trx: Tx, ev: IngestEvent, ann: IngestAnnotation, out: IngestOutcome) {
  const task = ev.lsTaskId !== null ? await findTask(trx, ev, { lsTaskId: ev.lsTaskId }) : undefined;
  // CREATED is keyed without a timestamp: an annotation is created once.
  const key = { type: eventType(ev.action), lsAnnotationId: ann.id, updatedAt: ev.action === 'ANNOTATION_CREATED' ? null : ann.updatedAt };
  if (await eventRecorded(trx, ev.annotatorId, key)) return;
  out.recorded++;
  await applyRecorded(trx, ev, ann, task, out);
  await touchAnnotator(trx, ev.annotatorId, ann.updatedAt);
  await insertEvent(trx, ev, key, { assignmentId: task?.assignmentId ?? null, lsTaskId: ev.lsTaskId, leadTime: ann.leadTime });
}

async function applyRecorded(trx: Tx, ev: IngestEvent, ann: IngestAnnotation, task: TaskRow | undefined, out: IngestOutcome) {
  if (!task || task.assignmentStatus !== 'in_progress') return;

  const tombstone = await trx
    .selectFrom('annotationEvents')
    .select('id')
    .where('annotatorId', '=', ev.annotatorId)
    .where('lsAnnotationId', '=', ann.id)
    .where('eventType', '=', 'annotation_deleted')
    .limit(1)
    .executeTakeFirst();
  if (tombstone) return;

  const review = task.isGold ? null : parseReviewDecision(ann.result);
  const reviewFields =
    task.reviewAppliedAt === null ? { reviewDecision: review?.decision ?? null, reviewReason: review?.reason ?? null } : {};
  const updated = await trx
    .updateTable('assignmentTasks')
    .set({
      result: JSON.stringify(ann.result),
      lsAnnotationId: ann.id,
      lsAnnotationUpdatedAt: ann.updatedAt,
      leadTimeSeconds: ann.leadTime,
      skipped: ann.wasCancelled,
      status: 'annotated',
      annotatedAt: sql`coalesce(annotated_at, now())`,
      updatedAt: new Date(),
      ...reviewFields,
    })
    .where('id', '=', task.id)
    .where((eb) =>
      eb.or([eb('lsAnnotationUpdatedAt', 'is', null), eb('lsAnnotationUpdatedAt', '<=', sql<Date>`${ann.updatedAt}::timestamptz`)]),
    )
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) return;
  out.applied++;
  if (review && task.reviewAppliedAt === null) out.reviewRecorded = true;

  if (task.status === 'open') {
    await trx
      .updateTable('assignments')
      .set({ completedCount: sql`completed_count + 1`, updatedAt: new Date() })
      .where('id', '=', task.assignmentId)
      .execute();
    await readyIfComplete(trx, task.assignmentId, out);
  }

  if (task.isGold && task.expectedLabels) {
    const scored = ann.wasCancelled ? { score: 0, controls: [], skipped: true } : scoreGold(task.expectedLabels, ann.result);
    const details = JSON.stringify({ ...scored, lsAnnotationId: ann.id });
    await trx
      .insertInto('goldResults')
      .values({
        assignmentTaskId: task.id,
        assignmentId: task.assignmentId,
        annotatorId: ev.annotatorId,
        goldTaskId: task.goldTaskId,
        score: scored.score,
        details,
      })
      .onConflict((oc) => oc.column('assignmentTaskId').doUpdateSet({ score: scored.score, details, evaluatedAt: new Date() }))
      .execute();
    out.goldScored = true;
    await evaluateQuality(trx, ev.annotatorId);
  }
}

async function applyDeletion(trx: Tx, ev: IngestEvent, annotationId: number, out: IngestOutcome) {
  const task = await findTask(trx, ev, { lsAnnotationId: annotationId });
  const key = { type: 'annotation_deleted', lsAnnotationId: annotationId, updatedAt: null };
  if (await eventRecorded(trx, ev.annotatorId, key)) return;
  out.recorded++;
  if (task && task.assignmentStatus === 'in_progress' && task.status === 'annotated') await reopen(trx, ev, task, out);
  await touchAnnotator(trx, ev.annotatorId, null);
  await insertEvent(trx, ev, key, { assignmentId: task?.assignmentId ?? null, lsTaskId: ev.lsTaskId, leadTime: null });
}

async function reopen(trx: Tx, ev: IngestEvent, task: TaskRow, out: IngestOutcome) {
  await trx
    .updateTable('assignmentTasks')
    .set({
      status: 'open',
      result: null,
      lsAnnotationId: null,
      leadTimeSeconds: null,
      skipped: false,
      annotatedAt: null,
      updatedAt: new Date(),
      ...(task.reviewAppliedAt === null ? { reviewDecision: null, reviewReason: null } : {}),
    })
    .where('id', '=', task.id)
    .execute();
  await trx
    .updateTable('assignments')
    .set({ completedCount: sql`greatest(completed_count - 1, 0)`, updatedAt: new Date() })
    .where('id', '=', task.assignmentId)
    .execute();
  if (task.isGold) {
    const removed = await trx.deleteFrom('goldResults').where('assignmentTaskId', '=', task.id).executeTakeFirst();
    if (Number(removed.numDeletedRows) > 0) {
      out.goldScored = true;
      await evaluateQuality(trx, ev.annotatorId);
    }
  }
  out.applied++;
}

interface FastRow {
  outcome: string;
  batchId: number | null;
  ready: boolean;
  reviewRecorded: boolean;
}

interface FastArgs {
  annotator: number;
  event_type: string;
  source: string;
  project: number | null;
  ls_task: number;
  annotation: number;
  result: unknown[];
  updated_at: string | null;
  time_spent_ms: number | null;
  lead_time: number | null;
  was_cancelled: boolean;
  review_decision: string | null;
  review_reason: string | null;
}

function fastArgs(ev: IngestEvent, ann: IngestAnnotation): FastArgs {
  const review = parseReviewDecision(ann.result);
  return {
    annotator: ev.annotatorId,
    event_type: eventType(ev.action),
    source: ev.source,
    project: ev.lsProjectId,
    ls_task: ev.lsTaskId!,
    annotation: ann.id,
    result: ann.result,
    updated_at: ann.updatedAt,
    time_spent_ms: timeSpentMs(ann.leadTime),
    lead_time: ann.leadTime,
    was_cancelled: ann.wasCancelled,
    review_decision: review?.decision ?? null,
    review_reason: review?.reason ?? null,
  };
}

async function ingestOne(db: Db, a: FastArgs, retried = false): Promise<FastRow> {
  try {
    return await ingestOnce(db, a);
  } catch (err) {
    // The same event recorded concurrently (no task of ours to serialise on): now a duplicate.
    if (pgCode(err) === PG.uniqueViolation && !retried) return ingestOne(db, a, true);
    throw err;
  }
}

async function ingestOnce(db: Db, a: FastArgs): Promise<FastRow> {
  const { rows } = await sql<FastRow>`
    SELECT * FROM labelfleet_ingest_annotation(
      ${a.annotator}, ${a.event_type}, ${a.source}, ${a.project}, ${a.ls_task}, ${a.annotation},
      ${JSON.stringify(a.result)}::jsonb, ${a.updated_at}::timestamptz, ${a.time_spent_ms}, ${a.lead_time},
      ${a.was_cancelled}, ${a.review_decision}, ${a.review_reason})`.execute(db);
  return rows[0]!;
}

/**
 * Group ingestion for the fast path: an event is sent at once when nothing is in flight; events
 * that arrive meanwhile go together in the next call (labelfleet_ingest_annotations, one
 * transaction), at most MAX_GROUP per call and MAX_IN_FLIGHT calls at a time. No added latency at
 * low load, far fewer round trips and commits at high load. If a group fails as a whole (a
 * deadlock, a bad value), its events are retried one by one, so one event's failure stays its own.
 */
class FastIngest {
  static readonly MAX_GROUP = 256;
  static readonly MAX_IN_FLIGHT = 2;
  #queue: { args: FastArgs; resolve: (r: FastRow) => void; reject: (e: unknown) => void }[] = [];
  #inFlight = 0;

  constructor(private readonly db: Db) {}

  submit(args: FastArgs): Promise<FastRow> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ args, resolve, reject });
      this.#pump();
    });
  }

  #pump() {
    while (this.#inFlight < FastIngest.MAX_IN_FLIGHT && this.#queue.length) {
      const group = this.#queue.splice(0, FastIngest.MAX_GROUP);
      this.#inFlight++;
      void this.#flush(group).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #flush(group: { args: FastArgs; resolve: (r: FastRow) => void; reject: (e: unknown) => void }[]) {
    if (group.length === 1) {
      const [one] = group;
      await ingestOne(this.db, one!.args).then(one!.resolve, one!.reject);
      return;
    }
    try {
      const payload = JSON.stringify(group.map((g, i) => ({ i, ...g.args })));
      const { rows } = await sql<FastRow & { idx: number }>`SELECT * FROM labelfleet_ingest_annotations(${payload}::jsonb)`.execute(this.db);
      const byIdx = new Map(rows.map((r) => [r.idx, r]));
      group.forEach((g, i) => {
        const r = byIdx.get(i);
        if (r) g.resolve(r);
        else g.reject(new Error('event missing from the group result'));
      });
    } catch {
      for (const g of group) await ingestOne(this.db, g.args).then(g.resolve, g.reject);
    }
  }
}

const fastIngest = new WeakMap<Db, FastIngest>();

/**
 * The fast path of CREATED/UPDATED for non-gold tasks: the same rules in the database
 * (labelfleet_ingest_annotation, migrations/0003_batches.sql), grouped under load. false when the
 * task is gold (nothing was done: the transactional path scores it).
 */
async function ingestFast(db: Db, ev: IngestEvent, ann: IngestAnnotation, out: IngestOutcome): Promise<boolean> {
  let q = fastIngest.get(db);
  if (!q) fastIngest.set(db, (q = new FastIngest(db)));
  const r = await q.submit(fastArgs(ev, ann));
  if (r.outcome === 'gold') return false;
  if (r.outcome !== 'duplicate') out.recorded++;
  if (r.outcome === 'applied') out.applied++;
  if (r.ready && r.batchId !== null) out.readyAssignmentIds.push(r.batchId);
  if (r.reviewRecorded) out.reviewRecorded = true;
  return true;
}

/** Records one event and applies it, in one transaction. */
export async function ingestEvent(db: Db, ev: IngestEvent): Promise<IngestOutcome> {
  const out: IngestOutcome = { recorded: 0, applied: 0, readyAssignmentIds: [], reviewRecorded: false, goldScored: false };
  if (ev.action !== 'ANNOTATIONS_DELETED' && ev.annotation && ev.lsTaskId !== null && (await ingestFast(db, ev, ev.annotation, out))) {
    return out;
  }
  for (let attempt = 1; ; attempt++) {
    const tx: IngestOutcome = { ...out, readyAssignmentIds: [...out.readyAssignmentIds] };
    try {
      await db.transaction().execute(async (trx) => {
        if (ev.action === 'ANNOTATIONS_DELETED') {
          for (const id of [...new Set(ev.deletedIds ?? [])].sort((a, b) => a - b)) await applyDeletion(trx, ev, id, tx);
        } else if (ev.annotation) {
          await applyAnnotation(trx, ev, ev.annotation, tx);
        }
      });
      return tx;
    } catch (err) {
      const concurrent = err instanceof RecordedConcurrently || pgCode(err) === PG.uniqueViolation;
      if (!concurrent || attempt >= 3) throw err;
    }
  }
}
