/**
 * An annotator's gold accuracy, one SQL expression for every reader (GET /api/quality, the
 * console's annotator and quality pages): the mean gold score (0..1) of the annotator's results,
 * `score_sum ÷ evaluation_count` of the `annotator_quality` row, rounded to 4 decimals; null when
 * there is no result (or no row). README "Quality" states the same rule.
 */
import { sql } from 'kysely';

/** The accuracy of the `annotator_quality` row aliased `alias` (a fixed alias from our code, never input). */
export const meanAccuracy = (alias: string) =>
  sql<number | null>`round(${sql.raw(alias)}.score_sum / nullif(${sql.raw(alias)}.evaluation_count, 0), 4)::float8`;

/** The same over every row of `annotator_quality` aliased `alias` (the fleet's overall accuracy). */
export const overallAccuracy = (alias: string) =>
  sql<number | null>`round(sum(${sql.raw(alias)}.score_sum) / nullif(sum(${sql.raw(alias)}.evaluation_count), 0), 4)::float8`;
