/**
 * Annotator reads for the console (and, in phase 2 of issue 12, for GET /api/annotators): one page
 * of a filtered, sorted, searched table; counts by status; an annotator's container events, start
 * progress, throughput, gold results, rejections and accuracy. Every function takes `db | trx`
 * first and returns rows; mapping to HTML or JSON is the caller's.
 *
 * Paging stays fast at 10,000+ annotators: the filter is the API's (./annotator-list.ts), sorts
 * use indexes (status, role, the trigram index of migration 0011 for search, its
 * `(lower(name), id)` index for the default sort, 0038's for last activity), a page in the back
 * half of a long list is read from its end, and the total is the API's counter (./counts.ts)
 * unless a search narrows it. Names sort in byte order of their lower-cased form (the same in
 * every locale).
 */
import { sql, type RawBuilder } from 'kysely';
import type { Annotator, AnnotatorStatus } from './types.ts';
import type { Executor } from './index.ts';
import { filterAnnotators, searchOf, type AnnotatorFilter } from './annotator-list.ts';
import { annotatorTotal, valueOf } from './counts.ts';
import { countAll, pageOf, type Page } from './list-page.ts';
import { meanAccuracy } from './accuracy.ts';
import type { ProgressEventRow } from '../domain/start-progress.ts';

export const ANNOTATOR_SORTS = ['name', 'email', 'status', 'role', 'lastActive', 'created'] as const;
export type AnnotatorSort = (typeof ANNOTATOR_SORTS)[number];
export type SortDirection = 'asc' | 'desc';

export type { AnnotatorFilter } from './annotator-list.ts';
export { likePattern } from './annotator-list.ts';
export type { Page } from './list-page.ts';

/** The order of names: byte order of the lower-cased name (migrations/0011_console.sql's index). */
const NAME_ORDER = sql`lower(annotators.name) COLLATE "C"`;

/** What a row of the console's annotators table shows and links to (and nothing it does not). */
const LIST_COLUMNS = ['id', 'name', 'email', 'roleId', 'status', 'autoAssignPaused', 'lastActiveAt', 'createdAt', 'routedAt', 'subdomain'] as const;
export type AnnotatorListRow = Pick<Annotator, (typeof LIST_COLUMNS)[number]> & { roleName: string | null; roleColor: string | null };
const LIST_SELECT = sql.raw(LIST_COLUMNS.map((c) => `a.${c.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`)}`).join(', '));

/** One key of an order; `nulls` absent is PostgreSQL's default (last ascending, first descending). */
interface SortKey {
  expr: RawBuilder<unknown>;
  dir: SortDirection;
  nulls?: 'first' | 'last';
}

/** The table's order for a sort and direction, ties broken by id (so pages never overlap or skip). */
function sortKeys(by: AnnotatorSort, dir: SortDirection): SortKey[] {
  const id: SortKey = { expr: sql`annotators.id`, dir };
  switch (by) {
    case 'name':
      return [{ expr: NAME_ORDER, dir }, id];
    case 'email':
      return [{ expr: sql`lower(annotators.email) COLLATE "C"`, dir }, id];
    case 'status':
      return [{ expr: sql`annotators.status`, dir }, { expr: NAME_ORDER, dir: 'asc' }, id];
    case 'role':
      return [{ expr: sql`lower(roles.name) COLLATE "C"`, dir, nulls: dir === 'asc' ? 'last' : 'first' }, { expr: NAME_ORDER, dir: 'asc' }, id];
    case 'lastActive':
      return [{ expr: sql`annotators.last_active_at`, dir, nulls: dir === 'asc' ? 'first' : 'last' }, id];
    case 'created':
      return [id];
  }
}

/** The exact reverse of an order: every key flipped, nulls included. */
const reversed = (keys: SortKey[]): SortKey[] =>
  keys.map((k) => ({ expr: k.expr, dir: k.dir === 'asc' ? 'desc' : 'asc', nulls: k.nulls && (k.nulls === 'first' ? 'last' : 'first') }));

/**
 * Past this offset a page is read after the total (one more round trip), so that a page in the
 * back half of the list can be read from its end: the last page of 10,000 is then the head of an
 * index read backwards, not 9,950 rows skipped (or, as PostgreSQL plans it, every row sorted).
 */
const READ_FROM_END_AFTER = 1000;

/**
 * One page of annotators (the table's columns, with role name and colour) and the number matching
 * the filter. Ties are broken by id, so pages never overlap or skip rows.
 */
export async function listAnnotators(
  db: Executor,
  filter: AnnotatorFilter,
  sort: { by: AnnotatorSort; dir: SortDirection },
  page: Page,
): Promise<{ rows: AnnotatorListRow[]; total: number }> {
  const base = filterAnnotators(db, filter);
  const keys = sortKeys(sort.by, sort.dir);
  // The total: the API's counter without a search (one index range of a small table, not a count
  // of rows), else a count of the matches.
  const total = searchOf(filter) === undefined ? annotatorTotal(db, filter) : countAll(base);
  // The page's ids in order (index-friendly: no wide rows are sorted or skipped), then those rows
  // with their role, in one round trip: ARRAY(subquery) keeps the subquery's order.
  const pageRows = async (order: SortKey[], at: Page, withTotal: boolean) => {
    let ids = base.select('annotators.id').$if(sort.by === 'role', (q) => q.leftJoin('roles', 'roles.id', 'annotators.roleId'));
    for (const k of order) {
      ids = ids.orderBy(k.expr, (ob) => {
        const o = k.dir === 'asc' ? ob.asc() : ob.desc();
        return k.nulls === undefined ? o : k.nulls === 'first' ? o.nullsFirst() : o.nullsLast();
      });
    }
    // With `withTotal`, the total is an uncorrelated scalar subquery beside the rows (computed once).
    const { rows } = await sql<AnnotatorListRow>`
      SELECT ${LIST_SELECT}, r.name AS role_name, r.color AS role_color${withTotal ? sql`, (${total})::int AS list_total` : sql``}
        FROM unnest(ARRAY(${ids.limit(at.limit).offset(at.offset)})) WITH ORDINALITY AS p(id, ord)
        JOIN annotators a ON a.id = p.id
        LEFT JOIN roles r ON r.id = a.role_id
       ORDER BY p.ord`.execute(db);
    return rows;
  };

  if (page.offset > READ_FROM_END_AFTER) {
    // Read apart, the total and the page may see different moments: paging by offset never
    // promised more (a row added between two pages shifts the next one either way).
    const n = await valueOf(db, total);
    if (page.offset >= n) return { rows: [], total: n };
    if (page.offset * 2 < n) return { rows: await pageRows(keys, page, false), total: n };
    const limit = Math.min(page.limit, n - page.offset);
    const rows = await pageRows(reversed(keys), { limit, offset: n - page.offset - limit }, false);
    return { rows: rows.reverse(), total: n };
  }
  // The total rides on the rows (read on its own for a page past the end).
  const { rows, total: n } = await pageOf(db, await pageRows(keys, page, true), () => total);
  return { rows, total: n };
}

/** How many annotators are in each status (deleted included), zeros for the missing ones. */
export async function annotatorStatusCounts(db: Executor): Promise<Record<AnnotatorStatus, number>> {
  const rows = await db
    .selectFrom('annotators')
    .select(['status', sql<number>`count(*)::int`.as('n')])
    .groupBy('status')
    .execute();
  const out: Record<AnnotatorStatus, number> = { created: 0, starting: 0, active: 0, stopping: 0, stopped: 0, error: 0, deleted: 0 };
  for (const r of rows) out[r.status] = r.n;
  return out;
}

export interface StuckAnnotator {
  id: number;
  name: string;
  status: AnnotatorStatus;
  startPhase: string | null;
  since: Date;
}

/**
 * Annotators whose start phase has run past `phaseLimitSeconds[phase]`, or that have been
 * stopping longer than `stoppingSeconds`, longest first.
 */
export async function stuckAnnotators(
  db: Executor,
  phaseLimitSeconds: Record<string, number>,
  stoppingSeconds: number,
  limit = 20,
): Promise<StuckAnnotator[]> {
  const limits = Object.entries(phaseLimitSeconds);
  const phaseCase = limits.length
    ? sql`CASE start_phase ${sql.join(
        limits.map(([phase, s]) => sql`WHEN ${phase} THEN ${s}::int`),
        sql` `,
      )} ELSE NULL END`
    : sql`NULL`;
  const { rows } = await sql<StuckAnnotator>`
    SELECT id, name, status, start_phase, coalesce(phase_started_at, status_changed_at) AS since
      FROM annotators
     WHERE (status = 'starting' AND phase_started_at < now() - make_interval(secs => ${phaseCase}))
        OR (status = 'stopping' AND status_changed_at < now() - make_interval(secs => ${stoppingSeconds}::int))
     ORDER BY since
     LIMIT ${limit}`.execute(db);
  return rows;
}

/** The newest `limit` container events of one annotator. */
export async function containerEventsOf(db: Executor, annotatorId: number, limit: number) {
  return db
    .selectFrom('containerEvents')
    .select(['id', 'eventType', 'fromStatus', 'toStatus', 'message', 'details', 'createdAt'])
    .where('annotatorId', '=', annotatorId)
    .orderBy('createdAt', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/**
 * What `startProgress` (src/domain/start-progress.ts) needs: the annotator's start columns and the
 * container events since its current start was requested (oldest first). Null when unknown.
 */
export async function readStartProgress(db: Executor, annotatorId: number) {
  const a = await db
    .selectFrom('annotators')
    .select(['id', 'status', 'startPhase', 'statusReason', 'startGeneration', 'startRequestedAt', 'subdomain', 'routedAt'])
    .where('id', '=', annotatorId)
    .executeTakeFirst();
  if (!a) return null;
  const events: ProgressEventRow[] = a.startRequestedAt
    ? await db
        .selectFrom('containerEvents')
        .select(['id', 'eventType', 'toStatus', 'message', 'details', 'createdAt'])
        .where('annotatorId', '=', annotatorId)
        .where('createdAt', '>=', a.startRequestedAt)
        .where('eventType', 'in', ['start_progress', 'status_change'])
        .orderBy('createdAt')
        .orderBy('id')
        .execute()
    : [];
  return { annotator: a, events };
}

/**
 * Annotations per UTC hour over [from, to) from the hourly rollup, for one annotator or the whole
 * fleet: every hour in the window, zeros included, oldest first.
 */
export async function annotationsPerHour(db: Executor, from: Date, to: Date, annotatorId?: number) {
  // The fleet's from its own rollup and unfolded deltas (migrations/0026): 24 rows, not 24 × annotators.
  const q =
    annotatorId === undefined
      ? db
          .selectFrom(
            db
              .selectFrom('annotationFleetHourly')
              .select(['hour', 'createdCount'])
              .unionAll(db.selectFrom('annotationFleetHourlyDeltas').select(['hour', 'createdCount']))
              .as('f'),
          )
          .select(['f.hour', sql<number>`sum(f.created_count)::int`.as('n')])
          .where('f.hour', '>=', from)
          .where('f.hour', '<', to)
          .groupBy('f.hour')
      : db
          .selectFrom('annotationHourly')
          .select(['hour', sql<number>`sum(created_count)::int`.as('n')])
          .where('hour', '>=', from)
          .where('hour', '<', to)
          .where('annotatorId', '=', annotatorId)
          .groupBy('hour');
  const rows = await q.execute();
  const byHour = new Map(rows.map((r) => [new Date(r.hour).getTime(), r.n]));
  const out: { hour: Date; count: number }[] = [];
  for (let t = from.getTime(); t < to.getTime(); t += 3_600_000) out.push({ hour: new Date(t), count: byHour.get(t) ?? 0 });
  return out;
}

/** An annotator's gold accuracy: mean score over `evaluationCount` results (null when none) and the flag. */
export async function accuracyOf(db: Executor, annotatorId: number) {
  const row = await db
    .selectFrom('annotatorQuality')
    .select([
      'evaluationCount',
      meanAccuracy('annotator_quality').as('accuracy'),
      'flagged',
      'flaggedAt',
    ])
    .where('annotatorId', '=', annotatorId)
    .executeTakeFirst();
  return row ?? { evaluationCount: 0, accuracy: null, flagged: false, flaggedAt: null };
}

/** An annotator's newest gold results, with the gold task's name and the batch. */
export async function goldResultsOf(db: Executor, annotatorId: number, limit: number) {
  return db
    .selectFrom('goldResults as g')
    .leftJoin('goldTasks as t', 't.id', 'g.goldTaskId')
    .select(['g.id', 'g.assignmentId', 'g.goldTaskId', 't.name as goldTaskName', 'g.score', 'g.evaluatedAt'])
    .where('g.annotatorId', '=', annotatorId)
    .orderBy('g.evaluatedAt', 'desc')
    .orderBy('g.id', 'desc')
    .limit(limit)
    .execute();
}

/** The newest rejections of an annotator's work, with the reviewer's name and the workflow. */
export async function rejectionsOf(db: Executor, annotatorId: number, limit: number) {
  return db
    .selectFrom('rejections as r')
    .leftJoin('annotators as v', 'v.id', 'r.reviewerAnnotatorId')
    .innerJoin('workflows as w', 'w.id', 'r.workflowId')
    .select(['r.id', 'r.imageKey', 'r.reason', 'r.actionTaken', 'r.createdAt', 'r.reworkIteration', 'v.name as reviewerName', 'w.id as workflowId', 'w.name as workflowName'])
    .where('r.originalAnnotatorId', '=', annotatorId)
    .orderBy('r.createdAt', 'desc')
    .orderBy('r.id', 'desc')
    .limit(limit)
    .execute();
}

/** Live annotators of a role (or of any role when null) that can take a batch now, by name. */
export async function assignableAnnotators(db: Executor, roleId: number | null, limit: number) {
  let q = db.selectFrom('annotators').select(['id', 'name', 'email']).where('status', '=', 'active');
  if (roleId !== null) q = q.where('roleId', '=', roleId);
  return q.orderBy(sql`lower(name)`).orderBy('id').limit(limit).execute();
}

/**
 * Annotators (not deleted) that the quality step flagged or whose auto-assignment is paused, with
 * their accuracy, lowest accuracy first.
 */
export async function flaggedOrPausedAnnotators(db: Executor, limit: number) {
  return db
    .selectFrom('annotators as a')
    .leftJoin('annotatorQuality as q', 'q.annotatorId', 'a.id')
    .select([
      'a.id',
      'a.name',
      'a.status',
      'a.autoAssignPaused',
      sql<boolean>`coalesce(q.flagged, false)`.as('flagged'),
      'q.flaggedAt',
      sql<number>`coalesce(q.evaluation_count, 0)`.as('evaluationCount'),
      meanAccuracy('q').as('accuracy'),
    ])
    .where('a.status', '<>', 'deleted')
    .where((eb) => eb.or([eb('q.flagged', '=', true), eb('a.autoAssignPaused', '=', true)]))
    .orderBy(meanAccuracy('q'), (ob) => ob.asc().nullsLast())
    .orderBy('a.id')
    .limit(limit)
    .execute();
}
