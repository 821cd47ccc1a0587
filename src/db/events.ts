/**
 * The audit log's reads — container lifecycle events and annotation events merged, newest first —
 * shared by GET /api/events (src/api/events.ts) and the console's overview and events pages, so
 * the merge and the total are written once. Takes `db | trx` first; events come back in the API's
 * shape (timestamps as ISO 8601 strings).
 *
 * The merge happens in SQL so it stays fast with millions of annotation events: each table is
 * read through its (created_at DESC, id DESC) or (annotator_id, created_at DESC) index, only the
 * first `offset + limit` rows of each, then the two short lists are merged, paged, and only the
 * page is joined to annotators. The unfiltered total is read from event_counts (kept by triggers
 * in the writing transaction: exact), one annotator's is counted through its index.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Executor } from './index.ts';
import type { Page } from './list-page.ts';

/** The two kinds of event, as GET /api/events' `type` filter and each event's `type` name them. */
export const EVENT_TYPES = ['container', 'annotation'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

interface EventRow {
  type: EventType;
  id: number;
  annotatorId: number;
  annotatorName: string;
  eventType: string;
  createdAt: Date;
  fromStatus: string | null;
  toStatus: string | null;
  message: string | null;
  details: unknown;
  assignmentId: number | null;
  lsProjectId: number | null;
  lsTaskId: number | null;
  lsAnnotationId: number | null;
  timeSpentMs: number | null;
  source: 'webhook' | 'reconcile' | null;
}

/** An event row in GET /api/events' shape (an Event: ContainerEvent or AnnotationEvent). */
function toEvent(r: EventRow) {
  const common = {
    id: r.id,
    annotatorId: r.annotatorId,
    annotator: { id: r.annotatorId, name: r.annotatorName },
    eventType: r.eventType,
    createdAt: r.createdAt.toISOString(),
  };
  if (r.type === 'container') {
    return { type: 'container' as const, ...common, fromStatus: r.fromStatus, toStatus: r.toStatus, message: r.message, details: r.details ?? null };
  }
  return {
    type: 'annotation' as const,
    ...common,
    assignmentId: r.assignmentId,
    lsProjectId: r.lsProjectId,
    lsTaskId: r.lsTaskId,
    lsAnnotationId: r.lsAnnotationId!,
    timeSpentMs: r.timeSpentMs,
    source: r.source ?? 'webhook',
  };
}

const filterBy = (annotatorId: number | undefined) => (annotatorId === undefined ? sql`` : sql`WHERE annotator_id = ${annotatorId}`);

/** The newest `window` rows of one table, in the merged column layout. */
function branch(type: EventType, annotatorId: number | undefined, window: number): RawBuilder<unknown> {
  const columns =
    type === 'container'
      ? sql`'container'::text AS type, id, annotator_id, event_type, created_at,
            from_status::text, to_status::text, message, details,
            NULL::integer AS assignment_id, NULL::integer AS ls_project_id, NULL::integer AS ls_task_id,
            NULL::integer AS ls_annotation_id, NULL::integer AS time_spent_ms, NULL::text AS source`
      : sql`'annotation'::text AS type, id, annotator_id, event_type, created_at,
            NULL::text AS from_status, NULL::text AS to_status, NULL::text AS message, NULL::jsonb AS details,
            assignment_id, ls_project_id, ls_task_id, ls_annotation_id, time_spent_ms, source::text`;
  const table = type === 'container' ? sql.raw('container_events') : sql.raw('annotation_events');
  return sql`(SELECT ${columns} FROM ${table} ${filterBy(annotatorId)} ORDER BY created_at DESC, id DESC LIMIT ${window})`;
}

/**
 * One page of events, newest first (created_at, then id, then type, descending): both tables
 * merged unless `filter.type` picks one, only `filter.annotatorId`'s when given; `data` are the
 * events in GET /api/events' shape and `total` how many match the filter (exact).
 * Reads only; throws only database errors.
 */
export async function listEvents(db: Executor, filter: { type?: EventType; annotatorId?: number }, page: Page) {
  const types = filter.type ? [filter.type] : [...EVENT_TYPES];
  const window = page.offset + page.limit;
  const union = sql.join(
    types.map((t) => branch(t, filter.annotatorId, window)),
    sql` UNION ALL `,
  );
  const rowsQuery = sql<EventRow>`
    SELECT e.*, a.name AS annotator_name
    FROM (SELECT * FROM (${union}) u ORDER BY created_at DESC, id DESC, type LIMIT ${page.limit} OFFSET ${page.offset}) e
    JOIN annotators a ON a.id = e.annotator_id
    ORDER BY e.created_at DESC, e.id DESC, e.type`;
  // Unfiltered: the trigger-kept counter (migration 0025), exact and a few rows whatever the
  // history; one annotator's: counted through its (annotator_id, created_at) index.
  const totalQuery =
    filter.annotatorId === undefined
      ? sql<{ total: number }>`SELECT coalesce(sum(events), 0)::bigint AS total FROM event_counts WHERE kind IN (${sql.join(types)})`
      : sql<{ total: number }>`SELECT (${sql.join(
          types.map((t) => sql`(SELECT count(*) FROM ${sql.raw(t === 'container' ? 'container_events' : 'annotation_events')} ${filterBy(filter.annotatorId)})`),
          sql` + `,
        )})::bigint AS total`;
  const [rows, total] = await Promise.all([rowsQuery.execute(db), totalQuery.execute(db)]);
  return { data: rows.rows.map(toEvent), total: Number(total.rows[0]!.total) };
}
