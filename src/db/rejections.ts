/**
 * Reads of the rejections audit trail for GET /api/rejections and GET /api/rejections/:id
 * (src/api/rejections.ts maps the rows to JSON). Functions take `db | trx` first and return rows.
 * (The console's annotator page reads an annotator's rejections with rejectionsOf in annotators.ts.)
 */
import type { SelectQueryBuilder } from 'kysely';
import { notFound } from '../errors.ts';
import { rejectionTotal, type RejectionCountFilter } from './counts.ts';
import type { Executor } from './index.ts';
import { listPage, type Page } from './list-page.ts';
import type { Database, Rejection } from './types.ts';

/** A rejection with its original and reviewing annotators' name and email (null when gone). */
export type RejectionRow = Rejection & {
  originalName: string | null;
  originalEmail: string | null;
  reviewerName: string | null;
  reviewerEmail: string | null;
};

/** `q` (rows of rejections, maybe filtered) with both annotators joined in: rows are RejectionRow. */
const withAnnotators = (q: SelectQueryBuilder<Database, 'rejections', {}>) =>
  q
    .leftJoin('annotators as oa', 'oa.id', 'rejections.originalAnnotatorId')
    .leftJoin('annotators as ra', 'ra.id', 'rejections.reviewerAnnotatorId')
    .selectAll('rejections')
    .select(['oa.name as originalName', 'oa.email as originalEmail', 'ra.name as reviewerName', 'ra.email as reviewerEmail']);

/**
 * One page of rejections matching `filter` (each absent field matches all), newest first (then by
 * id), and how many match (from the counters of rejectionTotal). Reads only.
 */
export async function listRejections(db: Executor, filter: RejectionCountFilter, page: Page): Promise<{ rows: RejectionRow[]; total: number }> {
  let base = db.selectFrom('rejections');
  if (filter.workflowId !== undefined) base = base.where('rejections.workflowId', '=', filter.workflowId);
  if (filter.annotatorId !== undefined) base = base.where('rejections.originalAnnotatorId', '=', filter.annotatorId);
  if (filter.actionTaken !== undefined) base = base.where('rejections.actionTaken', '=', filter.actionTaken);
  return listPage(
    db,
    base,
    (b) => withAnnotators(b).orderBy('rejections.createdAt', 'desc').orderBy('rejections.id', 'desc'),
    page,
    rejectionTotal(db, filter),
  );
}

/** Rejection `id` with both annotators. Errors: notFound('Rejection') (404) when there is none. */
export async function findRejection(db: Executor, id: number): Promise<RejectionRow> {
  const row = await withAnnotators(db.selectFrom('rejections')).where('rejections.id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Rejection');
  return row;
}
