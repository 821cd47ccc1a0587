/**
 * Throughput by calendar period, read by GET /api/monitoring/throughput (src/api/throughput.ts,
 * which turns the query into periods): annotations counted from the rollups
 * (src/db/annotation-counts.ts: whole UTC days, whole hours, only partial hours from the events),
 * completed batches from assignments. Takes `db | trx` first.
 */
import { sql } from 'kysely';
import type { PeriodBucket } from '../domain/periods.ts';
import { annotationCounts } from './annotation-counts.ts';
import type { Executor } from './index.ts';

/**
 * The figures of each bucket (GET /api/monitoring/throughput's `periods`, in `buckets`' order;
 * src/api/throughput.ts defines each figure): start and end as ISO 8601, hours its length,
 * meanTimePerTaskMs in whole ms (null without timed annotations). One round trip per kind
 * (annotations, completed batches). Reads only; throws only database errors.
 */
export async function throughputFigures(db: Executor, buckets: PeriodBucket[]) {
  const perAnnotator = annotationCounts(buckets.map((b, i) => ({ i, from: b.start, to: b.end })));
  const [annotations, batches] = await Promise.all([
    sql<{ i: number; n: number; timed: number; spent: number; annotators: number }>`
      SELECT i, sum(n)::int AS n, sum(timed)::int AS timed, sum(spent)::float8 AS spent,
             count(*) FILTER (WHERE n > 0)::int AS annotators
        FROM (${perAnnotator}) AS c GROUP BY i`.execute(db),
    sql<{ i: number; n: number }>`
      SELECT r.i, count(a.id)::int AS n
        FROM unnest(${buckets.map((_, i) => i)}::int[], ${buckets.map((b) => b.start.toISOString())}::timestamptz[], ${buckets.map((b) => b.end.toISOString())}::timestamptz[]) AS r(i, f, t)
        JOIN assignments a ON a.status = 'completed' AND a.completed_at >= r.f AND a.completed_at < r.t
       GROUP BY r.i`.execute(db),
  ]);
  const ann = new Map(annotations.rows.map((r) => [r.i, r]));
  const done = new Map(batches.rows.map((r) => [r.i, r.n]));
  return buckets.map((b, i) => {
    const a = ann.get(i);
    return {
      period: b.label,
      start: b.start.toISOString(),
      end: b.end.toISOString(),
      hours: (b.end.getTime() - b.start.getTime()) / 3_600_000,
      annotations: a?.n ?? 0,
      completedBatches: done.get(i) ?? 0,
      activeAnnotators: a?.annotators ?? 0,
      meanTimePerTaskMs: a && a.timed > 0 ? Math.round(a.spent / a.timed) : null,
    };
  });
}
