/**
 * Batch (assignment) reads for the console and, in phase 2 of issue 12, GET /api/assignments: one
 * filtered page newest first with annotator and workflow names and the batch's problem, and the
 * counts the overview shows; one batch and what GET /api/assignments/:id shows with it
 * (findAssignment, assignmentRelations) and the batches a rejection names (assignmentsWithWorkflow).
 * Functions take `db | trx` first.
 *
 * A batch has a problem when it is open (pending or in progress) and either shows a `problem`
 * (src/domain/batch-decision.ts batchProblem), carries an error (a
 * provisioning attempt failed and is being retried) or its annotator's Label Studio is not running
 * (status other than active or starting), or when it failed within the last 24 hours.
 */
import { sql, type ExpressionBuilder } from 'kysely';
import { notFound } from '../errors.ts';
import type { Assignment, AssignmentStatus, Database } from './types.ts';
import type { Executor } from './index.ts';
import type { Page } from './annotators.ts';

export const ASSIGNMENT_STATUS_VALUES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;
export const PROBLEM_WINDOW_HOURS = 24;

export interface AssignmentFilter {
  workflowId?: number;
  annotatorId?: number;
  status?: AssignmentStatus;
  /** Only batches with a problem (see the module comment). */
  problems?: boolean;
}

type Eb = ExpressionBuilder<Database & { a: Database['assignments']; an: Database['annotators'] }, 'a' | 'an'>;

/** The problem of a batch in words, or null: one SQL expression for the list and the counts. */
const problemText = sql<string | null>`CASE
    WHEN a.status = 'failed' THEN 'failed' || coalesce(': ' || a.error, '')
    WHEN a.status IN ('pending', 'in_progress') AND a.problem_code IS NOT NULL THEN a.problem_message
    WHEN a.status IN ('pending', 'in_progress') AND a.error IS NOT NULL THEN a.error
    WHEN a.status IN ('pending', 'in_progress') AND an.status NOT IN ('active', 'starting') THEN 'annotator is ' || an.status::text
    ELSE NULL END`;

const hasProblem = (eb: Eb) =>
  eb.or([
    eb.and([eb('a.status', '=', 'failed'), eb('a.updatedAt', '>', sql<Date>`now() - make_interval(hours => ${PROBLEM_WINDOW_HOURS})`)]),
    eb.and([
      eb('a.status', 'in', ['pending', 'in_progress']),
      eb.or([eb('a.error', 'is not', null), eb('a.problemCode', 'is not', null), eb('an.status', 'not in', ['active', 'starting'])]),
    ]),
  ]);

function filtered(db: Executor, f: AssignmentFilter) {
  let q = db.selectFrom('assignments as a').innerJoin('annotators as an', 'an.id', 'a.annotatorId');
  if (f.workflowId !== undefined) q = q.where('a.workflowId', '=', f.workflowId);
  if (f.annotatorId !== undefined) q = q.where('a.annotatorId', '=', f.annotatorId);
  if (f.status !== undefined) q = q.where('a.status', '=', f.status);
  if (f.problems) q = q.where((eb) => hasProblem(eb as unknown as Eb));
  return q;
}

/** One page of batches, newest first, with names and the problem, and the number matching. */
export async function listAssignments(db: Executor, filter: AssignmentFilter, page: Page) {
  const base = filtered(db, filter);
  const [rows, total] = await Promise.all([
    base
      .innerJoin('workflows as w', 'w.id', 'a.workflowId')
      .select([
        'a.id',
        'a.workflowId',
        'a.annotatorId',
        'a.status',
        'a.taskCount',
        'a.goldTaskCount',
        'a.completedCount',
        'a.lsProjectId',
        'a.error',
        'a.exportKey',
        'a.startedAt',
        'a.completedAt',
        'a.createdAt',
        'a.updatedAt',
        'an.name as annotatorName',
        'an.status as annotatorStatus',
        'w.name as workflowName',
        problemText.as('problem'),
      ])
      .orderBy('a.createdAt', 'desc')
      .orderBy('a.id', 'desc')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    base.select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: total.n };
}
export type AssignmentListRow = Awaited<ReturnType<typeof listAssignments>>['rows'][number];

/** Open batches by status and how many batches have a problem. */
export async function batchCounts(db: Executor) {
  const [open, problems] = await Promise.all([
    db
      .selectFrom('assignments')
      .select([
        sql<number>`count(*) FILTER (WHERE status = 'pending')::int`.as('pending'),
        sql<number>`count(*) FILTER (WHERE status = 'in_progress')::int`.as('inProgress'),
      ])
      .where('status', 'in', ['pending', 'in_progress'])
      .executeTakeFirstOrThrow(),
    filtered(db, { problems: true }).select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow(),
  ]);
  return { pending: open.pending, inProgress: open.inProgress, problems: problems.n };
}

/** The assignments `ids` (any order; unknown ids are skipped) with their workflow's name. Reads only. */
export async function assignmentsWithWorkflow(db: Executor, ids: number[]) {
  if (!ids.length) return [];
  return db
    .selectFrom('assignments')
    .innerJoin('workflows', 'workflows.id', 'assignments.workflowId')
    .selectAll('assignments')
    .select('workflows.name as workflowName')
    .where('assignments.id', 'in', ids)
    .execute();
}

/** Assignment `id` (no lock). Errors: notFound('Assignment') (404) when there is none. */
export async function findAssignment(db: Executor, id: number): Promise<Assignment> {
  const row = await db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound('Assignment');
  return row;
}

/**
 * What GET /api/assignments/:id shows beside `assignment` itself: its annotator (with role name and
 * colour), its workflow (with labeling config name and XML), its tasks and its gold results, both
 * by id. Throws (NoResultError) only if the annotator or workflow row is gone, which the foreign
 * keys prevent. Reads only.
 */
export async function assignmentRelations(db: Executor, assignment: Pick<Assignment, 'id' | 'annotatorId' | 'workflowId'>) {
  const [annotator, workflow, tasks, goldResults] = await Promise.all([
    db
      .selectFrom('annotators')
      .leftJoin('roles', 'roles.id', 'annotators.roleId')
      .select([
        'annotators.id',
        'annotators.name',
        'annotators.email',
        'annotators.status',
        'annotators.roleId',
        'roles.name as roleName',
        'roles.color as roleColor',
      ])
      .where('annotators.id', '=', assignment.annotatorId)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('workflows')
      .leftJoin('labelingConfigs', 'labelingConfigs.id', 'workflows.labelingConfigId')
      .select([
        'workflows.id',
        'workflows.name',
        'workflows.roleId',
        'workflows.labelingConfigId',
        'workflows.s3SourcePath',
        'workflows.s3ExportPath',
        'labelingConfigs.name as configName',
        'labelingConfigs.configXml',
      ])
      .where('workflows.id', '=', assignment.workflowId)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('assignmentTasks')
      .select([
        'id',
        's3ImageKey',
        'isGold',
        'goldTaskId',
        'lsTaskId',
        'lsAnnotationId',
        'status',
        'result',
        'leadTimeSeconds',
        'annotatedAt',
        'createdAt',
        'updatedAt',
      ])
      .where('assignmentId', '=', assignment.id)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('goldResults')
      .select(['id', 'assignmentTaskId', 'goldTaskId', 'score', 'details', 'evaluatedAt'])
      .where('assignmentId', '=', assignment.id)
      .orderBy('id')
      .execute(),
  ]);
  return { annotator, workflow, tasks, goldResults };
}
