/**
 * Counts read from the trigger-kept counters of migrations/0014_rollups.sql, exact and at a cost
 * that does not grow with history: a few counter rows per filter, plus the open assignments
 * (current work, read live through the partial index on pending and in_progress assignments).
 * Every function takes `db | trx` first; ids are positive integers, statuses the stored ones.
 */
import { sql, type Expression, type SqlBool } from 'kysely';
import type { Executor } from './index.ts';
import type { AnnotatorStatus, AssignmentStatus, RejectionMode } from './types.ts';

/**
 * Assignment statuses that are current work, not history. Migration 0014's triggers count every
 * other status in the rollups; the partial indexes of migrations 0003 and 0007 hold these.
 */
export const OPEN_ASSIGNMENT_STATUSES = ['pending', 'in_progress'] as const satisfies readonly AssignmentStatus[];
const isOpen = (s: AssignmentStatus) => (OPEN_ASSIGNMENT_STATUSES as readonly string[]).includes(s);
/** The open-status predicate spelled as the partial indexes spell it, so the planner uses them. */
const OPEN = sql<SqlBool>`status IN ('pending', 'in_progress')`;

/** Runs a one-value expression (the totals below) on its own. */
export async function valueOf(db: Executor, value: Expression<number>): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT (${value})::int AS n`.execute(db);
  return rows[0]!.n;
}

export interface AnnotatorCountFilter {
  /** One status; absent → every status but deleted (as GET /api/annotators lists). */
  status?: AnnotatorStatus;
  roleId?: number;
}

/** How many annotators match the filter (GET /api/annotators' X-Total-Count), as an expression. */
export function annotatorTotal(db: Executor, f: AnnotatorCountFilter): Expression<number> {
  return db
    .selectFrom('annotatorCounts')
    .select(sql<number>`coalesce(sum(annotators), 0)::int`.as('n'))
    .$if(f.status === undefined, (q) => q.where('status', '<>', 'deleted'))
    .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!))
    .$if(f.roleId !== undefined, (q) => q.where('roleId', '=', f.roleId!))
    .$castTo<number>();
}

export const countAnnotators = (db: Executor, f: AnnotatorCountFilter) => valueOf(db, annotatorTotal(db, f));

export interface AssignmentCountFilter {
  workflowId?: number;
  annotatorId?: number;
  status?: AssignmentStatus;
}

/**
 * How many assignments match the filter (GET /api/assignments' total), as an expression: closed
 * ones from the per-workflow or per-annotator rollup, open ones counted live. With both a workflow
 * and an annotator, the pair's own rows are counted (an index range of that annotator's rows).
 */
export function assignmentTotal(db: Executor, f: AssignmentCountFilter): Expression<number> {
  if (f.workflowId !== undefined && f.annotatorId !== undefined) {
    return db
      .selectFrom('assignments')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('annotatorId', '=', f.annotatorId)
      .where('workflowId', '=', f.workflowId)
      .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!))
      .$castTo<number>();
  }
  const parts: Expression<unknown>[] = [];
  if (f.status === undefined || !isOpen(f.status)) {
    parts.push(
      f.annotatorId !== undefined
        ? db
            .selectFrom('annotatorAssignmentCounts')
            .select(sql<number>`coalesce(sum(assignments), 0)`.as('n'))
            .where('annotatorId', '=', f.annotatorId)
            .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!))
        : db
            .selectFrom('workflowAssignmentCounts')
            .select(sql<number>`coalesce(sum(assignments), 0)`.as('n'))
            .$if(f.workflowId !== undefined, (q) => q.where('workflowId', '=', f.workflowId!))
            .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!)),
    );
  }
  if (f.status === undefined || isOpen(f.status)) {
    parts.push(
      db
        .selectFrom('assignments')
        .select(sql<number>`count(*)`.as('n'))
        .where(OPEN)
        .$if(f.workflowId !== undefined, (q) => q.where('workflowId', '=', f.workflowId!))
        .$if(f.annotatorId !== undefined, (q) => q.where('annotatorId', '=', f.annotatorId!))
        .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!)),
    );
  }
  return sql<number>`(${sql.join(
    parts.map((p) => sql`(${p})`),
    sql` + `,
  )})::int`;
}

export const countAssignments = (db: Executor, f: AssignmentCountFilter) => valueOf(db, assignmentTotal(db, f));

export interface RejectionCountFilter {
  /** The reviewing workflow. */
  workflowId?: number;
  /** The original annotator. */
  annotatorId?: number;
  actionTaken?: RejectionMode;
}

/**
 * How many rejections match the filter (GET /api/rejections' total), as an expression: from the
 * per-workflow rollup, or with an annotator, that annotator's own rows.
 */
export function rejectionTotal(db: Executor, f: RejectionCountFilter): Expression<number> {
  if (f.annotatorId !== undefined) {
    return db
      .selectFrom('rejections')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('originalAnnotatorId', '=', f.annotatorId)
      .$if(f.workflowId !== undefined, (q) => q.where('workflowId', '=', f.workflowId!))
      .$if(f.actionTaken !== undefined, (q) => q.where('actionTaken', '=', f.actionTaken!))
      .$castTo<number>();
  }
  return db
    .selectFrom('workflowRejectionCounts')
    .select(sql<number>`coalesce(sum(rejections), 0)::int`.as('n'))
    .$if(f.workflowId !== undefined, (q) => q.where('workflowId', '=', f.workflowId!))
    .$if(f.actionTaken !== undefined, (q) => q.where('actionTaken', '=', f.actionTaken!))
    .$castTo<number>();
}

export const countRejections = (db: Executor, f: RejectionCountFilter) => valueOf(db, rejectionTotal(db, f));

export interface AnnotatorAssignmentStats {
  annotatorId: number;
  /** Every assignment, whatever its status. */
  total: number;
  completed: number;
  cancelled: number;
  inProgress: number;
}

/**
 * Assignment counts per annotator (one annotator, or every annotator), from the per-annotator
 * rollup and the open assignments; annotators without any assignment have no row.
 */
export async function annotatorAssignmentStats(db: Executor, annotatorId?: number): Promise<AnnotatorAssignmentStats[]> {
  const who: Expression<SqlBool> = annotatorId === undefined ? sql<SqlBool>`true` : sql<SqlBool>`annotator_id = ${annotatorId}`;
  const { rows } = await sql<AnnotatorAssignmentStats>`
    SELECT annotator_id, sum(total)::int AS total, sum(completed)::int AS completed,
           sum(cancelled)::int AS cancelled, sum(in_progress)::int AS in_progress
      FROM (SELECT annotator_id, assignments AS total,
                   CASE WHEN status = 'completed' THEN assignments ELSE 0 END AS completed,
                   CASE WHEN status = 'cancelled' THEN assignments ELSE 0 END AS cancelled,
                   0 AS in_progress
              FROM annotator_assignment_counts WHERE ${who}
            UNION ALL
            SELECT annotator_id, 1, 0, 0, (status = 'in_progress')::int
              FROM assignments WHERE ${OPEN} AND ${who}) AS x
     GROUP BY annotator_id
    HAVING sum(total) > 0
     ORDER BY annotator_id`.execute(db);
  return rows;
}

export interface AnnotatorCompletionRow {
  id: number;
  name: string;
  /** Every assignment, whatever its status. */
  total: number;
  completed: number;
  cancelled: number;
}

/**
 * Every annotator that is not deleted, by id, with its assignment counts (GET /api/monitoring's
 * summaries): closed ones from the per-annotator rollup (migration 0014), open ones from the open
 * work per workflow and annotator (workflow_annotator_open, migration 0026) — one row per
 * annotator and per workflow they hold open work in, not one per assignment.
 */
export async function annotatorCompletion(db: Executor): Promise<AnnotatorCompletionRow[]> {
  const { rows } = await sql<AnnotatorCompletionRow>`
    SELECT a.id, a.name, (coalesce(c.total, 0) + coalesce(o.open, 0))::int AS total,
           coalesce(c.completed, 0)::int AS completed, coalesce(c.cancelled, 0)::int AS cancelled
      FROM annotators a
      LEFT JOIN (SELECT annotator_id, sum(assignments) AS total,
                        sum(assignments) FILTER (WHERE status = 'completed') AS completed,
                        sum(assignments) FILTER (WHERE status = 'cancelled') AS cancelled
                   FROM annotator_assignment_counts GROUP BY annotator_id) c ON c.annotator_id = a.id
      LEFT JOIN (SELECT annotator_id, sum(assignments) AS open
                   FROM workflow_annotator_open GROUP BY annotator_id) o ON o.annotator_id = a.id
     WHERE a.status <> 'deleted'
     ORDER BY a.id`.execute(db);
  return rows;
}
