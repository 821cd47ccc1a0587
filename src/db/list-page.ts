/**
 * One page of a list and the total matching its filters, in one statement: the total is an
 * uncorrelated scalar subquery (computed once, beside the rows), so a page costs one round trip.
 */
import { sql, type Expression, type SelectQueryBuilder } from 'kysely';
import type { Executor } from './index.ts';
import { valueOf } from './counts.ts';

export interface Page {
  limit: number;
  offset: number;
}

/** The column that carries the total beside each row (removed from the rows listPage returns). */
const TOTAL = 'listTotal';

/**
 * The total of a list that has no maintained counter: count(*) over its filtered rows. Exact, and
 * meant for tables that do not grow with history; lists that do use src/db/counts.ts.
 */
export function countAll<DB, TB extends keyof DB>(filtered: SelectQueryBuilder<DB, TB, {}>): Expression<number> {
  return filtered.select(sql<number>`count(*)::int`.as('n')).$castTo<number>();
}

/**
 * The statement listPage runs: `rows(filtered)` (the page's columns and order), limited to the
 * page, with the total as one more column.
 */
export function listPageQuery<DB, TB extends keyof DB, O>(
  filtered: SelectQueryBuilder<DB, TB, {}>,
  rows: (q: SelectQueryBuilder<DB, TB, {}>) => SelectQueryBuilder<DB, any, O>,
  page: Page,
  total: Expression<number> = countAll(filtered),
) {
  return rows(filtered)
    .select(sql<number>`(${total})`.as(TOTAL))
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
}

/**
 * The page from the rows that listPageQuery's statement returned (however it was sent), given the
 * same `total` (built only when needed): each row without the total column; for no rows (past the
 * end), the total read on its own.
 */
export async function pageOf<O>(db: Executor, found: readonly O[], total: () => Expression<number>): Promise<ListPage<O>> {
  const withTotals = found as (O & { [TOTAL]?: number })[];
  if (withTotals.length === 0) return { rows: [], total: await valueOf(db, total()) };
  const n = withTotals[0]![TOTAL]!;
  // Deleting an object's last property keeps it a fast-properties object, any other turns it into
  // a dictionary (half the speed here): listPageQuery selects the total last.
  for (const row of withTotals) delete row[TOTAL];
  return { rows: withTotals, total: n };
}
