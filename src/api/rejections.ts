/** Rejections: the audit trail of reviewed items a reviewer rejected, and what was done about them. */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { assignmentsWithWorkflow } from '../db/assignments.ts';
import { findRejection, listRejections, type RejectionRow } from '../db/rejections.ts';
import { AnnotatorRefSchema, AssignmentSchema, toAssignment } from './assignments.ts';
import {
  EntityRef,
  Envelope,
  envelope,
  errors,
  idString,
  IdParam,
  isoRequired,
  jsonContent,
  PaginationQuery,
  Timestamp,
} from './common.ts';
import { createRouter } from './router.ts';

export const REJECTION_ACTIONS = ['none', 'archive', 'route_to_workflow'] as const;

const RejectionBase = z.object({
  id: z.number().int(),
  workflowId: z.number().int().openapi({ description: "The reviewer's workflow" }),
  originalAnnotatorId: z.number().int().nullable(),
  reviewerAnnotatorId: z.number().int().nullable(),
  originalAssignmentId: z.number().int().nullable(),
  reviewerAssignmentId: z.number().int().nullable(),
  routedToAssignmentId: z.number().int().nullable(),
  imageKey: z.string(),
  reason: z.string().nullable(),
  actionTaken: z.enum(REJECTION_ACTIONS),
  reworkIteration: z.number().int(),
  createdAt: Timestamp,
  originalAnnotator: AnnotatorRefSchema.nullable(),
  reviewerAnnotator: AnnotatorRefSchema.nullable(),
});
export const RejectionSchema = RejectionBase.openapi('Rejection');

const NestedAssignment = AssignmentSchema.extend({ workflow: EntityRef }).nullable();
const RejectionDetail = RejectionBase.extend({
  reviewerAssignment: NestedAssignment,
  originalAssignment: NestedAssignment,
  routedToAssignment: NestedAssignment,
}).openapi('RejectionDetail');

const ref = (id: number | null, name: string | null, email: string | null) =>
  id !== null && name !== null && email !== null ? { id, name, email } : null;

export const toRejection = (r: RejectionRow) => ({
  id: r.id,
  workflowId: r.workflowId,
  originalAnnotatorId: r.originalAnnotatorId,
  reviewerAnnotatorId: r.reviewerAnnotatorId,
  originalAssignmentId: r.originalAssignmentId,
  reviewerAssignmentId: r.reviewerAssignmentId,
  routedToAssignmentId: r.routedToAssignmentId,
  imageKey: r.imageKey,
  reason: r.reason,
  actionTaken: r.actionTaken,
  reworkIteration: r.reworkIteration,
  createdAt: isoRequired(r.createdAt),
  originalAnnotator: ref(r.originalAnnotatorId, r.originalName, r.originalEmail),
  reviewerAnnotator: ref(r.reviewerAnnotatorId, r.reviewerName, r.reviewerEmail),
});

const ListQuery = PaginationQuery.extend({
  workflowId: idString.optional().openapi({ type: 'integer', description: "Filter by the reviewer's workflow" }),
  annotatorId: idString.optional().openapi({ type: 'integer', description: 'Filter by the original annotator' }),
  actionTaken: z.enum(REJECTION_ACTIONS).optional(),
});

export function rejectionRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/rejections',
      tags: ['rejections'],
      summary: 'List rejections, newest first (paginated envelope)',
      request: { query: ListQuery },
      responses: { 200: jsonContent(Envelope(RejectionSchema), 'Rejections'), 400: errors[400], 401: errors[401] },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const { rows, total } = await listRejections(db, { workflowId: q.workflowId, annotatorId: q.annotatorId, actionTaken: q.actionTaken }, q);
      return c.json(envelope(rows.map(toRejection), total, q), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/rejections/{id}',
      tags: ['rejections'],
      summary: 'Get a rejection with its annotators and assignments',
      request: { params: IdParam },
      responses: { 200: jsonContent(RejectionDetail, 'Rejection'), 400: errors[400], 401: errors[401], 404: errors[404] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await findRejection(db, id);
      const ids = [row.reviewerAssignmentId, row.originalAssignmentId, row.routedToAssignmentId].filter((x): x is number => x !== null);
      const assignments = await assignmentsWithWorkflow(db, ids);
      const byId = new Map(assignments.map((a) => [a.id, { ...toAssignment(a), workflow: { id: a.workflowId, name: a.workflowName } }]));
      const nested = (assignmentId: number | null) => (assignmentId === null ? null : (byId.get(assignmentId) ?? null));
      return c.json(
        {
          ...toRejection(row),
          reviewerAssignment: nested(row.reviewerAssignmentId),
          originalAssignment: nested(row.originalAssignmentId),
          routedToAssignment: nested(row.routedToAssignmentId),
        },
        200,
      );
    },
  );

  return app;
}
