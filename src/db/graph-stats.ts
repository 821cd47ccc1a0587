/**
 * The workflow graph's per-node stats (GET /api/workflows/graph, the console's graph page), read
 * from the rollup of migrations/0026_workflow_stats.sql: one workflow_stats row per workflow plus
 * the deltas appended since the last fold, in one snapshot — exact at any moment, at a cost that
 * follows the number of workflows (and the unfolded deltas), not the history or the open work.
 * `currentGraph` is the graph as the API and the console both show it. Every function takes
 * `db | trx` first (currentGraph: the pool, since it may start a fold that outlives the call).
 */
import { sql } from 'kysely';
import { buildGraph, Coalesced, type GraphWorkflow } from '../domain/workflow-graph.ts';
import type { Logger } from '../logger.ts';
import type { Executor } from './index.ts';
import type { JsonText } from './json-text.ts';

/** Unfolded delta rows above which a reader asks for a fold (the reconciler folds at every pass anyway). */
export const FOLD_WHEN_PENDING = 5_000;

/**
 * Per workflow, as a query to join on `workflowId` (every workflow has a row from its creation):
 * totalAssignments (every assignment), completedAssignments (status completed), activeAnnotators
 * (distinct annotators holding a pending or in_progress one), completedTasks (sum of
 * completed_count over its assignments; float8, a bigint sum) and rejections (recorded with the
 * workflow as the reviewing one), and pendingDeltas (the workflow's unfolded delta rows).
 */
export function workflowGraphStats(db: Executor) {
  const pending = db
    .selectFrom('workflowStatDeltas')
    .select([
      'workflowId',
      sql<number>`sum(assignments)`.as('assignments'),
      sql<number>`sum(completed)`.as('completed'),
      sql<number>`sum(tasks)`.as('tasks'),
      sql<number>`sum(annotators)`.as('annotators'),
      sql<number>`sum(rejections)`.as('rejections'),
      sql<number>`count(*)`.as('n'),
    ])
    .groupBy('workflowId');
  const plus = (col: string) => sql`(s.${sql.raw(col)} + coalesce(d.${sql.raw(col)}, 0))`;
  return db
    .selectFrom('workflowStats as s')
    .leftJoin(pending.as('d'), 'd.workflowId', 's.workflowId')
    .select([
      's.workflowId',
      sql<number>`${plus('assignments')}::int`.as('totalAssignments'),
      sql<number>`${plus('completed')}::int`.as('completedAssignments'),
      sql<number>`${plus('annotators')}::int`.as('activeAnnotators'),
      sql<number>`${plus('tasks')}::float8`.as('completedTasks'),
      sql<number>`${plus('rejections')}::int`.as('rejections'),
      sql<number>`coalesce(d.n, 0)::int`.as('pendingDeltas'),
    ]);
}

/**
 * Moves the appended deltas into their rollups — workflow_stats and annotation_fleet_hourly (SQL
 * rollups_fold(), one statement, its own transaction unless `db` is one). Returns the delta rows
 * moved, or -1 when another fold was running (it moves them). Never changes a figure a reader sees.
 */
export async function foldRollups(db: Executor): Promise<number> {
  const { rows } = await sql<{ moved: number }>`SELECT rollups_fold() AS moved`.execute(db);
  return rows[0]!.moved;
}

/**
 * The reconciler's `rollups` step: one fold per pass. Always the same one statement, so an idle
 * pass stays the same few statements (reconcile-due.test.ts) and writes nothing when no fact arrived.
 */
export async function rollupsStep(db: Executor): Promise<{ actions: string[]; errors: string[] }> {
  await foldRollups(db);
  return { actions: [], errors: [] };
}

/** The graph as GET /api/workflows/graph and the console's graph page show it. */
export type Graph = ReturnType<typeof buildGraph>;

/**
 * One state of the graph: the graph and its JSON (the API's response body, serialized once per
 * state). Equal states are the same object, so renderings cached per snapshot (the console's graph
 * region) last until something in the graph changes.
 */
export interface GraphSnapshot {
  graph: Graph;
  json: JsonText<Graph>;
}

/** The columns of a graph row (GraphWorkflow), by the names buildGraph reads. */
const GRAPH_COLUMNS = [
  'id',
  'name',
  'roleId',
  'roleName',
  'roleColor',
  'isActive',
  'rejectionMode',
  'previousWorkflowId',
  'rejectionRouteWorkflowId',
  'adjudicationWorkflowId',
  'totalAssignments',
  'completedAssignments',
  'activeAnnotators',
  'completedTasks',
  'rejections',
] as const satisfies readonly (keyof GraphWorkflow)[];

/**
 * Every workflow with its stats, as one JSON text (an array of GraphWorkflow, by id) built by
 * PostgreSQL, and the unfolded delta rows. Stats come from the rollup of migrations/0026
 * (workflowGraphStats), so the cost follows the number of workflows, not the history or the work
 * in progress; one text column is all the service reads.
 */
async function readGraphRows(db: Executor): Promise<{ rows: string; pending: number }> {
  const g = db
    .selectFrom('workflows as w')
    .leftJoin('roles as r', 'r.id', 'w.roleId')
    .leftJoin(workflowGraphStats(db).as('s'), 's.workflowId', 'w.id')
    .select((eb) => [
      'w.id',
      'w.name',
      'w.roleId',
      'r.name as roleName',
      'r.color as roleColor',
      'w.isActive',
      'w.rejectionMode',
      'w.previousWorkflowId',
      'w.rejectionRouteWorkflowId',
      'w.adjudicationWorkflowId',
      eb.fn.coalesce('s.totalAssignments', sql<number>`0`).as('totalAssignments'),
      eb.fn.coalesce('s.completedAssignments', sql<number>`0`).as('completedAssignments'),
      eb.fn.coalesce('s.activeAnnotators', sql<number>`0`).as('activeAnnotators'),
      eb.fn.coalesce('s.completedTasks', sql<number>`0`).as('completedTasks'),
      eb.fn.coalesce('s.rejections', sql<number>`0`).as('rejections'),
      eb.fn.coalesce('s.pendingDeltas', sql<number>`0`).as('pendingDeltas'),
    ]);
  // json_build_object with the camelCase keys as literals (the CamelCasePlugin renames identifiers,
  // not string literals); references go through sql.ref so the plugin maps them to the columns.
  const fields = sql.join(GRAPH_COLUMNS.map((c) => sql`${sql.lit(c)}, ${sql.ref(`g.${c}`)}`));
  const row = await db
    .selectFrom(g.as('g'))
    .select([
      sql<string>`coalesce(json_agg(json_build_object(${fields}) ORDER BY ${sql.ref('g.id')}), '[]')::text`.as('rows'),
      sql<number>`coalesce(sum(${sql.ref('g.pendingDeltas')}), 0)::int`.as('pending'),
    ])
    .executeTakeFirstOrThrow();
  return row;
}

interface GraphSource {
  coalesced: Coalesced<GraphSnapshot>;
  last: { rows: string; snapshot: GraphSnapshot } | null;
}
const sources = new WeakMap<Executor, GraphSource>();

/**
 * The current graph (GET /api/workflows/graph, the console's graph page), shared by every caller
 * on `db` (the pool, since it may start a fold that outlives the call): concurrent calls share one
 * read (Coalesced), and a read equal to the previous one returns the previous snapshot, so an
 * unchanged graph costs one statement and a string comparison — no parsing, no serializing. When
 * the read saw many unfolded deltas it starts a fold (not awaited: the figures are exact either way).
 */
export function currentGraph(db: Executor, log?: Pick<Logger, 'warn'>): Promise<GraphSnapshot> {
  let source = sources.get(db);
  if (!source) {
    const s: GraphSource = {
      last: null,
      coalesced: new Coalesced(async () => {
        const { rows, pending } = await readGraphRows(db);
        if (pending > FOLD_WHEN_PENDING) {
          foldRollups(db).catch((err: unknown) => log?.warn({ err }, 'folding the workflow stats failed; the reconciler retries'));
        }
        if (s.last?.rows === rows) return s.last.snapshot;
        const graph = buildGraph(JSON.parse(rows) as GraphWorkflow[]);
        const snapshot = { graph, json: JSON.stringify(graph) };
        s.last = { rows, snapshot };
        return snapshot;
      }),
    };
    sources.set(db, (source = s));
  }
  return source.coalesced.get();
}
