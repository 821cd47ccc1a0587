/**
 * Reads of workflows shared by the API routes (src/api/workflows.ts) and the console's workflow
 * pages, so each query is written once. Functions take `db | trx` first and return rows (mapping
 * to JSON or HTML is the caller's).
 */
import { sql, type ExpressionBuilder } from 'kysely';
import { notFound } from '../errors.ts';
import type { Executor } from './index.ts';
import type { Page } from './list-page.ts';
import type { Database, SkippedKeyExample, Workflow } from './types.ts';

/** A workflow with its role and labeling config joined in (GET /api/workflows maps it with `toWorkflow`). */
export type WorkflowRow = Workflow & {
  roleName: string | null;
  roleColor: string | null;
  labelingConfigName: string | null;
  skippedCount: number | null;
  skippedExamples: SkippedKeyExample[] | null;
};

/** Workflows with their role, labeling config and catalogue sync joined in (rows are WorkflowRow). */
export function selectWorkflows(db: Executor) {
  return db
    .selectFrom('workflows as w')
    .leftJoin('roles as r', 'r.id', 'w.roleId')
    .leftJoin('labelingConfigs as lc', 'lc.id', 'w.labelingConfigId')
    .leftJoin('catalogSyncs as cs', 'cs.workflowId', 'w.id')
    .selectAll('w')
    .select(['r.name as roleName', 'r.color as roleColor', 'lc.name as labelingConfigName', 'cs.skippedCount', 'cs.skippedExamples']);
}

/** Workflow `id` with its joins. Errors: notFound('Workflow') (404) when there is none. */
export async function findWorkflow(db: Executor, id: number): Promise<WorkflowRow> {
  const row = await selectWorkflows(db).where('w.id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Workflow');
  return row;
}

/** GET /api/workflows's filters; each absent one matches every workflow. */
export interface WorkflowFilter {
  roleId?: number;
  labelingConfigId?: number;
  /** Only the workflows directly downstream of this one. */
  previousWorkflowId?: number;
  /** true: running workflows; false: paused ones. */
  isActive?: boolean;
}

/**
 * One page of workflows matching `filter`, by id, with their joins, and how many match.
 * Reads only; throws only database errors.
 */
export async function listWorkflows(db: Executor, filter: WorkflowFilter, page: Page) {
  const [rows, total] = await Promise.all([
    selectWorkflows(db)
      .where((eb) => matching(eb, filter))
      .orderBy('w.id')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    db
      .selectFrom('workflows as w')
      .select(sql<number>`count(*)::int`.as('n'))
      .where((eb) => matching(eb, filter))
      .executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}

/** `filter` as one condition on the workflows aliased `w`. */
function matching(eb: ExpressionBuilder<Database & { w: Database['workflows'] }, 'w'>, filter: WorkflowFilter) {
  return eb.and([
    ...(filter.roleId !== undefined ? [eb('w.roleId', '=', filter.roleId)] : []),
    ...(filter.labelingConfigId !== undefined ? [eb('w.labelingConfigId', '=', filter.labelingConfigId)] : []),
    ...(filter.previousWorkflowId !== undefined ? [eb('w.previousWorkflowId', '=', filter.previousWorkflowId)] : []),
    ...(filter.isActive !== undefined ? [eb('w.isActive', '=', filter.isActive)] : []),
  ]);
}

/** A workflow as the chain sees it (GET /api/workflows/:id's `chain` entries before tracing). */
export interface LineageNode {
  id: number;
  name: string;
  previousWorkflowId: number | null;
  isActive: boolean;
}

/**
 * Workflow `id`'s lineage: itself, its ancestors (through previousWorkflowId) and every workflow
 * downstream of it, unordered; empty when there is no workflow `id`. Reads only.
 */
export async function workflowLineage(db: Executor, id: number): Promise<LineageNode[]> {
  const { rows } = await sql<LineageNode>`
    WITH RECURSIVE up AS (
      SELECT id, name, previous_workflow_id, is_active FROM workflows WHERE id = ${id}
      UNION
      SELECT w.id, w.name, w.previous_workflow_id, w.is_active FROM workflows w JOIN up ON w.id = up.previous_workflow_id
    ), down AS (
      SELECT id, name, previous_workflow_id, is_active FROM workflows WHERE id = ${id}
      UNION
      SELECT w.id, w.name, w.previous_workflow_id, w.is_active FROM workflows w JOIN down ON w.previous_workflow_id = down.id
    )
    SELECT * FROM up UNION SELECT * FROM down`.execute(db);
  return rows;
}

/**
 * Workflow `previous` and its ancestors as (id, prev) pairs: what a relink to `previous` must not
 * close a loop through. Empty when there is no workflow `previous`. Reads only.
 */
export async function workflowAncestors(db: Executor, previous: number): Promise<{ id: number; prev: number | null }[]> {
  const { rows } = await sql<{ id: number; prev: number | null }>`
    WITH RECURSIVE up(id, prev) AS (
      SELECT id, previous_workflow_id FROM workflows WHERE id = ${previous}
      UNION
      SELECT w.id, w.previous_workflow_id FROM workflows w JOIN up ON w.id = up.prev
    )
    SELECT id, prev FROM up`.execute(db);
  return rows;
}

/**
 * What keeps workflow `id` from being deleted (the 409 details of DELETE /api/workflows/:id, whose
 * key names these are): workflows chained after it, other workflows routing rejections to it, and
 * its assignments and recorded rejections. All zero/empty for a workflow nothing uses. Reads only.
 */
export async function workflowUsage(db: Executor, id: number) {
  return db
    .selectNoFrom([
      sql<number[]>`(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM workflows WHERE previous_workflow_id = ${id})`.as(
        'downstreamWorkflowIds',
      ),
      sql<number[]>`(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM workflows WHERE rejection_route_workflow_id = ${id} AND id <> ${id})`.as(
        'routingWorkflowIds',
      ),
      sql<number>`(SELECT count(*)::int FROM assignments WHERE workflow_id = ${id})`.as('assignments'),
      sql<number>`(SELECT count(*)::int FROM rejections WHERE workflow_id = ${id})`.as('rejections'),
    ])
    .executeTakeFirstOrThrow();
}

/** Id and name of every workflow (but `exceptId`), by name case-insensitively then id (for pickers). */
export async function workflowOptions(db: Executor, exceptId?: number) {
  return db
    .selectFrom('workflows')
    .select(['id', 'name'])
    .$if(exceptId !== undefined, (qb) => qb.where('id', '<>', exceptId!))
    .orderBy(sql`lower(name)`)
    .orderBy('id')
    .execute();
}
