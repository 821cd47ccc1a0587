/**
 * Throughput by calendar period, read by GET /api/monitoring/throughput (src/api/throughput.ts,
 * which turns the query into periods): whole hours from the trigger-maintained hourly rollup, only
 * the partial hours at period edges from the events themselves. Takes `db | trx` first.
 */
import { sql } from 'kysely';
import type { PeriodBucket } from '../domain/periods.ts';
import { splitByHour } from '../domain/time-buckets.ts';
import type { Executor } from './index.ts';

/**
 * The figures of each bucket (GET /api/monitoring/throughput's `periods`, in `buckets`' order;
 * src/api/throughput.ts defines each figure): start and end as ISO 8601, hours its length,
 * meanTimePerTaskMs in whole ms (null without timed annotations). One round trip per kind
 * (annotations, completed batches). Reads only; throws only database errors.
 */
export async function throughputFigures(db: Executor, buckets: PeriodBucket[]) {
  const hourRanges: { i: number; from: Date; to: Date }[] = [];
  const edgeRanges: { i: number; from: Date; to: Date }[] = [];
  buckets.forEach((b, i) => {
    const { hours, edges } = splitByHour(b.start, b.end);
    if (hours) hourRanges.push({ i, ...hours });
    for (const e of edges) edgeRanges.push({ i, ...e });
  });
  const arr = (xs: { i: number; from: Date; to: Date }[]) =>
    sql`unnest(${xs.map((x) => x.i)}::int[], ${xs.map((x) => x.from.toISOString())}::timestamptz[], ${xs.map((x) => x.to.toISOString())}::timestamptz[])`;
  const [annotations, batches] = await Promise.all([
    sql<{ i: number; n: number; timed: number; spent: number; annotators: number }>`
      WITH parts AS (
        SELECT r.i, h.annotator_id, h.created_count AS n, h.timed_count AS timed, h.time_spent_ms AS spent
          FROM ${arr(hourRanges)} AS r(i, f, t)
          JOIN annotation_hourly h ON h.hour >= r.f AND h.hour < r.t
        UNION ALL
        SELECT r.i, ev.annotator_id, 1, (ev.time_spent_ms IS NOT NULL)::int, coalesce(ev.time_spent_ms, 0)
          FROM ${arr(edgeRanges)} AS r(i, f, t)
          JOIN annotation_events ev ON ev.event_type = 'annotation_created' AND ev.created_at >= r.f AND ev.created_at < r.t
      )
      SELECT i, sum(n)::int AS n, sum(timed)::int AS timed, sum(spent)::float8 AS spent, count(DISTINCT annotator_id)::int AS annotators
        FROM parts GROUP BY i`.execute(db),
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
