/**
 * Workflows: the graph drawn as a diagram (server-side dagre layout to SVG: workflow nodes with
 * their stats, chain, rejection and adjudication edges, archive terminals), the list, the create / edit form
 * (errors at their fields, from the API's details), pause / resume, manual assignment, delete.
 */
import { findWorkflow, workflowOptions, type WorkflowRow } from '../../db/workflows.ts';
import { currentGraph, type Graph } from '../../db/graph-stats.ts';
import { assignableAnnotators } from '../../db/annotators.ts';
import { listAssignments } from '../../db/assignments.ts';
import { labelingConfigOptions, roleOptions } from '../../db/catalog.ts';
import type { WorkflowNode } from '../../domain/workflow-graph.ts';
import { raw } from 'hono/html';
import {
  ActionButton,
  ApiForm,
  CheckboxField,
  Empty,
  Field,
  href,
  Pager,
  percent,
  RoleLabel,
  SelectField,
  StatusBadge,
  DataTable,
  type Option,
} from '../components.tsx';
import { components, layoutGraph, type GraphLayout, type PlacedNode } from '../graph-layout.ts';
import { pathId, type PageContext } from '../index.tsx';
import { BatchesTable } from './batches.tsx';
import { pageParams } from './params.ts';

const REJECTION_MODES: Option[] = [
  { value: 'none', label: 'None: rejections are only recorded' },
  { value: 'archive', label: 'Archive the rejected item' },
  { value: 'route_to_workflow', label: 'Route to another workflow (rework)' },
];

const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function edgePath(points: { x: number; y: number }[]): string {
  if (points.length === 0) return '';
  const [first, ...rest] = points;
  return `M${first!.x.toFixed(1)},${first!.y.toFixed(1)}${rest.map((p) => ` L${p.x.toFixed(1)},${p.y.toFixed(1)}`).join('')}`;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
const HEX = /^#[0-9a-fA-F]{6}$/;

/**
 * One node as SVG markup. The graph can hold a thousand workflows, so it is written as a string
 * (every text escaped) rather than through JSX: ten times faster for the same markup.
 */
function nodeSvg(p: PlacedNode): string {
  const n = p.node;
  const at = `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`;
  if (n.type === 'terminal') {
    return `<g class="node archive" transform="${at}"><rect width="${p.width}" height="${p.height}" rx="20"/><text x="${p.width / 2}" y="${p.height / 2 + 5}" text-anchor="middle">Archive</text></g>`;
  }
  const w = n as WorkflowNode;
  const s = w.stats;
  const fill = w.roleColor && HEX.test(w.roleColor) ? w.roleColor : '#94a3b8';
  const line1 = `${s.completedAssignments}/${s.totalAssignments} batches · ${s.activeAnnotators} working`;
  const line2 = `${w.roleName ? truncate(w.roleName, 14) : 'manual only'} · rej ${percent(s.rejectionRate)}${w.isActive ? '' : ' · paused'}`;
  // The link's name is the text drawn in the box (what a sighted user reads); the table below the
  // graph spells out every figure.
  return (
    `<a href="/workflows/${w.id}" class="node workflow${w.isActive ? '' : ' paused'}"><g transform="${at}">` +
    `<rect class="node-box" width="${p.width}" height="${p.height}" rx="8"/>` +
    `<rect class="node-role" width="6" height="${p.height}" rx="3" fill="${fill}"/>` +
    `<text x="16" y="22" class="node-title">${esc(truncate(w.name, 26))}</text>` +
    `<text x="16" y="42" class="node-stat">${esc(line1)}</text>` +
    `<text x="16" y="60" class="node-stat">${esc(line2)}</text></g></a>`
  );
}

export function graphSvg(layout: GraphLayout): string {
  const workflows = layout.nodes.filter((n) => n.node.type === 'workflow').length;
  const edges = layout.edges
    .map((e) => {
      const marker = e.edge.type === 'chain' ? 'url(#arrow)' : e.edge.type === 'adjudication' ? 'url(#arrow-adjudicate)' : 'url(#arrow-reject)';
      return (
        `<g class="edge ${e.edge.type}"><path d="${edgePath(e.points)}" marker-end="${marker}"/>` +
        `<text x="${e.label.x.toFixed(1)}" y="${(e.label.y + 4).toFixed(1)}" text-anchor="middle" class="edge-label">${e.edge.label}</text></g>`
      );
    })
    .join('');
  return (
    `<svg class="graph" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" aria-labelledby="graph-title">` +
    `<title id="graph-title">Workflow graph: ${workflows} workflows in ${layout.components} flows</title>` +
    '<defs>' +
    '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-chain"/></marker>' +
    '<marker id="arrow-reject" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-reject"/></marker>' +
    '<marker id="arrow-adjudicate" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow-adjudicate"/></marker>' +
    `</defs><g class="edges">${edges}</g><g class="nodes">${layout.nodes.map(nodeSvg).join('')}</g></svg>`
  );
}

export function GraphSvg({ layout }: { layout: GraphLayout }) {
  if (layout.nodes.length === 0) return <Empty>No workflows to draw.</Empty>;
  return (
    <div class="graph-wrap" role="region" aria-label="Workflow graph (scrolls)" tabindex={0}>
      {raw(graphSvg(layout))}
    </div>
  );
}

/** Flows (connected parts of the graph) drawn per page; a search narrows to the flows that match. */
export const FLOWS_PER_PAGE = 20;

/**
 * The graph region (diagram, pager, table) of one graph computation and one window, as HTML.
 * Requests served by the same graph state (currentGraph returns one object per state) share its
 * rendering too; a few windows (searches, pages) are kept per computation.
 */
const regions = new WeakMap<object, Map<string, string>>();
const REGIONS_PER_GRAPH = 16;
async function graphRegion(graph: Graph, q: string, page: { limit: number; offset: number }): Promise<string> {
  const key = `${page.offset}\u0000${q}`;
  let byWindow = regions.get(graph);
  if (!byWindow) regions.set(graph, (byWindow = new Map()));
  const hit = byWindow.get(key);
  if (hit !== undefined) return hit;
  let nodes = graph.nodes;
  let edges = graph.edges;
  if (q) {
    // Whole flows that contain a matching workflow: a flow is only understood entire.
    const needle = q.toLowerCase();
    const matching = new Set(graph.nodes.filter((n) => n.type === 'workflow' && n.name.toLowerCase().includes(needle)).map((n) => String(n.id)));
    const keep = new Set<string>();
    for (const part of components(graph.nodes, graph.edges)) {
      if (part.nodes.some((n) => matching.has(String(n.id)))) for (const n of part.nodes) keep.add(String(n.id));
    }
    nodes = graph.nodes.filter((n) => keep.has(String(n.id)));
    edges = graph.edges.filter((e) => keep.has(String(e.source)));
  }
  const layout = layoutGraph(nodes, edges, page);
  const workflows = layout.nodes.map((n) => n.node).filter((n): n is WorkflowNode => n.type === 'workflow');
  const total = graph.nodes.filter((n) => n.type === 'workflow').length;
  const html = String(
    await (
      <div id="workflow-graph" data-live-region>
        <GraphSvg layout={layout} />
        <Pager
          total={layout.totalComponents}
          limit={page.limit}
          offset={page.offset}
          link={(offset) => href('/workflows', { q: q || undefined, offset: offset || undefined })}
          noun="flows"
        />
        <h2>
          Workflows in these flows ({workflows.length} of {total})
        </h2>
        <DataTable
          label="Workflows"
          rows={workflows}
          empty={q ? 'No workflow matches.' : 'No workflows yet.'}
          columns={[
            { key: 'workflow', label: 'Workflow', cell: (w) => <a href={`/workflows/${w.id}`}>{w.name}</a> },
            { key: 'role', label: 'Role', cell: (w) => <RoleLabel role={w.roleName ? { name: w.roleName, color: w.roleColor } : null} /> },
            { key: 'state', label: 'State', cell: (w) => <StatusBadge status={w.isActive ? 'active' : 'paused'} /> },
            { key: 'batches', label: 'Batches', class: 'num', cell: (w) => `${w.stats.completedAssignments}/${w.stats.totalAssignments}` },
            { key: 'working', label: 'Working', class: 'num', cell: (w) => w.stats.activeAnnotators },
            { key: 'rejectionRate', label: 'Rejection rate', class: 'num', cell: (w) => percent(w.stats.rejectionRate) },
          ]}
        />
      </div>
    ).toString(),
  );
  if (byWindow.size >= REGIONS_PER_GRAPH) byWindow.delete(byWindow.keys().next().value!);
  byWindow.set(key, html);
  return html;
}

export async function workflowsPage(p: PageContext) {
  const q = (p.query.q ?? '').trim().slice(0, 200);
  const page = pageParams(p.query, FLOWS_PER_PAGE);
  const region = await graphRegion((await currentGraph(p.ctx.database.db, p.ctx.logger)).graph, q, page);
  return p.render({
    title: 'Workflows',
    nav: 'workflows',
    topics: ['workflows', 'batches'],
    actions: (
      <a class="button primary" href="/workflows/new">
        New workflow
      </a>
    ),
    body: (
      <>
        <form class="filters" method="get" action="/workflows" aria-label="Find workflows">
          <div class="field grow">
            <label for="wf-q">Show the flows containing</label>
            <input id="wf-q" name="q" type="search" value={q} placeholder="part of a workflow name" />
          </div>
          <div class="form-actions">
            <button type="submit" class="button">
              Find
            </button>
            {q ? (
              <a class="button" href="/workflows">
                All
              </a>
            ) : null}
          </div>
        </form>
        <p class="legend">
          <span class="legend-chain">accept → next workflow (chain)</span> <span class="legend-reject">reject → rework or archive</span>{' '}
          <span class="muted">Each box: batches completed / all, annotators working now, rejection rate. Select a box to open it.</span>
        </p>
        {raw(region)}
      </>
    ),
  });
}

async function formChoices(p: PageContext, exceptId?: number) {
  const { db } = p.ctx.database;
  const [roles, configs, workflows] = await Promise.all([
    roleOptions(db),
    labelingConfigOptions(db),
    workflowOptions(db, exceptId),
  ]);
  return {
    roles: roles.map((r) => ({ value: r.id, label: r.name })),
    configs: configs.map((c) => ({ value: c.id, label: c.name })),
    workflows: workflows.map((w) => ({ value: w.id, label: `${w.name} (#${w.id})` })),
  };
}

function WorkflowFields({ w, choices }: { w?: WorkflowRow; choices: Awaited<ReturnType<typeof formChoices>> }) {
  return (
    <>
      <fieldset>
        <legend>What and who</legend>
        <Field label="Name" name="name" value={w?.name} required />
        <SelectField label="Role" name="roleId" kind="nullable-int" value={w?.roleId} options={choices.roles} empty="No role (manual assignment only)" />
        <SelectField label="Labeling config" name="labelingConfigId" kind="nullable-int" value={w?.labelingConfigId} options={choices.configs} empty="None yet" />
        <SelectField
          label="Previous workflow"
          name="previousWorkflowId"
          kind="nullable-int"
          value={w?.previousWorkflowId}
          options={choices.workflows}
          empty="None: images come from S3"
          help="Accepted output of the previous workflow becomes this workflow's work."
        />
      </fieldset>
      <fieldset>
        <legend>Images</legend>
        <Field label="S3 source prefix" name="s3SourcePath" value={w?.s3SourcePath} required placeholder="images/batch-1/" help="A key prefix in the fleet bucket (setting s3.bucket)." />
        <Field label="S3 export prefix" name="s3ExportPath" value={w?.s3ExportPath} required placeholder="exports/batch-1/" />
        <Field label="Images per batch" name="imagesPerProject" type="number" kind="int" value={w?.imagesPerProject ?? 100} min={1} max={10000} required />
        <Field label="Most batches per annotator" name="maxProjects" type="number" kind="nullable-int" value={w?.maxProjects} min={1} help="Empty: no limit." />
        <Field label="Estimated minutes per batch" name="estimatedTimeMinutes" type="number" kind="nullable-int" value={w?.estimatedTimeMinutes} min={0} />
        <Field label="Gold standard rate" name="goldStandardRate" type="number" kind="number" value={w?.goldStandardRate ?? 0} min={0} max={1} step="0.01" help="Share of each batch that is gold (0–1)." />
        <CheckboxField label="Assign batches automatically" name="autoAssign" checked={w?.autoAssign ?? true} />
        <CheckboxField label="Shuffle images" name="shuffleImages" checked={w?.shuffleImages ?? true} />
      </fieldset>
      <fieldset>
        <legend>Rejections</legend>
        <SelectField label="When a reviewer rejects" name="rejectionMode" value={w?.rejectionMode ?? 'none'} options={REJECTION_MODES} />
        <Field
          label="Archive location"
          name="rejectionArchiveBucket"
          kind="nullable"
          value={w?.rejectionArchiveBucket}
          placeholder="s3://bucket/prefix/ or a prefix"
          help="For archive: empty archives under the export prefix + rejected/."
        />
        <SelectField label="Route rejections to" name="rejectionRouteWorkflowId" kind="nullable-int" value={w?.rejectionRouteWorkflowId} options={choices.workflows} empty="–" />
        <CheckboxField label="Return rework to the original annotator" name="rejectionReturnToOriginal" checked={w?.rejectionReturnToOriginal ?? false} />
        <CheckboxField label="Count rejections against the annotator" name="rejectionFlagAnnotator" checked={w?.rejectionFlagAnnotator ?? true} />
        <Field label="Most rework rounds" name="maxReworkIterations" type="number" kind="nullable-int" value={w?.maxReworkIterations} min={0} help="Empty: no limit." />
      </fieldset>
    </>
  );
}

export async function workflowFormPage(p: PageContext) {
  const choices = await formChoices(p);
  return p.render({
    title: 'New workflow',
    nav: 'workflows',
    body: (
      <ApiForm method="POST" action="/api/workflows" then="/workflows/{id}" label="New workflow" submit="Create workflow" class="wide">
        <WorkflowFields choices={choices} />
      </ApiForm>
    ),
  });
}

export async function workflowPage(p: PageContext) {
  const { db } = p.ctx.database;
  const id = pathId(p.c, 'Workflow');
  const w = await findWorkflow(db, id);
  const [choices, batches, annotators, downstream] = await Promise.all([
    formChoices(p, id),
    listAssignments(db, { workflowId: id }, { limit: 20, offset: 0 }),
    assignableAnnotators(db, w.roleId, 500),
    db.selectFrom('workflows').select(['id', 'name']).where('previousWorkflowId', '=', id).orderBy('id').execute(),
  ]);
  const previous = w.previousWorkflowId ? await db.selectFrom('workflows').select(['id', 'name']).where('id', '=', w.previousWorkflowId).executeTakeFirst() : undefined;
  return p.render({
    title: w.name,
    nav: 'workflows',
    topics: ['workflows', 'batches'],
    actions: (
      <div id="workflow-actions" data-live-region class="page-actions">
        {w.isActive ? (
          <ActionButton method="PUT" url={`/api/workflows/${id}`} body={{ isActive: false }} label="Pause" confirm={`Pause ${w.name}? No new batches are assigned until it is resumed.`} />
        ) : (
          <ActionButton method="PUT" url={`/api/workflows/${id}`} body={{ isActive: true }} label="Resume" variant="primary" />
        )}
        <ActionButton method="DELETE" url={`/api/workflows/${id}`} label="Delete" variant="danger" then="/workflows" confirm={`Delete ${w.name}?`} />
      </div>
    ),
    body: (
      <>
        <div id="workflow-summary" data-live-region>
          <p>
            {w.isActive ? <StatusBadge status="active" /> : <StatusBadge status="paused" />} <RoleLabel role={w.roleName ? { name: w.roleName, color: w.roleColor } : null} /> ·{' '}
            {w.labelingConfigName ? <a href={`/labeling-configs/${w.labelingConfigId}`}>{w.labelingConfigName}</a> : <span class="bad">no labeling config</span>} ·{' '}
            {w.totalImagesAssigned.toLocaleString('en')} of {w.totalImagesAvailable.toLocaleString('en')} images assigned
          </p>
          <p>
            {previous ? (
              <>
                After <a href={`/workflows/${previous.id}`}>{previous.name}</a>.{' '}
              </>
            ) : (
              <>
                Reads <code>{w.s3SourcePath}</code>.{' '}
              </>
            )}
            {downstream.length ? (
              <>
                Feeds{' '}
                {downstream.map((d, i) => (
                  <>
                    {i ? ', ' : ''}
                    <a href={`/workflows/${d.id}`}>{d.name}</a>
                  </>
                ))}
                .
              </>
            ) : null}
          </p>
        </div>
        <section class="panel" aria-labelledby="assign-h">
          <h2 id="assign-h">Assign a batch now</h2>
          {annotators.length ? (
            <ApiForm method="POST" action={`/api/workflows/${id}/assign`} label="Assign a batch" submit="Assign">
              <SelectField
                label="Annotator"
                name="annotatorId"
                kind="int"
                options={annotators.map((a) => ({ value: a.id, label: `${a.name} <${a.email}>` }))}
                help={w.roleName ? `Active annotators of role ${w.roleName}.` : 'Active annotators.'}
              />
            </ApiForm>
          ) : (
            <Empty>No active annotator {w.roleName ? `of role ${w.roleName} ` : ''}can take a batch.</Empty>
          )}
        </section>
        <section aria-labelledby="wf-batches-h" id="workflow-batches" data-live-region>
          <h2 id="wf-batches-h">Recent batches</h2>
          <BatchesTable rows={batches.rows} showWorkflow={false} />
          {batches.total > batches.rows.length ? (
            <p>
              <a href={href('/batches', { workflowId: id })}>All {batches.total} batches</a>
            </p>
          ) : null}
        </section>
        <details class="panel" open={p.query.edit === '1' ? true : undefined}>
          <summary>Edit</summary>
          <ApiForm method="PUT" action={`/api/workflows/${id}`} label={`Edit ${w.name}`} submit="Save" class="wide">
            <WorkflowFields w={w} choices={choices} />
          </ApiForm>
        </details>
      </>
    ),
  });
}
