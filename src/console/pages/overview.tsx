/**
 * Overview: the fleet by status with what needs attention as links, annotations today (in the
 * fleet's time zone) and per hour, batches in progress, the most productive annotators today, and
 * the newest events.
 *
 * "Stuck": an annotator in a start phase for longer than half of that phase's time limit
 * (settings fleet.*TimeoutSeconds), or stopping for more than STUCK_STOPPING_SECONDS.
 */
import { annotatorStatusCounts, stuckAnnotators } from '../../db/annotators.ts';
import { batchCounts, listAssignments } from '../../db/assignments.ts';
import { ANNOTATOR_STATUSES } from '../../domain/annotator-status.ts';
import { listEvents } from '../../db/events.ts';
import { fleetMonitoring } from '../../db/monitoring.ts';
import { qualityReport } from '../../db/quality.ts';
import { readFleetSettings } from '../../../orchestrator/annotators-step.ts';
import { Chart, DataTable, Empty, href, plural, Progress, Stat, StatusBadge, TableWrap, Time } from '../components.tsx';
import type { PageContext } from '../index.tsx';
import { EventsTable } from './events.tsx';

export const STUCK_STOPPING_SECONDS = 120;

export async function overviewPage(p: PageContext) {
  const { db } = p.ctx.database;
  const log = p.c.get('log');
  const timeZone = await p.fleetTimeZone();
  const settings = await readFleetSettings(p.ctx);
  const halfLimits = Object.fromEntries(Object.entries(settings.policy.phaseTimeoutSeconds).map(([k, v]) => [k, Math.ceil(v / 2)]));
  const [counts, stuck, batches, monitoring, quality, inProgress, events] = await Promise.all([
    annotatorStatusCounts(db),
    stuckAnnotators(db, halfLimits, STUCK_STOPPING_SECONDS, 10),
    batchCounts(db),
    fleetMonitoring(db, { timeZone, log }),
    qualityReport(db, { log }),
    listAssignments(db, { status: 'in_progress' }, { limit: 10, offset: 0 }),
    listEvents(db, {}, { limit: 12, offset: 0 }),
  ]);
  const live = ANNOTATOR_STATUSES.filter((s) => s !== 'deleted').reduce((n, s) => n + counts[s], 0);
  const top = [...monitoring.annotatorSummaries]
    .filter((a) => a.todayCount > 0)
    .sort((a, b) => b.todayCount - a.todayCount || a.id - b.id)
    .slice(0, 8);
  const peak = monitoring.annotationsPerHour.reduce((m, h) => Math.max(m, h.count), 0);
  const lastHour = monitoring.annotationsPerHour.at(-1)?.count ?? 0;

  return p.render({
    title: 'Overview',
    nav: 'overview',
    topics: ['annotators', 'annotations', 'batches', 'quality'],
    body: (
      <div id="overview" data-live-region>
        <section aria-labelledby="fleet-h">
          <h2 id="fleet-h">Fleet ({plural(live, 'annotator')})</h2>
          <ul class="stats">
            {ANNOTATOR_STATUSES.filter((s) => s !== 'deleted').map((s) => (
              <Stat
                label={s}
                value={counts[s].toLocaleString('en')}
                link={href('/annotators', { status: s })}
                tone={s === 'error' && counts[s] > 0 ? 'bad' : s === 'active' ? 'ok' : undefined}
              />
            ))}
          </ul>
        </section>

        <section aria-labelledby="attention-h">
          <h2 id="attention-h">Needs attention</h2>
          <ul class="stats">
            <Stat label="in error" value={counts.error} link={href('/annotators', { status: 'error' })} tone={counts.error ? 'bad' : 'ok'} />
            <Stat label="stuck starting or stopping" value={stuck.length} link="#stuck" tone={stuck.length ? 'warn' : 'ok'} />
            <Stat label="batches with problems" value={batches.problems} link={href('/batches', { problems: 1 })} tone={batches.problems ? 'warn' : 'ok'} />
            <Stat
              label={`below the ${(quality.accuracyThreshold * 100).toFixed(0)}% accuracy threshold`}
              value={quality.belowThresholdCount}
              link="/quality#below"
              tone={quality.belowThresholdCount ? 'warn' : 'ok'}
            />
          </ul>
          {stuck.length ? (
            <TableWrap label="Stuck annotators">
              <table id="stuck">
                <caption>Stuck annotators, longest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Annotator</th>
                    <th scope="col">Status</th>
                    <th scope="col">Phase</th>
                    <th scope="col">Since</th>
                  </tr>
                </thead>
                <tbody>
                  {stuck.map((a) => (
                    <tr>
                      <td>
                        <a href={`/annotators/${a.id}`}>{a.name}</a>
                      </td>
                      <td>
                        <StatusBadge status={a.status} />
                      </td>
                      <td>{a.startPhase ?? '–'}</td>
                      <td>
                        <Time at={a.since} relative />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : (
            <p id="stuck" class="muted">
              No annotator is stuck.
            </p>
          )}
        </section>

        <section aria-labelledby="work-h">
          <h2 id="work-h">Work</h2>
          <ul class="stats">
            <Stat label={`annotations today (${timeZone} day)`} value={monitoring.todayAnnotations.toLocaleString('en')} />
            <Stat label="annotations this hour" value={lastHour.toLocaleString('en')} />
            <Stat label="batches in progress" value={batches.inProgress} link={href('/batches', { status: 'in_progress' })} />
            <Stat label="batches pending" value={batches.pending} link={href('/batches', { status: 'pending' })} />
          </ul>
          <Chart
            id="chart-per-hour"
            kind="hourly"
            caption="Annotations per hour, last 24 hours"
            data={monitoring.annotationsPerHour.map((h) => [Date.parse(h.hour) / 1000, h.count])}
            summary={`Annotations per hour over the last 24 hours: ${monitoring.annotationsPerHour.reduce((n, h) => n + h.count, 0)} in total, at most ${peak} in one hour, ${lastHour} this hour.`}
          />
        </section>

        <div class="columns">
          <section aria-labelledby="batches-h">
            <h2 id="batches-h">Batches in progress</h2>
            <DataTable
              label="Batches in progress"
              rows={inProgress.rows}
              empty="No batch is in progress."
              columns={[
                { key: 'batch', label: 'Batch', cell: (b) => <a href={href('/batches', { annotatorId: b.annotatorId })}>#{b.id}</a> },
                { key: 'annotator', label: 'Annotator', cell: (b) => <a href={`/annotators/${b.annotatorId}`}>{b.annotatorName}</a> },
                { key: 'workflow', label: 'Workflow', cell: (b) => <a href={`/workflows/${b.workflowId}`}>{b.workflowName}</a> },
                { key: 'progress', label: 'Progress', cell: (b) => <Progress done={b.completedCount} total={b.taskCount} label={`Batch ${b.id} progress`} /> },
              ]}
            />
            {inProgress.total > inProgress.rows.length ? (
              <p>
                <a href={href('/batches', { status: 'in_progress' })}>All {inProgress.total} batches in progress</a>
              </p>
            ) : null}
          </section>
          <section aria-labelledby="top-h">
            <h2 id="top-h">Most annotations today</h2>
            {top.length ? (
              <ol class="ranking">
                {top.map((a) => (
                  <li>
                    <a href={`/annotators/${a.id}`}>{a.name}</a> <span class="muted">{plural(a.todayCount, 'annotation')}</span>
                  </li>
                ))}
              </ol>
            ) : (
              <Empty>No annotations yet today.</Empty>
            )}
          </section>
        </div>

        <section aria-labelledby="events-h">
          <h2 id="events-h">Recent events</h2>
          <EventsTable events={events.data} />
          <p>
            <a href="/events">All events</a>
          </p>
        </section>
      </div>
    ),
  });
}
