/** Assignments: batches of work in flight, one Label Studio project each. */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { assignmentTotal } from '../db/counts.ts';
import { listPage } from '../db/list-page.ts';
import { assignmentRelations, findAssignment } from '../db/assignments.ts';
import type { Assignment } from '../db/types.ts';
import { PROBLEM_CODES, type ProblemCode } from '../domain/batch-decision.ts';
import { conflict, notFound } from '../errors.ts';
import { OPEN_ASSIGNMENT_STATUSES } from '../workflows/annotators.ts';
import { taskConsensus } from '../workflows/consensus.ts';
import {
  EntityRef,
  Envelope,
  envelope,
  errors,
  idString,
  IdParam,
  iso,
  isoRequired,
  jsonContent,
  PaginationQuery,
  SuccessSchema,
  Timestamp,
} from './common.ts';
import { createRouter } from './router.ts';

export const ASSIGNMENT_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;

const NullableTimestamp = Timestamp.nullable();

export const ProblemSchema = z
  .object({
    code: z.enum(PROBLEM_CODES),
    message: z.string(),
    since: Timestamp,
  })
  .openapi('BatchProblem');

const toProblem = (a: Assignment) =>
  a.problemCode && a.problemSince
    ? { code: a.problemCode as ProblemCode, message: a.problemMessage ?? '', since: isoRequired(a.problemSince) }
    : null;

export const AssignmentSchema = z
  .object({
    id: z.number().int(),
    workflowId: z.number().int(),
    annotatorId: z.number().int(),
    lsProjectId: z.number().int().nullable(),
    taskCount: z.number().int(),
    goldTaskCount: z.number().int(),
    completedCount: z.number().int(),
    status: z.enum(ASSIGNMENT_STATUSES),
    error: z.string().nullable(),
    exportKey: z.string().nullable(),
    startedAt: NullableTimestamp,
    completedAt: NullableTimestamp,
    createdAt: Timestamp,
    updatedAt: Timestamp,
    problem: ProblemSchema.nullable().openapi({ description: 'What the open batch waits on (README "Batches"); null when nothing' }),
    removedTaskCount: z
      .number()
      .int()
      .openapi({ description: 'Tasks deleted in Label Studio: their images went back to the queue; taskCount no longer counts them' }),
  })
  .openapi('Assignment');

export const toAssignment = (a: Assignment) => ({
  id: a.id,
  workflowId: a.workflowId,
  annotatorId: a.annotatorId,
  lsProjectId: a.lsProjectId,
  taskCount: a.taskCount,
  goldTaskCount: a.goldTaskCount,
  completedCount: a.completedCount,
  status: a.status,
  error: a.error,
  exportKey: a.exportKey,
  startedAt: iso(a.startedAt),
  completedAt: iso(a.completedAt),
  createdAt: isoRequired(a.createdAt),
  updatedAt: isoRequired(a.updatedAt),
  problem: toProblem(a),
  removedTaskCount: a.removedTaskCount,
});

export const RoleRefSchema = z.object({ id: z.number().int(), name: z.string(), color: z.string().nullable() }).openapi('RoleRef');
export const AnnotatorRefSchema = z
  .object({ id: z.number().int(), name: z.string(), email: z.string() })
  .openapi('AnnotatorRef');

const ANNOTATOR_STATUS_VALUES = ['created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted'] as const;
const AssignmentAnnotator = AnnotatorRefSchema.extend({ status: z.enum(ANNOTATOR_STATUS_VALUES) });

const AssignmentListItem = AssignmentSchema.extend({ annotator: AssignmentAnnotator, workflow: EntityRef }).openapi(
  'AssignmentListItem',
);

const TaskConsensusSchema = z
  .object({
    itemId: z.number().int().openapi({ description: "The overlap workflow's item" }),
    role: z
      .enum(['annotator', 'adjudicator'])
      .openapi({ description: "annotator: the task holds one of the item's seats; adjudicator: it adjudicates the item" }),
    overlap: z.number().int().openapi({ description: 'Annotations the item needs' }),
    answersIn: z.number().int().openapi({ description: 'Annotations already final (their batch completed)' }),
    status: z
      .enum(['waiting', 'accepted', 'adjudication', 'adjudicated'])
      .openapi({ description: 'waiting: answers still missing; then the item\'s outcome' }),
    agreement: z.number().nullable().openapi({ description: 'Item agreement 0..1; null while waiting or with fewer than two answers' }),
    confidence: z.number().nullable().openapi({ description: "The consensus's confidence 0..1; null while waiting" }),
    method: z.string().nullable(),
    controls: z.array(z.object({ fromName: z.string(), agreement: z.number().nullable(), confidence: z.number() })),
    result: z.unknown().nullable().openapi({ description: "The item's result: the adjudicator's once adjudicated, else the consensus; null while waiting" }),
    agreementWithConsensus: z
      .number()
      .nullable()
      .openapi({ description: "This task's answer compared with the consensus (0..1); annotator role only, once finished" }),
  })
  .openapi('TaskConsensus');

const AssignmentTaskSchema = z
  .object({
    id: z.number().int(),
    s3ImageKey: z.string(),
    isGold: z.boolean(),
    goldTaskId: z.number().int().nullable(),
    lsTaskId: z.number().int().nullable(),
    lsAnnotationId: z.number().int().nullable(),
    status: z.enum(['open', 'annotated', 'removed']).openapi({ description: 'removed: deleted in Label Studio, left out of the batch' }),
    result: z.unknown().nullable(),
    leadTimeSeconds: z.number().nullable(),
    annotatedAt: NullableTimestamp,
    createdAt: Timestamp,
    updatedAt: Timestamp,
    consensus: TaskConsensusSchema.nullable().openapi({
      description: 'Overlap workflows (README "Overlap and consensus"): the item\'s agreement and consensus; null for other tasks',
    }),
  })
  .openapi('AssignmentTask');

const GoldResultSchema = z
  .object({
    id: z.number().int(),
    assignmentTaskId: z.number().int(),
    goldTaskId: z.number().int().nullable(),
    score: z.number(),
    details: z.unknown().nullable(),
    evaluatedAt: Timestamp,
  })
  .openapi('GoldResult');

const AssignmentDetail = AssignmentSchema.extend({
  annotator: AssignmentAnnotator.extend({ roleId: z.number().int().nullable(), role: RoleRefSchema.nullable() }),
  workflow: z.object({
    id: z.number().int(),
    name: z.string(),
    roleId: z.number().int().nullable(),
    labelingConfigId: z.number().int().nullable(),
    s3SourcePath: z.string(),
    s3ExportPath: z.string(),
    labelingConfig: z.object({ id: z.number().int(), name: z.string(), configXml: z.string() }).nullable(),
  }),
  tasks: z.array(AssignmentTaskSchema),
  goldResults: z.array(GoldResultSchema),
}).openapi('AssignmentDetail');

const ListQuery = PaginationQuery.extend({
  workflowId: idString.optional().openapi({ type: 'integer', description: 'Filter by workflow' }),
  annotatorId: idString.optional().openapi({ type: 'integer', description: 'Filter by annotator' }),
  status: z.enum(ASSIGNMENT_STATUSES).optional(),
});

export function assignmentRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/assignments',
      tags: ['assignments'],
      summary: 'List assignments, newest first (paginated envelope)',
      request: { query: ListQuery },
      responses: { 200: jsonContent(Envelope(AssignmentListItem), 'Assignments'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const filter = { workflowId: q.workflowId, annotatorId: q.annotatorId, status: q.status };
      let base = db.selectFrom('assignments');
      if (q.workflowId !== undefined) base = base.where('assignments.workflowId', '=', q.workflowId);
      if (q.annotatorId !== undefined) base = base.where('assignments.annotatorId', '=', q.annotatorId);
      if (q.status !== undefined) base = base.where('assignments.status', '=', q.status);
      const { rows, total } = await listPage(
        db,
        base,
        (b) =>
          b
            .innerJoin('annotators', 'annotators.id', 'assignments.annotatorId')
            .innerJoin('workflows', 'workflows.id', 'assignments.workflowId')
            .selectAll('assignments')
            .select([
              'annotators.name as annotatorName',
              'annotators.email as annotatorEmail',
              'annotators.status as annotatorStatus',
              'workflows.name as workflowName',
            ])
            .orderBy('assignments.createdAt', 'desc')
            .orderBy('assignments.id', 'desc'),
        q,
        assignmentTotal(db, filter),
      );
      const data = rows.map((r) => ({
        ...toAssignment(r),
        annotator: { id: r.annotatorId, name: r.annotatorName, email: r.annotatorEmail, status: r.annotatorStatus },
        workflow: { id: r.workflowId, name: r.workflowName },
      }));
      return c.json(envelope(data, total, q), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/assignments/{id}',
      tags: ['assignments'],
      summary: 'Get an assignment with its annotator (and role), workflow (and labeling config), tasks and gold results',
      request: { params: IdParam },
      responses: { 200: jsonContent(AssignmentDetail, 'Assignment'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const assignment = await findAssignment(db, id);
      const [{ annotator, workflow, tasks, goldResults }, consensus] = await Promise.all([assignmentRelations(db, assignment), taskConsensus(db, id)]);
      const { roleName, roleColor, ...annotatorFields } = annotator;
      const { configName, configXml, ...workflowFields } = workflow;
      return c.json(
        {
          ...toAssignment(assignment),
          annotator: {
            ...annotatorFields,
            role: annotator.roleId !== null && roleName !== null ? { id: annotator.roleId, name: roleName, color: roleColor } : null,
          },
          workflow: {
            ...workflowFields,
            labelingConfig:
              workflow.labelingConfigId !== null && configName !== null && configXml !== null
                ? { id: workflow.labelingConfigId, name: configName, configXml }
                : null,
          },
          tasks: tasks.map((t) => ({
            id: t.id,
            s3ImageKey: t.s3ImageKey,
            isGold: t.isGold,
            goldTaskId: t.goldTaskId,
            lsTaskId: t.lsTaskId,
            lsAnnotationId: t.lsAnnotationId,
            status: t.status,
            result: t.result ?? null,
            leadTimeSeconds: t.leadTimeSeconds,
            annotatedAt: iso(t.annotatedAt),
            createdAt: isoRequired(t.createdAt),
            updatedAt: isoRequired(t.updatedAt),
            consensus: consensus.get(t.id) ?? null,
          })),
          goldResults: goldResults.map((g) => ({
            id: g.id,
            assignmentTaskId: g.assignmentTaskId,
            goldTaskId: g.goldTaskId,
            score: g.score,
            details: g.details ?? null,
            evaluatedAt: isoRequired(g.evaluatedAt),
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/assignments/{id}',
      tags: ['assignments'],
      summary: 'Cancel a pending or in-progress assignment (409 otherwise)',
      request: { params: IdParam },
      responses: {
        200: jsonContent(SuccessSchema, 'Cancelled'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await db.transaction().execute(async (trx) => {
        // The row lock orders this cancel against a concurrent completion: whichever commits
        // second sees the other's status.
        const row = await trx.selectFrom('assignments').select('status').where('id', '=', id).forUpdate().executeTakeFirst();
        if (!row) throw notFound('Assignment');
        if (!(OPEN_ASSIGNMENT_STATUSES as readonly string[]).includes(row.status)) {
          throw conflict(`Cannot cancel assignment with status ${row.status}`, { status: row.status });
        }
        await trx.updateTable('assignments').set({ status: 'cancelled', updatedAt: sql<Date>`now()` }).where('id', '=', id).execute();
      });
      ctx.wake(`assignment ${id} cancelled`);
      return c.json({ success: true as const }, 200);
    },
  );

  return app;
}
