/**
 * One page of a list and the total matching its filters, in one statement: the total is an
 * uncorrelated scalar subquery (computed once, beside the rows), so a page costs one round trip.
 */
import { sql, type Expression, type SelectQueryBuilder, type SqlBool } from 'kysely';
import type { Executor } from './index.ts';
import { valueOf } from './counts.ts';

export interface Page {
  limit: number;
  offset: number;
}

/** The columns that carry the total and `admit` beside each row (removed from the rows listPage returns). */
const TOTAL = 'listTotal';
const ADMIT = 'listAdmit';

/**
 * The total of a list that has no maintained counter: count(*) over its filtered rows. Exact, and
 * meant for tables that do not grow with history; lists that do use src/db/counts.ts.
 */
export function countAll<DB, TB extends keyof DB>(filtered: SelectQueryBuilder<DB, TB, {}>): Expression<number> {
  return filtered.select(sql<number>`count(*)::int`.as('n')).$castTo<number>();
}

/**
 * The statement listPage runs: `rows(filtered)` (the page's columns and order), limited to the
 * page, with the total as one more column, and with `admit` (when given) as another and as a
 * condition: no row is read while it is null.
 */
export function listPageQuery<DB, TB extends keyof DB, O>(
  filtered: SelectQueryBuilder<DB, TB, {}>,
  rows: (q: SelectQueryBuilder<DB, TB, {}>) => SelectQueryBuilder<DB, any, O>,
  page: Page,
  total: Expression<number> = countAll(filtered),
  admit?: Expression<number | null>,
) {
  return rows(filtered)
    .select(sql<number>`(${total})`.as(TOTAL))
    .$if(admit !== undefined, (q) => q.select(sql<number | null>`(${admit})`.as(ADMIT)).where(sql<SqlBool>`(${admit}) IS NOT NULL`))
    .limit(page.limit)
    .offset(page.offset);
}

/**
 * One page of a list (`filtered`: the list's query with its filters; `rows`: its columns and
 * order) and the number of rows matching the filters: `total` when the list has a maintained
 * counter, else count(*) over `filtered`. A page past the end reads the total on its own.
 *
 * `admit`: a value the list may only be read under, checked in the same statement (a session's
 * admin id, src/auth/sessions.ts SessionCheck): returned as `admitted`; while it is null no
 * row is read (`rows` is empty).
 */
export async function listPage<DB, TB extends keyof DB, O>(
  db: Executor,
  filtered: SelectQueryBuilder<DB, TB, {}>,
  rows: (q: SelectQueryBuilder<DB, TB, {}>) => SelectQueryBuilder<DB, any, O>,
  page: Page,
  total: Expression<number> = countAll(filtered),
  admit?: Expression<number | null>,
): Promise<{ rows: O[]; total: number; admitted?: number | null }> {
  const found = (await listPageQuery(filtered, rows, page, total, admit).execute()) as (O & { [TOTAL]?: number; [ADMIT]?: number | null })[];
  if (found.length === 0) {
    if (admit === undefined) return { rows: [], total: await valueOf(db, total) };
    const { rows: [row] } = await sql<{ n: number; admitted: number | null }>`SELECT (${total})::int AS n, (${admit}) AS admitted`.execute(db);
    return { rows: [], total: row!.n, admitted: row!.admitted };
  }
  const { [TOTAL]: n, [ADMIT]: admitted } = found[0]!;
  for (const row of found) {
    delete row[TOTAL];
    delete row[ADMIT];
  }
  return { rows: found, total: n!, ...(admit === undefined ? {} : { admitted }) };
}
