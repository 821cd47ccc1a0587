/**
 * Ingestion of annotation events, from a webhook or found by reconciliation. The rules — what an
 * event changes, idempotency, order, tombstones, lock order — have one implementation: the SQL
 * functions of migrations/0018_ingestion.sql (labelfleet_ingest_annotation[s],
 * labelfleet_delete_annotations), whose header states them. This module only feeds them:
 *
 * - CREATED/UPDATED: one round trip; under load the events that arrive while a call runs go
 *   together in the next one (labelfleet_ingest_annotations, one transaction). Gold tasks come
 *   back untouched from that call and are then applied by labelfleet_ingest_annotation and scored
 *   (domain/gold-scoring.ts, quality.ts) in one transaction.
 * - ANNOTATIONS_DELETED: one call for all ids (set-based), plus the quality re-evaluation when a
 *   gold result was dropped, in one transaction.
 *
 * No I/O besides the database: exporting, chaining and review effects happen in the reconciler.
 */
import { sql } from 'kysely';
import type { Db, Executor } from '../db/index.ts';
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

interface FastRow {
  outcome: 'gold' | 'duplicate' | 'recorded' | 'applied';
  batchId: number | null;
  ready: boolean;
  reviewRecorded: boolean;
  taskId?: number | null;
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

/** The same event recorded concurrently about no task of ours (the function raises 23505): retry once, as a duplicate. */
async function retryOnConcurrentRecord<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (pgCode(err) !== PG.uniqueViolation) throw err;
    return run();
  }
}

/** labelfleet_ingest_annotation for one event; `gold`: apply a gold task too (the caller scores it). */
async function ingestOnce(db: Executor, a: FastArgs, gold: boolean): Promise<FastRow> {
  const { rows } = await sql<FastRow>`
    SELECT * FROM labelfleet_ingest_annotation(
      ${a.annotator}, ${a.event_type}, ${a.source}, ${a.project}, ${a.ls_task}, ${a.annotation},
      ${JSON.stringify(a.result)}::jsonb, ${a.updated_at}::timestamptz, ${a.time_spent_ms}, ${a.lead_time},
      ${a.was_cancelled}, ${a.review_decision}, ${a.review_reason}, ${gold})`.execute(db);
  return rows[0]!;
}

/**
 * Group ingestion: an event is sent at once when nothing is in flight; events that arrive
 * meanwhile go together in the next call (labelfleet_ingest_annotations, one transaction), at most
 * MAX_GROUP per call and MAX_IN_FLIGHT calls at a time. No added latency at low load, far fewer
 * round trips and commits at high load. If a group fails as a whole (a deadlock, a bad value),
 * its events are retried one by one, so one event's failure stays its own.
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

  #one(args: FastArgs) {
    return retryOnConcurrentRecord(() => ingestOnce(this.db, args, false));
  }

  async #flush(group: { args: FastArgs; resolve: (r: FastRow) => void; reject: (e: unknown) => void }[]) {
    if (group.length === 1) {
      const [one] = group;
      await this.#one(one!.args).then(one!.resolve, one!.reject);
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
      for (const g of group) await this.#one(g.args).then(g.resolve, g.reject);
    }
  }
}

const fastIngest = new WeakMap<Db, FastIngest>();

/** A gold task's event: applied like any other, then scored, in one transaction. */
async function ingestGold(db: Db, args: FastArgs, ann: IngestAnnotation, out: IngestOutcome): Promise<FastRow> {
  return retryOnConcurrentRecord(() =>
    db.transaction().execute(async (trx) => {
      const r = await ingestOnce(trx, args, true);
      if (r.outcome !== 'applied' || r.taskId == null) return r;
      const task = await trx
        .selectFrom('assignmentTasks as t')
        .innerJoin('goldTasks as g', 'g.id', 't.goldTaskId')
        .select(['t.id', 't.assignmentId', 't.goldTaskId', 'g.expectedLabels'])
        .where('t.id', '=', r.taskId)
        .executeTakeFirst();
      if (!task?.expectedLabels) return r;
      const scored = ann.wasCancelled ? { score: 0, controls: [], skipped: true } : scoreGold(task.expectedLabels, ann.result);
      const details = JSON.stringify({ ...scored, lsAnnotationId: ann.id });
      await trx
        .insertInto('goldResults')
        .values({
          assignmentTaskId: task.id,
          assignmentId: task.assignmentId,
          annotatorId: args.annotator,
          goldTaskId: task.goldTaskId,
          score: scored.score,
          details,
        })
        .onConflict((oc) => oc.column('assignmentTaskId').doUpdateSet({ score: scored.score, details, evaluatedAt: new Date() }))
        .execute();
      out.goldScored = true;
      await evaluateQuality(trx, args.annotator);
      return r;
    }),
  );
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
    if (r.goldRemoved > 0) {
      out.goldScored = true;
      await evaluateQuality(trx, ev.annotatorId);
    }
  });
}

/**
 * Records one event and applies it (module comment). Resolves with what changed; rejects only on
 * a database failure (nothing of the event is then written).
 */
export async function ingestEvent(db: Db, ev: IngestEvent): Promise<IngestOutcome> {
  const out: IngestOutcome = { recorded: 0, applied: 0, readyAssignmentIds: [], reviewRecorded: false, goldScored: false };
  if (ev.action === 'ANNOTATIONS_DELETED') {
    await ingestDeletion(db, ev, out);
    return out;
  }
  const ann = ev.annotation;
  if (!ann || ev.lsTaskId === null) return out;
  let q = fastIngest.get(db);
  if (!q) fastIngest.set(db, (q = new FastIngest(db)));
  const args = fastArgs(ev, ann);
  let r = await q.submit(args);
  if (r.outcome === 'gold') r = await ingestGold(db, args, ann, out);
  if (r.outcome !== 'duplicate' && r.outcome !== 'gold') out.recorded++;
  if (r.outcome === 'applied') out.applied++;
  if (r.ready && r.batchId !== null) out.readyAssignmentIds.push(r.batchId);
  if (r.reviewRecorded) out.reviewRecorded = true;
  return out;
}
