/** Events: the audit log (container and annotation events), newest first, filterable. */
import { EVENT_TYPES, listEvents } from '../../api/events.ts';
import { Empty, href, Pager, TableWrap, Time } from '../components.tsx';
import type { PageContext } from '../index.tsx';
import { intParam, pageParams } from './params.ts';

type EventItem = Awaited<ReturnType<typeof listEvents>>['data'][number];

function describe(e: EventItem): string {
  if (e.type === 'container') {
    const move = e.fromStatus && e.toStatus && e.fromStatus !== e.toStatus ? `${e.fromStatus} → ${e.toStatus}` : '';
    return [move, e.message].filter(Boolean).join(': ');
  }
  const parts = [`task ${e.lsTaskId ?? '?'}`, e.assignmentId ? `batch #${e.assignmentId}` : null, e.timeSpentMs !== null ? `${(e.timeSpentMs / 1000).toFixed(1)} s` : null, `via ${e.source}`];
  return parts.filter(Boolean).join(', ');
}

export function EventsTable({ events, showAnnotator = true }: { events: EventItem[]; showAnnotator?: boolean }) {
  if (!events.length) return <Empty>No events.</Empty>;
  return (
    <TableWrap label="Events">
      <table class="events">
        <thead>
          <tr>
            <th scope="col">When</th>
            {showAnnotator ? <th scope="col">Annotator</th> : null}
            <th scope="col">Event</th>
            <th scope="col">What happened</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr>
              <td class="nowrap">
                <Time at={e.createdAt} />
              </td>
              {showAnnotator ? (
                <td>
                  <a href={`/annotators/${e.annotatorId}`}>{e.annotator.name}</a>
                </td>
              ) : null}
              <td>
                <span class={`tag ${e.type}`}>{e.eventType}</span>
              </td>
              <td class="wrap">{describe(e)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

export async function eventsPage(p: PageContext) {
  const { db } = p.ctx.database;
  const type = (EVENT_TYPES as readonly string[]).includes(p.query.type ?? '') ? (p.query.type as (typeof EVENT_TYPES)[number]) : undefined;
  const annotatorId = intParam(p.query.annotatorId);
  const page = pageParams(p.query, 50);
  const { data, total } = await listEvents(db, { type, annotatorId }, page);
  const link = (offset: number) => href('/events', { type, annotatorId, offset: offset || undefined });
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
          <div class="field">
            <label for="ev-annotator">Annotator id</label>
            <input id="ev-annotator" name="annotatorId" type="number" min={1} value={annotatorId ? String(annotatorId) : ''} />
          </div>
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
          <EventsTable events={data} />
          <Pager total={total} limit={page.limit} offset={page.offset} link={link} />
        </div>
      </>
    ),
  });
}
