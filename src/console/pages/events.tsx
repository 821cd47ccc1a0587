/** Events: the audit log (container and annotation events), newest first, filterable. */
import { EVENT_TYPES, listEvents } from '../../db/events.ts';
import { DataTable, href, Time, type Pagination } from '../components.tsx';
import type { PageContext } from '../index.tsx';
import { AnnotatorFilterField, annotatorIdOf, resolveAnnotatorFilter } from './annotator-filter.tsx';
import { pageParams } from './params.ts';

type EventItem = Awaited<ReturnType<typeof listEvents>>['data'][number];

function describe(e: EventItem): string {
  if (e.type === 'container') {
    const move = e.fromStatus && e.toStatus && e.fromStatus !== e.toStatus ? `${e.fromStatus} → ${e.toStatus}` : '';
    return [move, e.message].filter(Boolean).join(': ');
  }
  const parts = [`task ${e.lsTaskId ?? '?'}`, e.assignmentId ? `batch #${e.assignmentId}` : null, e.timeSpentMs !== null ? `${(e.timeSpentMs / 1000).toFixed(1)} s` : null, `via ${e.source}`];
  return parts.filter(Boolean).join(', ');
}

/** The audit log as a table (the events page, the overview, an annotator's page). */
export function EventsTable({ events, showAnnotator = true, pager }: { events: EventItem[]; showAnnotator?: boolean; pager?: Pagination }) {
  return (
    <DataTable
      label="Events"
      class="events"
      rows={events}
      empty="No events."
      pager={pager}
      columns={[
        { key: 'when', label: 'When', class: 'nowrap', cell: (e) => <Time at={e.createdAt} /> },
        showAnnotator && { key: 'annotator', label: 'Annotator', cell: (e) => <a href={`/annotators/${e.annotatorId}`}>{e.annotator.name}</a> },
        { key: 'event', label: 'Event', cell: (e) => <span class={`tag ${e.type}`}>{e.eventType}</span> },
        { key: 'what', label: 'What happened', class: 'wrap', cell: describe },
      ]}
    />
  );
}

export async function eventsPage(p: PageContext) {
  const { db } = p.ctx.database;
  const type = (EVENT_TYPES as readonly string[]).includes(p.query.type ?? '') ? (p.query.type as (typeof EVENT_TYPES)[number]) : undefined;
  const annotator = await resolveAnnotatorFilter(db, p.query);
  const annotatorId = annotatorIdOf(annotator);
  const page = pageParams(p.query, 50);
  const { data, total } = annotatorId === null ? { data: [], total: 0 } : await listEvents(db, { type, annotatorId }, page);
  const text = annotator.kind === 'unresolved' ? annotator.text : undefined;
  const link = (offset: number) => href('/events', { type, annotatorId: annotatorId ?? undefined, annotator: text, offset: offset || undefined });
  return p.render({
    title: 'Events',
    nav: 'events',
    topics: ['annotators', 'annotations'],
    body: (
      <>
        <form class="filters" method="get" action="/events" aria-label="Filter events">
          <div class="field">
            <label for="ev-type">Type</label>
            <select id="ev-type" name="type">
              <option value="">Container and annotation</option>
              {EVENT_TYPES.map((t) => (
                <option value={t} selected={t === type}>
                  {t}
                </option>
              ))}
            </select>
          </div>
          <AnnotatorFilterField id="ev-annotator" choice={annotator} link={(id) => href('/events', { type, annotatorId: id })} />
          <div class="form-actions">
            <button type="submit" class="button">
              Filter
            </button>
            <a class="button" href="/events">
              Clear
            </a>
          </div>
        </form>
        <div id="events-list" data-live-region>
          <EventsTable events={data} pager={{ ...page, total, link }} />
        </div>
      </>
    ),
  });
}
