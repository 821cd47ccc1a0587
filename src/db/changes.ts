/**
 * The fleet's change watermark (src/domain/fleet-changes.ts): one round trip, cheap at any size.
 * Append-only tables are read by their primary key's maximum (an index lookup); the open batches
 * through the partial index on pending / in-progress assignments (so the cost follows the open
 * batches, not the history); the small catalogue tables by count and latest update.
 */
import { sql } from 'kysely';
import type { Watermark } from '../domain/fleet-changes.ts';
import type { Executor } from './index.ts';

export async function readWatermark(db: Executor): Promise<Watermark> {
  const { rows } = await sql<Watermark>`
    SELECT
      (SELECT coalesce(max(id), 0) FROM container_events) || ':' ||
        (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM annotators) AS annotators,
      (SELECT coalesce(max(id), 0)::text FROM annotation_events) AS annotations,
      (SELECT coalesce(max(id), 0) FROM assignments) || ':' ||
        (SELECT count(*) || ':' || count(*) FILTER (WHERE status = 'in_progress') || ':' ||
                coalesce(sum(completed_count), 0) || ':' || coalesce(max(updated_at)::text, '')
           FROM assignments WHERE status IN ('pending', 'in_progress')) AS batches,
      (SELECT coalesce(max(id), 0) FROM gold_results) || ':' || (SELECT coalesce(max(id), 0) FROM rejections) || ':' ||
        (SELECT count(*) FILTER (WHERE flagged) FROM annotator_quality) AS quality,
      (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM workflows) AS workflows,
      (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM labeling_configs) || ':' ||
        (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM gold_tasks) || ':' ||
        (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM roles) AS configs,
      (SELECT count(*) || ':' || coalesce(max(updated_at)::text, '') FROM settings) AS settings`.execute(db);
  return rows[0]!;
}
