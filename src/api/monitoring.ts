/**
 * Monitoring: fleet throughput (GET /api/monitoring) and one annotator (GET /api/monitoring/annotator/:id).
 *
 * Every figure, precisely (README "Monitoring" mirrors this):
 * - "today" is [start of today, start of tomorrow) in the time zone of setting `monitoring.timeZone`
 *   (IANA name, default UTC; an invalid stored value falls back to UTC with a warning).
 * - an annotation is an `annotation_created` event, timed by when LabelFleet recorded it
 *   (annotation_events.created_at); updates and deletions are not annotations.
 * - activeAnnotators: annotators whose status is `active`.
 * - todayAnnotations: annotations today, by every annotator (deleted ones included).
 * - inProgressAssignments: assignments whose status is `in_progress`.
 * - annotationsPerHour (fleet): the last 24 whole UTC hours, oldest first, the last one the hour
 *   containing now; each {hour: ISO start, count}; hours without annotations are 0.
 * - annotatorSummaries: one per annotator that is not deleted, by id: todayCount (annotations
 *   today), avgTimeMs (mean time_spent_ms of today's annotations that carry one, rounded to a whole
 *   ms; null when none), completionRate (completed ÷ assignments not cancelled, 4 decimals; 0 when
 *   none).
 * - annotator: containerUptime ("4h 32m", "45m", "2d 3h 0m": time since the last transition to
 *   active — the later of status_changed_at and the newest container event with to_status active;
 *   null unless the status is active), todayAnnotations, annotationsPerHour (a rate: today's
 *   annotations ÷ hours elapsed today, at least 1; 2 decimals), timeDistribution (today's timed
 *   annotations in [0,10) [10,30) [30,60) [60,∞) seconds), assignmentStats (all assignments; of
 *   them completed and in_progress), recentEvents (the newest 20 annotation events of any type).
 *
 * Reads go to the trigger-maintained hourly rollup (migrations/0004_monitoring.sql) for whole
 * hours and to annotation_events only for the partial hours at the edges of a day in a zone whose
 * midnight is not a whole UTC hour, so the cost does not grow with the number of events; counts of
 * annotators and assignments come from the counters of migrations/0014_rollups.sql plus the open
 * work (src/db/counts.ts), so they do not grow with the number of assignments. The fleet's
 * annotationsPerHour reads annotation_fleet_hourly and its unfolded deltas (migrations/0026): 24
 * rows whatever the fleet's size; completion rates read the open work per (workflow, annotator)
 * of the same migration instead of the open assignments.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { annotationsPerHour } from '../db/annotators.ts';
import { annotatorAssignmentStats, annotatorCompletion, countAnnotators, countAssignments } from '../db/counts.ts';
import type { Executor } from '../db/index.ts';
import {
  formatUptime,
  isValidTimeZone,
  lastHours,
  ratePerHour,
  ratio,
  splitByHour,
  startOfDay,
  startOfNextDay,
  TIME_BUCKETS,
} from '../domain/time-buckets.ts';
import { Coalesced } from '../domain/workflow-graph.ts';
import { notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { getSetting } from '../settings.ts';
import { errors, IdParam, isoRequired, jsonContent, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const HOUR_MS = 3_600_000;

const HourCount = z.object({ hour: Timestamp, count: z.number().int() }).openapi('HourCount');
const AnnotatorSummary = z
  .object({
    id: z.number().int(),
    name: z.string(),
    todayCount: z.number().int(),
    avgTimeMs: z.number().int().nullable(),
    completionRate: z.number(),
  })
  .openapi('AnnotatorSummary');
export const MonitoringSchema = z
  .object({
    activeAnnotators: z.number().int(),
    todayAnnotations: z.number().int(),
    inProgressAssignments: z.number().int(),
    annotationsPerHour: z.array(HourCount),
    annotatorSummaries: z.array(AnnotatorSummary),
  })
  .openapi('Monitoring');

const AnnotationEventSchema = z.object({
  eventType: z.string(),
  lsTaskId: z.number().int().nullable(),
  timeSpentMs: z.number().int().nullable(),
  createdAt: Timestamp,
});
export const AnnotatorMonitoringSchema = z
  .object({
    annotator: z.object({ id: z.number().int(), name: z.string(), status: z.string() }),
    containerUptime: z.string().nullable(),
    todayAnnotations: z.number().int(),
    annotationsPerHour: z.number(),
    timeDistribution: z.array(z.object({ bucket: z.enum(TIME_BUCKETS), count: z.number().int() })),
    assignmentStats: z.object({ total: z.number().int(), completed: z.number().int(), inProgress: z.number().int() }),
    recentEvents: z.array(AnnotationEventSchema),
  })
  .openapi('AnnotatorMonitoring');

export type Monitoring = z.infer<typeof MonitoringSchema>;
export type AnnotatorMonitoring = z.infer<typeof AnnotatorMonitoringSchema>;

export interface MonitoringOptions {
  /** The instant the figures are for (tests pin it); default now. */
  now?: Date;
  /** IANA time zone of "today"; default the `monitoring.timeZone` setting. */
  timeZone?: string;
  log?: Pick<Logger, 'warn'>;
}

/** The `monitoring.timeZone` setting, or UTC when it is unset or not a known IANA zone. */
export async function monitoringTimeZone(db: Executor, log?: Pick<Logger, 'warn'>): Promise<string> {
  const tz = await getSetting(db, 'monitoring.timeZone');
  if (isValidTimeZone(tz)) return tz;
  log?.warn({ key: 'monitoring.timeZone', value: tz }, 'ignoring an invalid time zone setting; using UTC');
  return 'UTC';
}

interface TodayRow {
  annotatorId: number;
  n: number;
  timed: number;
  spent: number;
  b0: number;
  b1: number;
  b2: number;
  b3: number;
}

/**
 * Annotations in [from, to) per annotator (optionally one): whole hours from the rollup, partial
 * hours at the edges from the events themselves.
 */
async function annotationsBetween(db: Executor, from: Date, to: Date, annotatorId?: number): Promise<TodayRow[]> {
  const { hours, edges } = splitByHour(from, to);
  const parts = [];
  const who = (col: string) => (annotatorId === undefined ? sql`true` : sql`${sql.ref(col)} = ${annotatorId}`);
  if (hours) {
    parts.push(sql`
      SELECT annotator_id, created_count AS n, timed_count AS timed, time_spent_ms AS spent,
             under10s AS b0, under30s AS b1, under60s AS b2, over60s AS b3
        FROM annotation_hourly
       WHERE hour >= ${hours.from} AND hour < ${hours.to} AND ${who('annotator_id')}`);
  }
  for (const e of edges) {
    parts.push(sql`
      SELECT annotator_id, 1 AS n, (time_spent_ms IS NOT NULL)::int AS timed, coalesce(time_spent_ms, 0)::bigint AS spent,
             (time_spent_ms < 10000)::int AS b0,
             (time_spent_ms >= 10000 AND time_spent_ms < 30000)::int AS b1,
             (time_spent_ms >= 30000 AND time_spent_ms < 60000)::int AS b2,
             (time_spent_ms >= 60000)::int AS b3
        FROM annotation_events
       WHERE event_type = 'annotation_created' AND created_at >= ${e.from} AND created_at < ${e.to} AND ${who('annotator_id')}`);
  }
  if (!parts.length) return [];
  const { rows } = await sql<TodayRow>`
    SELECT annotator_id, sum(n)::int AS n, sum(timed)::int AS timed, sum(spent)::float8 AS spent,
           coalesce(sum(b0), 0)::int AS b0, coalesce(sum(b1), 0)::int AS b1,
           coalesce(sum(b2), 0)::int AS b2, coalesce(sum(b3), 0)::int AS b3
      FROM (${sql.join(parts, sql` UNION ALL `)}) AS x
     GROUP BY annotator_id`.execute(db);
  return rows;
}

const avgMs = (r: TodayRow | undefined) => (r && r.timed > 0 ? Math.round(r.spent / r.timed) : null);

/** GET /api/monitoring's body, for `now` in time zone `timeZone`. */
export async function fleetMonitoring(db: Executor, opts: MonitoringOptions = {}): Promise<Monitoring> {
  const now = opts.now ?? new Date();
  const tz = opts.timeZone ?? (await monitoringTimeZone(db, opts.log));
  const dayStart = startOfDay(now, tz);
  const dayEnd = startOfNextDay(now, tz);
  const hours = lastHours(now, 24);
  const windowStart = hours[0]!;
  const windowEnd = new Date(hours[23]!.getTime() + HOUR_MS);

  const [active, inProgress, perHour, today, annotators] = await Promise.all([
    countAnnotators(db, { status: 'active' }),
    countAssignments(db, { status: 'in_progress' }),
    annotationsPerHour(db, windowStart, windowEnd),
    annotationsBetween(db, dayStart, dayEnd),
    annotatorCompletion(db),
  ]);

  const todayBy = new Map(today.map((r) => [r.annotatorId, r]));
  return {
    activeAnnotators: active,
    todayAnnotations: today.reduce((sum, r) => sum + r.n, 0),
    inProgressAssignments: inProgress,
    annotationsPerHour: perHour.map((h) => ({ hour: h.hour.toISOString(), count: h.count })),
    annotatorSummaries: annotators.map((a) => {
      const t = todayBy.get(a.id);
      return {
        id: a.id,
        name: a.name,
        todayCount: t?.n ?? 0,
        avgTimeMs: avgMs(t),
        completionRate: ratio(a.completed, a.total - a.cancelled),
      };
    }),
  };
}

/** GET /api/monitoring/annotator/:id's body; 404 when there is no such annotator. */
export async function annotatorMonitoring(db: Executor, id: number, opts: MonitoringOptions = {}): Promise<AnnotatorMonitoring> {
  const now = opts.now ?? new Date();
  const annotator = await db
    .selectFrom('annotators')
    .select([
      'id',
      'name',
      'status',
      'statusChangedAt',
      sql<Date | null>`(SELECT max(created_at) FROM container_events
                         WHERE annotator_id = annotators.id AND to_status = 'active')`.as('lastActiveEventAt'),
    ])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!annotator) throw notFound('Annotator');
  const tz = opts.timeZone ?? (await monitoringTimeZone(db, opts.log));
  const dayStart = startOfDay(now, tz);
  const dayEnd = startOfNextDay(now, tz);

  const [today, stats, recent] = await Promise.all([
    annotationsBetween(db, dayStart, dayEnd, id),
    annotatorAssignmentStats(db, id),
    db
      .selectFrom('annotationEvents')
      .select(['eventType', 'lsTaskId', 'timeSpentMs', 'createdAt'])
      .where('annotatorId', '=', id)
      .orderBy('createdAt', 'desc')
      .orderBy('id', 'desc')
      .limit(20)
      .execute(),
  ]);

  let containerUptime: string | null = null;
  if (annotator.status === 'active') {
    const since = Math.max(
      new Date(annotator.statusChangedAt).getTime(),
      annotator.lastActiveEventAt ? new Date(annotator.lastActiveEventAt).getTime() : 0,
    );
    containerUptime = formatUptime(now.getTime() - since);
  }
  const t = today[0];
  const todayCount = t?.n ?? 0;
  return {
    annotator: { id: annotator.id, name: annotator.name, status: annotator.status },
    containerUptime,
    todayAnnotations: todayCount,
    annotationsPerHour: ratePerHour(todayCount, dayStart, now),
    timeDistribution: [
      { bucket: '0-10s', count: t?.b0 ?? 0 },
      { bucket: '10-30s', count: t?.b1 ?? 0 },
      { bucket: '30-60s', count: t?.b2 ?? 0 },
      { bucket: '60s+', count: t?.b3 ?? 0 },
    ],
    assignmentStats: { total: stats[0]?.total ?? 0, completed: stats[0]?.completed ?? 0, inProgress: stats[0]?.inProgress ?? 0 },
    recentEvents: recent.map((e) => ({
      eventType: e.eventType,
      lsTaskId: e.lsTaskId,
      timeSpentMs: e.timeSpentMs,
      createdAt: isoRequired(e.createdAt),
    })),
  };
}

export function monitoringRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;
  // Requests at the same moment share one computation, never one older than themselves (as the
  // workflow graph does): a dashboard refreshed by many admins costs one read, not one each.
  const fleet = new Coalesced(() => fleetMonitoring(db, { log: ctx.logger }));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/monitoring',
      tags: ['monitoring'],
      summary: 'Fleet throughput: active annotators, annotations today and per hour, per-annotator summaries',
      responses: { 200: jsonContent(MonitoringSchema, 'Monitoring'), 401: errors[401] },
    }),
    async (c) => c.json(await fleet.get(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/monitoring/annotator/{id}',
      tags: ['monitoring'],
      summary: "One annotator's uptime, throughput today, time distribution, assignments and recent events",
      request: { params: IdParam },
      responses: {
        200: jsonContent(AnnotatorMonitoringSchema, 'Annotator monitoring'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
      },
    }),
    async (c) => c.json(await annotatorMonitoring(db, c.req.valid('param').id, { log: c.get('log') }), 200),
  );

  return app;
}
