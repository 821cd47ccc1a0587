/**
 * Ingestion of annotation events, from a webhook or found by reconciliation. The rules — what an
 * event changes, idempotency, order, tombstones, lock order — have one implementation: the SQL
 * functions labelfleet_ingest_annotations (migrations/0025_ingestion_set_based.sql, set-based:
 * a fixed number of statements per call whatever the number of events) and
 * labelfleet_delete_annotations (migrations/0018_ingestion.sql), whose headers state them. This
 * module only feeds them:
 *
 * - CREATED/UPDATED: a group of events in one call (applyGroup: webhooks, from the inbox,
 *   workflows/inbox.ts) or one event alone (ingestEvent: reconciliation). Gold tasks come back
 *   untouched from that call and are then applied in a second call (p_gold) and scored together
 *   (domain/gold-scoring.ts, quality.ts: each annotator's quality checked once), in the same
 *   transaction.
 * - ANNOTATIONS_DELETED: one call for all ids (set-based), plus the quality re-evaluation when a
 *   gold result was dropped, in one transaction.
 *
 * No I/O besides the database: exporting, chaining and review effects happen in the reconciler.
 */
import { CompiledQuery, sql } from 'kysely';
import type { Db, Executor, Tx } from '../db/index.ts';
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
  /** Whether a review decision was recorded. */
  reviewRecorded: boolean;
}

const eventType = (action: IngestAction) =>
  action === 'ANNOTATION_CREATED' ? 'annotation_created' : action === 'ANNOTATION_UPDATED' ? 'annotation_updated' : 'annotation_deleted';

const timeSpentMs = (leadTime: number | null) =>
  leadTime !== null && Number.isFinite(leadTime) && leadTime >= 0 ? Math.min(2_147_483_647, Math.round(leadTime * 1000)) : null;

/** One event's row from labelfleet_ingest_annotations. */
export interface FastRow {
  outcome: 'gold' | 'duplicate' | 'recorded' | 'applied';
  batchId: number | null;
  ready: boolean;
  reviewRecorded: boolean;
  taskId: number | null;
}

/** One CREATED/UPDATED event as labelfleet_ingest_annotations takes it (and the inbox stores it). */
export interface FastArgs {
  annotator: number;
  event_type: string;
  source: string;
  project: number | null;
  ls_task: number;
  /** null only when settling a task open again. */
  annotation: number | null;
  result: unknown[] | null;
  updated_at: string | null;
  time_spent_ms: number | null;
  lead_time: number | null;
  was_cancelled: boolean;
  review_decision: string | null;
  review_reason: string | null;
}

/** The function's event object for `ev` (CREATED/UPDATED, with its annotation and task id). */
export function fastArgs(ev: IngestEvent, ann: IngestAnnotation): FastArgs {
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

/** The same event recorded concurrently about no task of ours (the function raises 23505): retry once, as a duplicate. */
async function retryOnConcurrentRecord<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (pgCode(err) !== PG.uniqueViolation) throw err;
    return run();
  }
}

/*
 * The hot path's one statement, its text fixed: building it with Kysely's sql template on every
 * event cost more CPU than the rest of a webhook (issue 15). Executed through Kysely (so result
 * names are camelCased and PGlite works too); a single event is a group of one.
 */
const INGEST = `SELECT * FROM labelfleet_ingest_annotations($1::jsonb, $2, $3)`;

/**
 * labelfleet_ingest_annotations for `group`, one row per event (by index). `gold`: apply gold
 * tasks too (the caller scores them); `settle`: set the tasks to the given state (compare.ts).
 */
async function ingestGroup(db: Executor, group: FastArgs[], gold: boolean, settle = false): Promise<(FastRow & { idx: number })[]> {
  const payload = JSON.stringify(group.map((args, i) => ({ i, ...args })));
  const { rows } = await db.executeQuery<FastRow & { idx: number }>(CompiledQuery.raw(INGEST, [payload, gold, settle]));
  return rows;
}

/** One event alone. */
async function ingestOnce(db: Executor, a: FastArgs, gold: boolean, settle = false): Promise<FastRow> {
  const rows = await ingestGroup(db, [a], gold, settle);
  if (rows.length !== 1) throw new Error('event missing from the ingestion result');
  return rows[0]!;
}

/** A gold task to score: against `ann`, or its score dropped when `ann` is null (the task is open again). */
export interface GoldScoring {
  taskId: number;
  annotatorId: number;
  ann: IngestAnnotation | null;
}

/**
 * Scores gold tasks (domain/gold-scoring.ts) — a task named twice takes its last entry — and
 * re-evaluates each annotator's quality once (quality.ts), in `trx`, with a fixed number of
 * statements besides the quality checks. Tasks that are not gold tasks with expected labels are
 * left alone. Returns the number of tasks scored or unscored.
 */
export async function scoreGoldTasks(trx: Tx, items: GoldScoring[]): Promise<number> {
  const last = new Map(items.map((g) => [g.taskId, g]));
  if (!last.size) return 0;
  const tasks = await trx
    .selectFrom('assignmentTasks as t')
    .innerJoin('goldTasks as g', 'g.id', 't.goldTaskId')
    .select(['t.id', 't.assignmentId', 't.goldTaskId', 'g.expectedLabels'])
    .where('t.id', 'in', [...last.keys()])
    .orderBy('t.id')
    .execute();
  const scored = tasks.filter((t) => t.expectedLabels);
  if (!scored.length) return 0;
  const upserts = [];
  const dropped: number[] = [];
  for (const task of scored) {
    const { ann, annotatorId } = last.get(task.id)!;
    if (!ann) {
      dropped.push(task.id);
      continue;
    }
    const result = ann.wasCancelled ? { score: 0, controls: [], skipped: true } : scoreGold(task.expectedLabels!, ann.result);
    upserts.push({
      assignmentTaskId: task.id,
      assignmentId: task.assignmentId,
      annotatorId,
      goldTaskId: task.goldTaskId,
      score: result.score,
      details: JSON.stringify({ ...result, lsAnnotationId: ann.id }),
    });
  }
  if (upserts.length) {
    await trx
      .insertInto('goldResults')
      .values(upserts)
      .onConflict((oc) =>
        oc.column('assignmentTaskId').doUpdateSet((eb) => ({ score: eb.ref('excluded.score'), details: eb.ref('excluded.details'), evaluatedAt: new Date() })),
      )
      .execute();
  }
  if (dropped.length) await trx.deleteFrom('goldResults').where('assignmentTaskId', 'in', dropped).execute();
  for (const annotatorId of [...new Set(scored.map((t) => last.get(t.id)!.annotatorId))].sort((x, y) => x - y)) await evaluateQuality(trx, annotatorId);
  return scored.length;
}

/** The annotation a gold task's event carries, for scoring. */
const annotationOf = (a: FastArgs): IngestAnnotation => ({
  id: a.annotation!,
  result: a.result ?? [],
  updatedAt: a.updated_at,
  leadTime: a.lead_time,
  wasCancelled: a.was_cancelled,
});

/**
 * Applies `group` (CREATED/UPDATED events, oldest first) in `trx`: one labelfleet_ingest_annotations
 * call for them all, then the gold tasks' events in a second call (p_gold), scored together. One
 * row per event, in the group's order (a gold task's from the second call). Rejects as the database does — a
 * concurrent record raises 23505 (retry: it is then a duplicate) — and `trx` is then aborted.
 */
async function applyGroup(trx: Tx, group: FastArgs[]): Promise<FastRow[]> {
  if (!group.length) return [];
  const rows = inOrder(await ingestGroup(trx, group, false), group.length);
  await applyGold(trx, rows, (i) => group[i]!);
  return rows;
}

/**
 * The rest of applying a group whose labelfleet_ingest_annotations rows are `rows` (by event
 * index): the events left untouched as gold (`eventOf(i)`: event i) applied in a second call
 * (p_gold), in order, and scored together; their rows replaced in `rows`.
 */
export async function applyGold(trx: Tx, rows: FastRow[], eventOf: (i: number) => FastArgs): Promise<void> {
  const gold = [...rows.keys()].filter((i) => rows[i]!.outcome === 'gold');
  if (!gold.length) return;
  const events = gold.map(eventOf);
  const goldRows = inOrder(await ingestGroup(trx, events, true), gold.length);
  const scoring: GoldScoring[] = [];
  for (const [k, i] of gold.entries()) {
    const r = (rows[i] = goldRows[k]!);
    if (r.outcome === 'applied' && r.taskId != null) scoring.push({ taskId: r.taskId, annotatorId: events[k]!.annotator, ann: annotationOf(events[k]!) });
  }
  await scoreGoldTasks(trx, scoring);
}

/** The function's rows by event index, one per event. */
function inOrder(rows: (FastRow & { idx: number })[], n: number): FastRow[] {
  const out: FastRow[] = new Array(n);
  for (const r of rows) out[r.idx] = r;
  for (let i = 0; i < n; i++) if (!out[i]) throw new Error('event missing from the ingestion result');
  return out;
}

/** Adds what event row `r` changed to `out`. */
export function tally(out: IngestOutcome, r: FastRow): IngestOutcome {
  if (r.outcome !== 'duplicate' && r.outcome !== 'gold') out.recorded++;
  if (r.outcome === 'applied') out.applied++;
  if (r.ready && r.batchId !== null) out.readyAssignmentIds.push(r.batchId);
  if (r.reviewRecorded) out.reviewRecorded = true;
  return out;
}

export const noOutcome = (): IngestOutcome => ({ recorded: 0, applied: 0, readyAssignmentIds: [], reviewRecorded: false });

/**
 * Sets the task that `target` names (the annotator's Label Studio task, as an event would name
 * it) to Label Studio's state — annotated with `ann`, or open again when `ann` is null — by the
 * same SQL rule that applies an event (labelfleet_ingest_annotations, settling: no ordering rule,
 * no tombstone, no event row), then scores it when it is a gold task, all in `trx`. Only tasks of
 * in-progress batches change; a task already in that state is left alone. Returns the row (outcome
 * 'applied' when the task changed).
 */
export async function settleTaskState(
  trx: Tx,
  target: { annotatorId: number; lsProjectId: number | null; lsTaskId: number },
  ann: IngestAnnotation | null,
): Promise<FastRow> {
  const review = ann ? parseReviewDecision(ann.result) : null;
  const r = await ingestOnce(
    trx,
    {
      annotator: target.annotatorId,
      event_type: 'annotation_updated',
      source: 'reconcile',
      project: target.lsProjectId,
      ls_task: target.lsTaskId,
      annotation: ann?.id ?? null,
      result: ann ? ann.result : null,
      updated_at: ann?.updatedAt ?? null,
      time_spent_ms: null,
      lead_time: ann?.leadTime ?? null,
      was_cancelled: ann?.wasCancelled ?? false,
      review_decision: review?.decision ?? null,
      review_reason: review?.reason ?? null,
    },
    true,
    true,
  );
  if (r.outcome === 'applied' && r.taskId != null) await scoreGoldTasks(trx, [{ taskId: r.taskId, annotatorId: target.annotatorId, ann }]);
  return r;
}

/** ANNOTATIONS_DELETED: every id in one set-based call (labelfleet_delete_annotations). */
async function ingestDeletion(db: Db, ev: IngestEvent, out: IngestOutcome): Promise<void> {
  const ids = [...new Set(ev.deletedIds ?? [])];
  if (!ids.length) return;
  await db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ recorded: number; applied: number; goldRemoved: number }>`
      SELECT * FROM labelfleet_delete_annotations(${ev.annotatorId}, ${ev.lsProjectId}, ${ev.lsTaskId}, ${ids}::integer[], ${ev.source})`.execute(trx);
    const r = rows[0]!;
    out.recorded += r.recorded;
    out.applied += r.applied;
    if (r.goldRemoved > 0) await evaluateQuality(trx, ev.annotatorId);
  });
}

/**
 * Records one event and applies it, alone, in one transaction (module comment). Resolves with what
 * changed; rejects only on a database failure (nothing of the event is then written).
 */
export async function ingestEvent(db: Db, ev: IngestEvent): Promise<IngestOutcome> {
  const out = noOutcome();
  if (ev.action === 'ANNOTATIONS_DELETED') {
    await ingestDeletion(db, ev, out);
    return out;
  }
  const ann = ev.annotation;
  if (!ann || ev.lsTaskId === null) return out;
  const args = fastArgs(ev, ann);
  const [r] = await retryOnConcurrentRecord(() => db.transaction().execute((trx) => applyGroup(trx, [args])));
  return tally(out, r!);
}
