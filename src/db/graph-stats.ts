/**
 * The workflow graph's per-node stats (GET /api/workflows/graph, the console's graph page), read
 * from the rollup of migrations/0026_workflow_stats.sql: one workflow_stats row per workflow plus
 * the deltas appended since the last fold, in one snapshot — exact at any moment, at a cost that
 * follows the number of workflows (and the unfolded deltas), not the history or the open work.
 * Every function takes `db | trx` first.
 */
import { sql } from 'kysely';
import type { Executor } from './index.ts';

/** Unfolded delta rows above which a reader asks for a fold (the reconciler folds every few seconds anyway). */
export const FOLD_WHEN_PENDING = 5_000;

/** How often the reconciler's `rollups` step folds, ms. */
export const FOLD_INTERVAL_MS = 10_000;

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

/** A reconcile step body (`rollups`) that folds when FOLD_INTERVAL_MS has passed since its last fold. */
export function scheduledFold(intervalMs = FOLD_INTERVAL_MS) {
  let nextAt = 0;
  return async (db: Executor): Promise<{ actions: string[]; errors: string[] }> => {
    if (Date.now() < nextAt) return { actions: [], errors: [] };
    await foldRollups(db);
    nextAt = Date.now() + intervalMs;
    return { actions: [], errors: [] };
  };
}
