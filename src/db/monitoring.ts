/**
 * Monitoring figures — the fleet's throughput and one annotator's — shared by GET /api/monitoring,
 * GET /api/monitoring/annotator/:id (src/api/monitoring.ts, whose header defines every figure and
 * the tables read) and the console's overview and annotator pages, so each figure is computed once.
 * Functions take `db | trx` first; timestamps come back as ISO 8601 strings, the API's form.
 */
import { sql } from 'kysely';
import {
  formatUptime,
  isValidTimeZone,
  lastHours,
  ratePerHour,
  ratio,
  startOfDay,
  startOfNextDay,
  type TimeBucket,
} from '../domain/time-buckets.ts';
import { notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { getSetting } from '../settings.ts';
import { annotationCounts, type RangeCounts } from './annotation-counts.ts';
import { annotationsPerHour } from './annotators.ts';
import { annotatorAssignmentStats, annotatorCompletion, countAnnotators, countAssignments } from './counts.ts';
import type { Executor } from './index.ts';

const HOUR_MS = 3_600_000;

/** GET /api/monitoring's body (the route's MonitoringSchema; src/api/monitoring.ts defines each figure). */
export interface Monitoring {
  activeAnnotators: number;
  todayAnnotations: number;
  inProgressAssignments: number;
  /** The last 24 whole UTC hours, oldest first; `hour` is the hour's start (ISO 8601). */
  annotationsPerHour: { hour: string; count: number }[];
  /** One per annotator not deleted, by id; avgTimeMs in ms (null without timed annotations today). */
  annotatorSummaries: { id: number; name: string; todayCount: number; avgTimeMs: number | null; completionRate: number }[];
}

/** GET /api/monitoring/annotator/:id's body (the route's AnnotatorMonitoringSchema). */
export interface AnnotatorMonitoring {
  annotator: { id: number; name: string; status: string };
  /** "4h 32m"-style time since the last transition to active; null unless active. */
  containerUptime: string | null;
  todayAnnotations: number;
  /** Today's annotations ÷ hours elapsed today (at least 1), 2 decimals. */
  annotationsPerHour: number;
  timeDistribution: { bucket: TimeBucket; count: number }[];
  assignmentStats: { total: number; completed: number; inProgress: number };
  /** The newest 20 annotation events of any type; createdAt ISO 8601. */
  recentEvents: { eventType: string; lsTaskId: number | null; timeSpentMs: number | null; createdAt: string }[];
}

export interface MonitoringOptions {
  /** The instant the figures are for (tests pin it); default now. */
  now?: Date;
  /** IANA time zone of "today"; default the `monitoring.timeZone` setting. */
  timeZone?: string;
  log?: Pick<Logger, 'warn'>;
}

/**
 * The `monitoring.timeZone` setting (an IANA zone name), or 'UTC' when it is unset or not a known
 * zone (then warns on `log`). Read by the monitoring and throughput figures and the console's "today".
 */
export async function monitoringTimeZone(db: Executor, log?: Pick<Logger, 'warn'>): Promise<string> {
  const tz = await getSetting(db, 'monitoring.timeZone');
  if (isValidTimeZone(tz)) return tz;
  log?.warn({ key: 'monitoring.timeZone', value: tz }, 'ignoring an invalid time zone setting; using UTC');
  return 'UTC';
}

type TodayRow = Omit<RangeCounts, 'i'>;

/**
 * Annotations in [from, to) per annotator (optionally one), exact (src/db/annotation-counts.ts: a
 * UTC day is one row per annotator; another zone's day a few, at most 12 hourly rows per partially
 * covered UTC day). Annotators with no annotation in the range may be absent or have n = 0.
 */
async function annotationsBetween(db: Executor, from: Date, to: Date, annotatorId?: number): Promise<TodayRow[]> {
  return (await annotationCounts([{ i: 0, from, to }], annotatorId).execute(db)).rows;
}

const avgMs = (r: TodayRow | undefined) => (r && r.timed > 0 ? Math.round(r.spent / r.timed) : null);

/**
 * The fleet's figures (GET /api/monitoring's body) for `opts.now` (default now), "today" in
 * `opts.timeZone` (default the `monitoring.timeZone` setting). Reads only; throws only database errors.
 */
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

/**
 * Annotator `id`'s figures (GET /api/monitoring/annotator/:id's body) for `opts.now` (default now),
 * "today" in `opts.timeZone` (default the `monitoring.timeZone` setting).
 * Errors: notFound('Annotator') (404) when there is no annotator `id`.
 */
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
      createdAt: e.createdAt.toISOString(),
    })),
  };
}
