/**
 * GET /api/monitoring/throughput?period=day|week|month&from=YYYY-MM-DD&to=YYYY-MM-DD — throughput by
 * calendar period in the fleet's time zone (setting `monitoring.timeZone`), exact across clock
 * changes (src/domain/periods.ts: a day is 23–25 hours). Each period:
 * - annotations: `annotation_created` events recorded in it (as GET /api/monitoring counts them);
 * - completedBatches: batches whose completion time falls in it;
 * - activeAnnotators: distinct annotators with at least one annotation in it;
 * - meanTimePerTaskMs: mean time spent of its annotations that carry one (whole ms; null if none).
 * `from` and `to` are local dates, inclusive, and the periods containing them bound the answer
 * (default: the last 30 days, 12 weeks or 12 months up to today); at most 1000 periods.
 * Whole hours are read from the trigger-maintained hourly rollup and only the partial hours at
 * period edges (zones whose midnight is not a whole UTC hour) from the events themselves.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import type { Executor } from '../db/index.ts';
import { monitoringTimeZone } from '../db/monitoring.ts';
import { defaultFrom, formatLocalDate, localDateOf, parseLocalDate, PERIODS, periodBuckets, type Period, type PeriodBucket } from '../domain/periods.ts';
import { splitByHour } from '../domain/time-buckets.ts';
import { badRequest } from '../errors.ts';
import { errors, jsonContent, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const LocalDateParam = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD')
  .optional()
  .openapi({ format: 'date', description: 'A local date in the fleet time zone' });
const ThroughputQuery = z.object({
  period: z.enum(PERIODS).optional().openapi({ default: 'day' }),
  from: LocalDateParam,
  to: LocalDateParam,
});

const Bucket = z
  .object({
    period: z.string().openapi({ example: '2026-03-29', description: 'YYYY-MM-DD, YYYY-Www (ISO week) or YYYY-MM' }),
    start: Timestamp,
    end: Timestamp,
    hours: z.number().openapi({ description: 'Length in hours (23 or 25 on a clock-change day)' }),
    annotations: z.number().int(),
    completedBatches: z.number().int(),
    activeAnnotators: z.number().int(),
    meanTimePerTaskMs: z.number().int().nullable(),
  })
  .openapi('ThroughputPeriod');
export const ThroughputSchema = z
  .object({
    period: z.enum(PERIODS),
    timeZone: z.string(),
    from: z.string().openapi({ format: 'date' }),
    to: z.string().openapi({ format: 'date' }),
    periods: z.array(Bucket),
  })
  .openapi('Throughput');

/** The figures of each bucket, in one round trip per kind. */
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

export function throughputRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/monitoring/throughput',
      tags: ['monitoring'],
      summary: 'Throughput by day, ISO week or month in the fleet time zone: annotations, completed batches, active annotators, mean time per task',
      request: { query: ThroughputQuery },
      responses: { 200: jsonContent(ThroughputSchema, 'Throughput by period'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const period: Period = q.period ?? 'day';
      const tz = await monitoringTimeZone(db, c.get('log'));
      const parse = (name: 'from' | 'to', v: string | undefined) => {
        if (v === undefined) return undefined;
        const d = parseLocalDate(v);
        if (d === null) throw badRequest(`${name}: ${v} is not a calendar date`);
        return d;
      };
      const to = parse('to', q.to) ?? localDateOf(new Date(), tz);
      const from = parse('from', q.from) ?? defaultFrom(period, to);
      if (from > to) throw badRequest('from: must not be after to');
      let buckets: PeriodBucket[];
      try {
        buckets = periodBuckets(period, from, to, tz, 1000);
      } catch (err) {
        if (err instanceof RangeError) throw badRequest(`from..to spans more than 1000 ${period}s`);
        throw err;
      }
      return c.json({ period, timeZone: tz, from: formatLocalDate(from), to: formatLocalDate(to), periods: await throughputFigures(db, buckets) }, 200);
    },
  );

  return app;
}
