/**
 * Exporting a workflow's labels: one record per annotated real task (gold tasks are left out, as
 * in the batch's JSON export), read in keyset pages (batch id, task id) so memory stays flat
 * whatever the size, on PostgreSQL and PGlite alike.
 *
 * Which tasks:
 * - of batches (assignments) of the workflow whose status is one of `statuses` (default
 *   completed);
 * - `since`: tasks of batches completed at or after it, and for batches not completed, tasks
 *   annotated at or after it — "what became final since my last pull";
 * - `latestPerImage` (COCO, YOLO): when an image was annotated in several batches of the
 *   workflow (rework), only its newest annotation.
 *
 * A record (one JSONL line; the same in `GET /api/workflows/:id/export` and the JSONL written beside
 * each batch's JSON export in S3):
 *   {imageKey, result, skipped, annotator: {id, name}, workflowId, batchId, taskId, lsTaskId,
 *    lsAnnotationId, annotatedAt, leadTimeSeconds, review?: {decision, reason},
 *    gold?: {batchScore, batchEvaluations}}
 * `gold` is the batch's gold accuracy (mean score of its gold tasks) when it had any; `review`
 * when the task carries a review decision. PostgreSQL writes each record's JSON (linePage), so the
 * JSONL and JSON formats pass text through; consensus fields (issue 13: overlap) join it there.
 */
import { sql } from 'kysely';
import type { Executor } from '../db/index.ts';
import type { AssignmentStatus } from '../db/types.ts';
import { createHash } from 'node:crypto';
import { joinKey, type Storage } from '../storage/s3.ts';

export interface ExportFilter {
  workflowId: number;
  statuses: AssignmentStatus[];
  since?: Date | null;
  latestPerImage?: boolean;
  /** Only this batch (the JSONL beside a batch's JSON export). */
  assignmentId?: number;
}

export interface ExportRecord {
  imageKey: string;
  result: unknown;
  skipped: boolean;
  annotator: { id: number; name: string };
  workflowId: number;
  batchId: number;
  taskId: number;
  lsTaskId: number | null;
  lsAnnotationId: number | null;
  annotatedAt: string | null;
  leadTimeSeconds: number | null;
  review?: { decision: 'accept' | 'reject'; reason: string | null };
  gold?: { batchScore: number; batchEvaluations: number };
}

interface BatchRow {
  id: number;
  annotatorId: number;
  annotatorName: string;
  completedAt: Date | null;
  taskCount: number;
  goldScore: number | null;
  goldCount: number;
}

interface LineRow {
  id: number;
  assignmentId: number;
  line: string;
}

const BATCH_PAGE = 500;
/** Tasks per page; batches are grouped so a page usually covers whole batches. */
export const EXPORT_PAGE = 2000;

async function batchPage(db: Executor, f: ExportFilter, afterId: number): Promise<BatchRow[]> {
  const since = f.since ?? null;
  const { rows } = await sql<BatchRow>`
    SELECT a.id, a.annotator_id, n.name AS annotator_name, a.completed_at, a.task_count,
           g.score AS gold_score, coalesce(g.n, 0) AS gold_count
      FROM assignments a
      JOIN annotators n ON n.id = a.annotator_id
      LEFT JOIN LATERAL (SELECT avg(score)::float8 AS score, count(*)::int AS n FROM gold_results gr WHERE gr.assignment_id = a.id) g ON true
     WHERE a.workflow_id = ${f.workflowId}
       AND a.status = ANY (${f.statuses}::text[])
       AND a.id > ${afterId}
       AND (${f.assignmentId ?? null}::int IS NULL OR a.id = ${f.assignmentId ?? null}::int)
       AND (${since}::timestamptz IS NULL OR a.completed_at IS NULL OR a.completed_at >= ${since}::timestamptz)
     ORDER BY a.id
     LIMIT ${BATCH_PAGE}`.execute(db);
  return rows;
}

/**
 * One page of records as JSON text, built by PostgreSQL (no parse and re-serialisation in Node:
 * this is the export's hot path). The record's shape is defined here, once.
 */
async function linePage(db: Executor, f: ExportFilter, group: BatchRow[], after: { batch: number; task: number }): Promise<LineRow[]> {
  const since = f.since ?? null;
  const newer = f.latestPerImage
    ? sql`AND NOT EXISTS (
        SELECT 1 FROM assignment_tasks t2 JOIN assignments a2 ON a2.id = t2.assignment_id
         WHERE t2.s3_image_key = t.s3_image_key AND t2.status = 'annotated' AND NOT t2.is_gold
           AND a2.workflow_id = ${f.workflowId} AND a2.status = ANY (${f.statuses}::text[])
           AND (t2.annotated_at, t2.id) > (t.annotated_at, t.id))`
    : sql``;
  const { rows } = await sql<LineRow>`
    SELECT t.id, t.assignment_id,
           left(json_build_object(
             'imageKey', t.s3_image_key,
             'result', coalesce(t.result, '[]'::jsonb),
             'skipped', t.skipped,
             'annotator', json_build_object('id', b.annotator_id, 'name', b.annotator_name),
             'workflowId', ${f.workflowId}::int,
             'batchId', t.assignment_id,
             'taskId', t.id,
             'lsTaskId', t.ls_task_id,
             'lsAnnotationId', t.ls_annotation_id,
             'annotatedAt', to_char(t.annotated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'leadTimeSeconds', t.lead_time_seconds)::text, -1)
           || CASE WHEN t.review_decision IS NOT NULL
                   THEN ', "review" : ' || json_build_object('decision', t.review_decision, 'reason', t.review_reason)::text ELSE '' END
           || CASE WHEN b.gold_count > 0
                   THEN ', "gold" : ' || json_build_object('batchScore', round(b.gold_score::numeric, 4)::float8, 'batchEvaluations', b.gold_count)::text ELSE '' END
           -- Overlap items (issue 13): the item's consensus — or the adjudicator's result — with its
           -- agreement, confidence and every annotator's answer (consensus.ts); absent otherwise.
           || coalesce((SELECT ', "consensus" : ' || json_build_object(
                                 'result', coalesce(c.adjudicated_result, c.result), 'outcome', c.outcome, 'method', c.method,
                                 'agreement', c.agreement, 'confidence', c.confidence, 'adjudicatorId', c.adjudicator_id,
                                 'answers', c.answers)::text
                          FROM item_consensus c WHERE c.work_item_id = t.work_item_id), '')
           || '}' AS line
      FROM assignment_tasks t
      JOIN unnest(${group.map((g) => g.id)}::int[], ${group.map((g) => g.annotatorId)}::int[], ${group.map((g) => g.annotatorName)}::text[],
                  ${group.map((g) => g.goldScore)}::float8[], ${group.map((g) => g.goldCount)}::int[], ${group.map((g) => g.completedAt)}::timestamptz[])
           AS b(id, annotator_id, annotator_name, gold_score, gold_count, completed_at) ON b.id = t.assignment_id
     WHERE t.assignment_id = ANY (${group.map((g) => g.id)}::int[])
       AND (t.assignment_id > ${after.batch} OR (t.assignment_id = ${after.batch} AND t.id > ${after.task}))
       AND t.status = 'annotated' AND NOT t.is_gold
       AND (${since}::timestamptz IS NULL OR b.completed_at IS NOT NULL OR t.annotated_at >= ${since}::timestamptz)
       ${newer}
     ORDER BY t.assignment_id, t.id
     LIMIT ${EXPORT_PAGE}`.execute(db);
  return rows;
}

/** Every record the filter selects as JSON text, page by page (each page at most EXPORT_PAGE records). */
export async function* exportLines(db: Executor, f: ExportFilter): AsyncGenerator<string[]> {
  let afterBatch = 0;
  for (;;) {
    const batches = await batchPage(db, f, afterBatch);
    if (!batches.length) return;
    afterBatch = batches.at(-1)!.id;
    // Group batches so one group's tasks fit about one page: few pages, each an index range.
    for (let i = 0; i < batches.length; ) {
      const group: BatchRow[] = [];
      let tasks = 0;
      while (i < batches.length && (group.length === 0 || tasks + batches[i]!.taskCount <= EXPORT_PAGE)) {
        tasks += batches[i]!.taskCount;
        group.push(batches[i++]!);
      }
      // The next page is asked for before this one is handed on, so the database works while the
      // consumer sends (at most two pages in memory).
      let next: Promise<LineRow[]> | null = linePage(db, f, group, { batch: 0, task: 0 });
      while (next) {
        const rows: LineRow[] = await next;
        const last: LineRow | undefined = rows.at(-1);
        next = last && rows.length === EXPORT_PAGE ? linePage(db, f, group, { batch: last.assignmentId, task: last.id }) : null;
        // A consumer that stops early leaves the prefetched page unread: its failure is not theirs.
        next?.catch(() => {});
        if (rows.length) yield rows.map((r) => r.line);
      }
    }
  }
}

/** The same records as objects (for the formats that reshape them: CSV, COCO, YOLO). */
export async function* exportRecords(db: Executor, f: ExportFilter): AsyncGenerator<ExportRecord[]> {
  for await (const page of exportLines(db, f)) yield page.map((line) => JSON.parse(line) as ExportRecord);
}

/** The JSONL beside a batch's JSON export: one line per annotated real task of the batch. */
export async function batchJsonl(db: Executor, assignment: { id: number; workflowId: number; status: AssignmentStatus }): Promise<string> {
  let out = '';
  for await (const page of exportLines(db, { workflowId: assignment.workflowId, statuses: [assignment.status], assignmentId: assignment.id })) {
    for (const line of page) out += `${line}\n`;
  }
  return out;
}

/** The S3 key of a batch's JSONL export, beside its JSON export (`…/assignment-<id>.jsonl`). */
export const jsonlExportKeyFor = (s3ExportPath: string, assignmentId: number) => joinKey(s3ExportPath, `assignment-${assignmentId}.jsonl`);

/**
 * Writes the batch's JSONL beside its JSON export (called by completion, before the batch is marked
 * completed). Like the JSON, it carries its content's sha256 in its metadata and is rewritten only
 * when the content changed, so a completion retried after a crash writes it once.
 */
export async function writeBatchJsonl(
  db: Executor,
  storage: Storage,
  bucket: string,
  s3ExportPath: string,
  a: { id: number; workflowId: number; status: AssignmentStatus },
): Promise<string> {
  const body = await batchJsonl(db, a);
  const digest = createHash('sha256').update(body).digest('hex');
  const key = jsonlExportKeyFor(s3ExportPath, a.id);
  if ((await storage.head(bucket, key))?.metadata?.sha256 !== digest) {
    await storage.put(bucket, key, body, {
      contentType: 'application/x-ndjson',
      metadata: { sha256: digest, 'assignment-id': String(a.id), 'workflow-id': String(a.workflowId) },
    });
  }
  return key;
}
