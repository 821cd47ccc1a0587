/**
 * Annotators: the table (server-side paging, sorting, search by name or email, filters by status
 * and role — fast at 10,000 rows), bulk create and delete, start / stop; and one annotator's page
 * with live start progress, container events, charts, batches, gold results and rejections.
 */
import { ANNOTATOR_STATUSES } from '../../domain/annotator-status.ts';
import { startProgress, type StartProgress } from '../../domain/start-progress.ts';
import {
  accuracyOf,
  ANNOTATOR_SORTS,
  annotationsPerHour,
  containerEventsOf,
  goldResultsOf,
  listAnnotators,
  readStartProgress,
  rejectionsOf,
  type AnnotatorListRow,
  type AnnotatorSort,
} from '../../db/annotators.ts';
import { listAssignments } from '../../db/assignments.ts';
import { roleOptions } from '../../db/catalog.ts';
import { findAnnotator, type AnnotatorRow } from '../../workflows/annotators.ts';
import { annotatorMonitoring } from '../../db/monitoring.ts';
import { publicUrl } from '../../../orchestrator/instance-spec.ts';
import { IMPORT_MAX } from '../../domain/annotator-import.ts';
import {
  ActionButton,
  ApiForm,
  Chart,
  DataTable,
  Empty,
  Field,
  href,
  percent,
  plural,
  RoleLabel,
  SelectField,
  Stat,
  StatusBadge,
  Time,
  type TableColumn,
} from '../components.tsx';
import { pathId, type PageContext } from '../index.tsx';
import { escapeHtml, raw } from '../html.ts';
import type { AppContext } from '../../context.ts';
import { BatchesTable } from './batches.tsx';
import { enumParam, intParam, pageParams } from './params.ts';

export const ANNOTATORS_PAGE_SIZE = 50;

/**
 * The annotators table: sortable columns (keys as ANNOTATOR_SORTS) and the row's actions. Cells
 * are built as strings (html.ts), every value from data through escapeHtml: 50 rows of them are
 * most of the page (issue 12's benchmark).
 */
const annotatorColumns = (ctx: AppContext): TableColumn<AnnotatorListRow>[] => [
  { key: 'name', label: 'Name', sortable: true, cell: (a) => raw(`<a href="/annotators/${a.id}">${escapeHtml(a.name)}</a>`) },
  { key: 'email', label: 'Email', sortable: true, cell: (a) => a.email },
  {
    key: 'role',
    label: 'Role',
    sortable: true,
    cell: (a) => RoleLabel({ role: a.roleId !== null && a.roleName !== null ? { name: a.roleName, color: a.roleColor } : null }),
  },
  {
    key: 'status',
    label: 'Status',
    sortable: true,
    cell: (a) => raw(`${StatusBadge({ status: a.status })}${a.autoAssignPaused ? '<span class="tag warn">paused</span>' : ''}`),
  },
  { key: 'lastActive', label: 'Last active', sortable: true, cell: (a) => Time({ at: a.lastActiveAt, relative: true }) },
  { key: 'created', label: 'Created', sortable: true, class: 'wide-only', cell: (a) => Time({ at: a.createdAt }) },
  {
    key: 'actions',
    label: 'Actions',
    class: 'actions',
    cell: (a) => {
      const url = labelStudioUrl(ctx, a);
      const link = url
        ? `<a class="button small" href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer" aria-label="${escapeHtml(a.name)}&#39;s Label Studio (opens a new tab)">Label Studio</a>`
        : '';
      return raw(`${LifecycleButtons({ a, small: true })}${link}`);
    },
  },
];

/** The annotator's Label Studio, once its route answers. */
export const labelStudioUrl = (ctx: AppContext, a: Pick<AnnotatorRow, 'status' | 'routedAt' | 'subdomain'>) =>
  a.status === 'active' && a.routedAt ? publicUrl(ctx.config, a.subdomain) : null;

const canStart = (status: string) => status === 'created' || status === 'stopped' || status === 'error';
const canStop = (status: string) => status === 'starting' || status === 'active' || status === 'error';

function LifecycleButtons({ a, small }: { a: Pick<AnnotatorRow, 'id' | 'name' | 'status'>; small?: boolean }) {
  const start = canStart(a.status)
    ? ActionButton({ method: 'POST', url: `/api/annotators/${a.id}/start`, label: 'Start', variant: small ? 'small' : 'primary', of: small ? a.name : undefined })
    : null;
  const stop = canStop(a.status)
    ? ActionButton({
        method: 'POST',
        url: `/api/annotators/${a.id}/stop`,
        label: a.status === 'starting' ? 'Cancel start' : 'Stop',
        variant: small ? 'small' : undefined,
        confirm: `Stop ${a.name}'s Label Studio? Their data is kept.`,
        of: small ? a.name : undefined,
      })
    : null;
  return raw(`${start ?? ''}${stop ?? ''}`);
}

export async function annotatorsPage(p: PageContext) {
  const { db } = p.ctx.database;
  const q = (p.query.q ?? '').trim().slice(0, 200);
  const status = enumParam(p.query.status, ANNOTATOR_STATUSES);
  const roleId = intParam(p.query.roleId);
  const sort: AnnotatorSort = enumParam(p.query.sort, ANNOTATOR_SORTS) ?? 'name';
  const dir = p.query.dir === 'desc' ? 'desc' : 'asc';
  const page = pageParams(p.query, ANNOTATORS_PAGE_SIZE);
  const [{ rows, total }, roles] = await Promise.all([listAnnotators(db, { q, status, roleId }, { by: sort, dir }, page), roleOptions(db)]);
  const state = { q: q || undefined, status, roleId, sort: sort === 'name' ? undefined : sort, dir: dir === 'asc' ? undefined : dir };
  const sortLink = (s: string, d: 'asc' | 'desc') => href('/annotators', { ...state, sort: s === 'name' ? undefined : s, dir: d === 'asc' ? undefined : d });
  const pageLink = (offset: number) => href('/annotators', { ...state, offset: offset || undefined });
  const roleChoices = roles.map((r) => ({ value: r.id, label: r.name }));

  return p.render({
    title: 'Annotators',
    nav: 'annotators',
    topics: ['annotators'],
    body: (
      <>
        <div class="columns">
          <details class="panel">
            <summary>New annotator</summary>
            <ApiForm method="POST" action="/api/annotators" then="/annotators/{id}" label="New annotator" submit="Create annotator">
              <Field label="Name" name="name" required autocomplete="off" />
              <Field label="Email" name="email" type="email" required />
              <SelectField label="Role" name="roleId" kind="nullable-int" options={roleChoices} empty="No role" />
              <Field label="Notes" name="notes" kind="nullable" textarea={{ rows: 2 }} />
            </ApiForm>
          </details>
          <details class="panel">
            <summary>Add many (paste lines or CSV)</summary>
            <form class="api-form" data-bulk-create data-roles={JSON.stringify(roles.map((r) => ({ id: r.id, name: r.name })))} aria-label="Add many annotators" novalidate>
              <div class="form-error" role="alert" hidden></div>
              <div class="field">
                <label for="bulk-lines">Annotators, one per line</label>
                <textarea id="bulk-lines" name="lines" rows={6} class="mono" aria-describedby="bulk-help bulk-lines-error" spellcheck={false}></textarea>
                <p class="help" id="bulk-help">
                  <code>Ada Lovelace &lt;ada@example.com&gt;</code>, <code>Ada Lovelace, ada@example.com, role</code> or CSV with a header row (name, email,
                  role). Up to {IMPORT_MAX} at once, all or nothing.
                </p>
                <p class="field-error" id="bulk-lines-error" data-error-for="lines" hidden></p>
              </div>
              <SelectField label="Role for lines without one" name="defaultRoleId" kind="nullable-int" options={roleChoices} empty="No role" />
              <div class="form-actions">
                <button type="submit" class="primary">
                  Create all
                </button>
              </div>
            </form>
          </details>
        </div>

        <form class="filters" method="get" action="/annotators" data-live-search aria-label="Search and filter annotators">
          <div class="field grow">
            <label for="an-q">Search name or email</label>
            <input id="an-q" name="q" type="search" value={q} autocomplete="off" />
          </div>
          <div class="field">
            <label for="an-status">Status</label>
            <select id="an-status" name="status">
              <option value="">Any (not deleted)</option>
              {ANNOTATOR_STATUSES.map((s) => (
                <option value={s} selected={s === status}>
                  {s}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="an-role">Role</label>
            <select id="an-role" name="roleId">
              <option value="">Any role</option>
              {roles.map((r) => (
                <option value={String(r.id)} selected={r.id === roleId}>
                  {r.name}
                </option>
              ))}
            </select>
          </div>
          {state.sort ? <input type="hidden" name="sort" value={state.sort} /> : null}
          {state.dir ? <input type="hidden" name="dir" value={state.dir} /> : null}
          <div class="form-actions">
            <button type="submit" class="button">
              Apply
            </button>
          </div>
        </form>

        <div id="annotators-table" data-live-region>
          <div class="bulk-bar" data-bulk-bar>
            <span data-selected-count aria-live="polite">
              0 selected
            </span>
            <button type="button" class="button small" data-bulk="start" disabled>
              Start selected
            </button>
            <button type="button" class="button small" data-bulk="stop" disabled>
              Stop selected
            </button>
            <button type="button" class="button small danger" data-bulk="delete" disabled>
              Delete selected
            </button>
          </div>
          <DataTable
            label="Annotators"
            class="annotators"
            tableAttrs={{ 'data-selectable': '' }}
            columns={annotatorColumns(p.ctx)}
            rows={rows}
            sort={{ by: sort, dir, link: sortLink }}
            pager={{ ...page, total, link: pageLink }}
            empty={q || status || roleId ? 'No annotator matches.' : 'No annotators yet: add some above.'}
            lead={{
              class: 'select',
              header: <input type="checkbox" data-select-all aria-label="Select every annotator on this page" />,
              cell: (a) => raw(`<input type="checkbox" data-select-id="${a.id}" aria-label="Select ${escapeHtml(a.name)}"/>`),
            }}
          />
        </div>
      </>
    ),
  });
}

function ProgressPanel({ progress, streamUrl }: { progress: StartProgress; streamUrl: string }) {
  return (
    <section class="panel start-progress" aria-labelledby="progress-h" data-progress-stream={streamUrl}>
      <h2 id="progress-h">Start progress</h2>
      <div class="progress-line">
        <progress value={progress.percent} max={100} aria-labelledby="progress-h" data-progress-bar>
          {progress.percent}%
        </progress>
        <span data-progress-percent>{progress.percent}%</span>
      </div>
      <p data-progress-message role="status" aria-live="polite" class={progress.failed ? 'bad' : progress.ready ? 'ok' : undefined}>
        {progress.message}
      </p>
      <details class="phases-details" open={!progress.ready}>
        <summary>Phases</summary>
      <ol class="phases" data-progress-phases>
        {progress.phases.map((ph) => (
          <li class={`phase ${ph.state}`} data-phase={ph.phase}>
            <span class="phase-state" data-phase-state>
              {ph.state}
            </span>
            <span class="phase-label">{ph.label}</span>
            <span class="phase-time" data-phase-time>
              {ph.startedAt ? <Time at={ph.startedAt} /> : null}
            </span>
            <span class="phase-message" data-phase-message>
              {ph.message ?? ''}
            </span>
          </li>
        ))}
      </ol>
      </details>
    </section>
  );
}

export async function annotatorPage(p: PageContext) {
  const { db } = p.ctx.database;
  const id = pathId(p.c, 'Annotator');
  const a = await findAnnotator(db, id);
  const timeZone = await p.fleetTimeZone();
  const now = new Date();
  const hourStart = new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000);
  const [progressRead, events, monitoring, perHour, batches, accuracy, gold, rejections, roles] = await Promise.all([
    readStartProgress(db, id),
    containerEventsOf(db, id, 30),
    annotatorMonitoring(db, id, { timeZone, now }),
    annotationsPerHour(db, new Date(hourStart.getTime() - 23 * 3_600_000), new Date(hourStart.getTime() + 3_600_000), id),
    listAssignments(db, { annotatorId: id }, { limit: 20, offset: 0 }),
    accuracyOf(db, id),
    goldResultsOf(db, id, 20),
    rejectionsOf(db, id, 20),
    roleOptions(db),
  ]);
  const url = labelStudioUrl(p.ctx, a);
  const progress = startProgress({ ...progressRead!.annotator, url, events: progressRead!.events });
  const deleted = a.status === 'deleted';

  return p.render({
    title: a.name,
    nav: 'annotators',
    topics: ['annotators', 'annotations', 'batches', 'quality'],
    actions: deleted ? undefined : (
      <div id="annotator-actions" data-live-region class="page-actions">
        <LifecycleButtons a={a} />
        <ActionButton
          method="POST"
          url={`/api/annotators/${a.id}/password`}
          label="Issue Label Studio password"
          show="password"
          confirm={a.status === 'active' ? `Issue a new password for ${a.name}? Their running Label Studio restarts to apply it.` : undefined}
        />
        {url ? (
          <a class="button" href={url} target="_blank" rel="noopener noreferrer">
            Open Label Studio
          </a>
        ) : null}
        <ActionButton method="DELETE" url={`/api/annotators/${a.id}`} label="Delete" variant="danger" then="/annotators" confirm={`Delete ${a.name}? Open batches are cancelled and the instance is removed.`} />
      </div>
    ),
    body: (
      <>
        <div id="annotator-summary" data-live-region>
          <ul class="stats">
            <Stat label="status" value={<StatusBadge status={a.status} />} />
            <Stat label="role" value={<RoleLabel role={a.roleId !== null && a.roleName !== null ? { name: a.roleName, color: a.roleColor } : null} />} />
            <Stat label="uptime" value={monitoring.containerUptime ?? '–'} />
            <Stat label={`annotations today (${timeZone} day)`} value={monitoring.todayAnnotations} />
            <Stat label="per hour today" value={monitoring.annotationsPerHour} />
            <Stat
              label={`gold accuracy (${plural(accuracy.evaluationCount, 'evaluation')})`}
              value={percent(accuracy.accuracy)}
              tone={accuracy.flagged ? 'bad' : undefined}
              link="#gold-h"
            />
            <Stat label="rejections / reviewed" value={`${a.rejectionCount} / ${a.reviewedCount}`} link="#rejections-h" />
          </ul>
          <p class="muted">
            {a.email} · subdomain <code>{a.subdomain}</code> · last active <Time at={a.lastActiveAt} relative /> · created <Time at={a.createdAt} />
            {a.autoAssignPaused ? (
              <>
                {' '}
                · <strong>auto-assignment paused</strong>{' '}
                <ActionButton method="PUT" url={`/api/annotators/${a.id}`} body={{ autoAssignPaused: false }} label="Resume auto-assignment" variant="small" />
              </>
            ) : null}
            {a.statusReason ? <> · {a.statusReason}</> : null}
          </p>
        </div>

        <ProgressPanel progress={progress} streamUrl={`/api/annotators/${a.id}/progress`} />

        <div class="columns" id="annotator-charts" data-live-region>
          <Chart
            id="chart-throughput"
            kind="hourly"
            caption="Annotations per hour, last 24 hours"
            data={perHour.map((h) => [h.hour.getTime() / 1000, h.count])}
            summary={`${perHour.reduce((n, h) => n + h.count, 0)} annotations in the last 24 hours.`}
          />
          <Chart
            id="chart-times"
            kind="buckets"
            caption={`Time per annotation today (${timeZone} day)`}
            data={monitoring.timeDistribution.map((b) => [b.bucket, b.count])}
            summary={`Time per annotation today: ${monitoring.timeDistribution.map((b) => `${b.count} in ${b.bucket}`).join(', ')}.`}
          />
        </div>

        <section aria-labelledby="batches-h" id="annotator-batches" data-live-region>
          <h2 id="batches-h">Batches</h2>
          <BatchesTable rows={batches.rows} showAnnotator={false} />
          {batches.total > batches.rows.length ? (
            <p>
              <a href={href('/batches', { annotatorId: a.id })}>All {batches.total} batches</a>
            </p>
          ) : null}
        </section>

        <div class="columns" id="annotator-quality" data-live-region>
          <section aria-labelledby="gold-h">
            <h2 id="gold-h">Gold results</h2>
            <DataTable
              label="Gold results"
              rows={gold}
              empty="No gold results yet."
              columns={[
                { key: 'when', label: 'When', cell: (g) => <Time at={g.evaluatedAt} /> },
                {
                  key: 'task',
                  label: 'Gold task',
                  cell: (g) => (g.goldTaskId ? <a href={`/gold-tasks/${g.goldTaskId}`}>{g.goldTaskName ?? `#${g.goldTaskId}`}</a> : 'deleted'),
                },
                { key: 'batch', label: 'Batch', cell: (g) => `#${g.assignmentId}` },
                { key: 'score', label: 'Score', class: 'num', cell: (g) => percent(g.score) },
              ]}
            />
          </section>
          <section aria-labelledby="rejections-h">
            <h2 id="rejections-h">Rejections</h2>
            <DataTable
              label="Rejections"
              rows={rejections}
              empty="No rejections."
              columns={[
                { key: 'when', label: 'When', cell: (r) => <Time at={r.createdAt} /> },
                { key: 'image', label: 'Image', class: 'wrap', cell: (r) => <code>{r.imageKey}</code> },
                { key: 'reason', label: 'Reason', class: 'wrap', cell: (r) => r.reason ?? '–' },
                { key: 'by', label: 'By', cell: (r) => r.reviewerName ?? '–' },
                { key: 'action', label: 'Action', cell: (r) => r.actionTaken.replaceAll('_', ' ') },
              ]}
            />
          </section>
        </div>

        <section aria-labelledby="timeline-h" id="annotator-events" data-live-region>
          <h2 id="timeline-h">Container events</h2>
          {events.length ? (
            <ol class="timeline">
              {events.map((e) => (
                <li>
                  <Time at={e.createdAt} /> <span class="tag container">{e.eventType}</span>{' '}
                  {e.fromStatus && e.toStatus && e.fromStatus !== e.toStatus ? (
                    <>
                      <StatusBadge status={e.fromStatus} /> → <StatusBadge status={e.toStatus} />{' '}
                    </>
                  ) : null}
                  <span class="wrap">{e.message ?? ''}</span>
                </li>
              ))}
            </ol>
          ) : (
            <Empty>No events.</Empty>
          )}
          <p>
            <a href={href('/events', { annotatorId: a.id })}>All events of {a.name}</a>
          </p>
        </section>

        {deleted ? null : (
          <details class="panel">
            <summary>Edit</summary>
            <ApiForm method="PUT" action={`/api/annotators/${a.id}`} label={`Edit ${a.name}`} submit="Save">
              <Field label="Name" name="name" value={a.name} required />
              <Field label="Email" name="email" type="email" value={a.email} required />
              <SelectField label="Role" name="roleId" kind="nullable-int" value={a.roleId} options={roles.map((r) => ({ value: r.id, label: r.name }))} empty="No role" />
              <Field label="Notes" name="notes" kind="nullable" value={a.notes} textarea={{ rows: 3 }} />
            </ApiForm>
          </details>
        )}
      </>
    ),
  });
}
