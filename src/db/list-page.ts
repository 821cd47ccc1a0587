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
 */
export async function listPage<DB, TB extends keyof DB, O>(
  db: Executor,
  filtered: SelectQueryBuilder<DB, TB, {}>,
  rows: (q: SelectQueryBuilder<DB, TB, {}>) => SelectQueryBuilder<DB, any, O>,
  page: Page,
  total: Expression<number> = countAll(filtered),
): Promise<ListPage<O>> {
  return pageOf(db, await listPageQuery(filtered, rows, page, total).execute(), () => total);
}

export interface ListPage<O> {
  rows: O[];
  total: number;
  admitted?: number | null;
}

/**
 * The page from the rows that listPageQuery's statement returned (however it was sent: see
 * ./precompiled.ts), given the same `total` and `admit` (built only when needed): each row without
 * the total and admit columns; for no rows (past the end, or not admitted), the total and admit
 * read on their own. `admitted`: admit's value, when there is an admit.
 */
export async function pageOf<O>(
  db: Executor,
  found: readonly O[],
  total: () => Expression<number>,
  admit?: () => Expression<number | null>,
): Promise<ListPage<O>> {
  const withTotals = found as (O & { [TOTAL]?: number; [ADMIT]?: number | null })[];
  if (withTotals.length === 0) {
    if (admit === undefined) return { rows: [], total: await valueOf(db, total()) };
    const { rows: [row] } = await sql<{ n: number; admitted: number | null }>`SELECT (${total()})::int AS n, (${admit()}) AS admitted`.execute(db);
    return { rows: [], total: row!.n, admitted: row!.admitted };
  }
  const { [TOTAL]: n, [ADMIT]: admitted } = withTotals[0]!;
  // The last columns first (listPageQuery selects them last): deleting an object's last property
  // keeps it a fast-properties object, any other turns it into a dictionary (half the speed here).
  for (const row of withTotals) {
    delete row[ADMIT];
    delete row[TOTAL];
  }
  return { rows: withTotals, total: n!, ...(admit === undefined ? {} : { admitted }) };
}
