/** Batches: assignments with progress N/M, status and problems; cancel; filter by workflow, annotator, status. */
import { ASSIGNMENT_STATUS_VALUES, listAssignments, PROBLEM_WINDOW_HOURS, type AssignmentListRow } from '../../db/assignments.ts';
import { ActionButton, DataTable, href, Progress, StatusBadge, Time, type Pagination } from '../components.tsx';
import type { PageContext } from '../index.tsx';
import { AnnotatorFilterField, annotatorIdOf, resolveAnnotatorFilter } from './annotator-filter.tsx';
import { enumParam, intParam, pageParams } from './params.ts';

/** Batches as a table (the batches page, a workflow's and an annotator's page). */
export function BatchesTable({ rows, showAnnotator = true, showWorkflow = true, pager }: { rows: AssignmentListRow[]; showAnnotator?: boolean; showWorkflow?: boolean; pager?: Pagination }) {
  return (
    <DataTable
      label="Batches"
      class="batches"
      rows={rows}
      empty="No batches."
      pager={pager}
      rowAttrs={(b) => ({ 'data-batch': String(b.id) })}
      columns={[
        {
          key: 'batch',
          label: 'Batch',
          cell: (b) => (
            <>
              #{b.id}
              {b.goldTaskCount ? <span class="muted"> ({b.goldTaskCount} gold)</span> : null}
            </>
          ),
        },
        showAnnotator && { key: 'annotator', label: 'Annotator', cell: (b) => <a href={`/annotators/${b.annotatorId}`}>{b.annotatorName}</a> },
        showWorkflow && { key: 'workflow', label: 'Workflow', cell: (b) => <a href={`/workflows/${b.workflowId}`}>{b.workflowName}</a> },
        { key: 'status', label: 'Status', cell: (b) => <StatusBadge status={b.status} /> },
        {
          key: 'progress',
          label: 'Progress',
          cell: (b) => <Progress done={b.completedCount} total={b.taskCount} label={`Batch ${b.id}: ${b.completedCount} of ${b.taskCount} tasks annotated`} />,
        },
        { key: 'created', label: 'Created', cell: (b) => <Time at={b.createdAt} /> },
        { key: 'problem', label: 'Problem', class: 'wrap', cell: (b) => (b.problem ? <span class="bad">{b.problem}</span> : <span class="muted">–</span>) },
        {
          key: 'actions',
          label: 'Actions',
          class: 'actions',
          cell: (b) =>
            b.status === 'pending' || b.status === 'in_progress' ? (
              <ActionButton
                method="DELETE"
                url={`/api/assignments/${b.id}`}
                label="Cancel"
                variant="small"
                confirm={`Cancel batch #${b.id} of ${b.annotatorName}? Its unannotated images go back to the queue.`}
                of={`batch ${b.id}`}
              />
            ) : b.exportKey ? (
              <code class="muted" title="Export in S3">
                {b.exportKey}
              </code>
            ) : null,
        },
      ]}
    />
  );
}

export async function batchesPage(p: PageContext) {
  const { db } = p.ctx.database;
  const annotator = await resolveAnnotatorFilter(db, p.query);
  const annotatorId = annotatorIdOf(annotator);
  const filter = {
    workflowId: intParam(p.query.workflowId),
    annotatorId: annotatorId ?? undefined,
    status: enumParam(p.query.status, ASSIGNMENT_STATUS_VALUES),
    problems: p.query.problems === '1' || undefined,
  };
  const page = pageParams(p.query, 50);
  const [{ rows, total }, workflows] = await Promise.all([
    annotatorId === null ? { rows: [], total: 0 } : listAssignments(db, filter, page),
    db.selectFrom('workflows').select(['id', 'name']).orderBy('name').orderBy('id').execute(),
  ]);
  const state = { ...filter, annotator: annotator.kind === 'unresolved' ? annotator.text : undefined, problems: filter.problems ? 1 : undefined };
  return p.render({
    title: 'Batches',
    nav: 'batches',
    topics: ['batches', 'annotations', 'annotators'],
    body: (
      <>
        <form class="filters" method="get" action="/batches" aria-label="Filter batches">
          <div class="field">
            <label for="b-workflow">Workflow</label>
            <select id="b-workflow" name="workflowId">
              <option value="">Any workflow</option>
              {workflows.map((w) => (
                <option value={String(w.id)} selected={w.id === filter.workflowId}>
                  {w.name}
                </option>
              ))}
            </select>
          </div>
          <AnnotatorFilterField id="b-annotator" choice={annotator} link={(id) => href('/batches', { ...state, annotator: undefined, annotatorId: id })} />
          <div class="field">
            <label for="b-status">Status</label>
            <select id="b-status" name="status">
              <option value="">Any status</option>
              {ASSIGNMENT_STATUS_VALUES.map((s) => (
                <option value={s} selected={s === filter.status}>
                  {s.replace('_', ' ')}
                </option>
              ))}
            </select>
          </div>
          <div class="field check">
            <input id="b-problems" type="checkbox" name="problems" value="1" checked={filter.problems === true} />
            <label for="b-problems">Only with problems</label>
          </div>
          <div class="form-actions">
            <button type="submit" class="button">
              Filter
            </button>
            <a class="button" href="/batches">
              Clear
            </a>
          </div>
        </form>
        <p class="help">
          A problem: an open batch whose setup in Label Studio failed (retried) or whose annotator is not running, or a batch that failed in
          the last {PROBLEM_WINDOW_HOURS} hours.
        </p>
        <div id="batches-list" data-live-region>
          <BatchesTable rows={rows} pager={{ ...page, total, link: (offset) => href('/batches', { ...state, offset: offset || undefined }) }} />
        </div>
      </>
    ),
  });
}
