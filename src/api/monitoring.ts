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
 * "Today" is read from trigger-maintained rollups per annotator: whole UTC days from
 * annotation_daily (migrations/0033), the hours a zone's day adds to or leaves out of them from
 * annotation_hourly (migrations/0004_monitoring.sql), and annotation_events only for the partial
 * hours at the edges of a day in a zone whose midnight is not a whole UTC hour (the plan:
 * splitForRollups in src/domain/time-buckets.ts). A UTC day is one row per annotator, another
 * zone's a few (at most 12 hourly rows per partially covered UTC day), so the cost follows the
 * annotators, not the events nor the hours elapsed today; counts of
 * annotators and assignments come from the counters of migrations/0014_rollups.sql plus the open
 * work (src/db/counts.ts), so they do not grow with the number of assignments. The fleet's
 * annotationsPerHour reads annotation_fleet_hourly and its unfolded deltas (migrations/0026): 24
 * rows whatever the fleet's size; completion rates read the open work per (workflow, annotator)
 * of the same migration instead of the open assignments.
 *
 * The figures are computed by src/db/monitoring.ts (shared with the console); this file documents
 * and serves them (the typed responses keep the repository's result types to these schemas).
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { annotatorMonitoring, fleetMonitoring } from '../db/monitoring.ts';
import { TIME_BUCKETS } from '../domain/time-buckets.ts';
import { Coalesced } from '../domain/workflow-graph.ts';
import { errors, IdParam, jsonContent, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

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
