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
import type { AppContext } from '../context.ts';
import { monitoringTimeZone } from '../db/monitoring.ts';
import { throughputFigures } from '../db/throughput.ts';
import { defaultFrom, formatLocalDate, localDateOf, parseLocalDate, PERIODS, periodBuckets, type Period, type PeriodBucket } from '../domain/periods.ts';
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
