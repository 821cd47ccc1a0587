/**
 * POST /api/workflows/{id}/assign: a manual assignment. Records the batch (status pending, its
 * images reserved, gold mixed in) in one transaction and wakes the reconciler, which creates the
 * Label Studio project, registers the webhook and imports the tasks (lsProjectId is null until
 * then; poll GET /api/assignments/{id}).
 *
 * Errors: 400 annotator unknown, not active or not of the workflow's role; 404 workflow missing;
 * 409 workflow paused or without a labeling config, maxProjects reached, or no images available.
 * A root workflow whose queue is empty is synced from S3 first (incrementally), so an assignment
 * right after creating a workflow finds its images.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { assignBatch, assignError, hasQueuedItems, toAssignmentSummary } from '../workflows/assign.ts';
import { syncCatalog } from '../workflows/catalog.ts';
import { fleetBucket, storageFor } from '../storage/s3.ts';
import { errors, idField, IdParam, jsonBody, jsonContent } from './common.ts';
import { createRouter } from './router.ts';

const AssignBody = z.strictObject({ annotatorId: idField }).openapi('AssignWorkflow');

const AssignResponse = z
  .object({
    success: z.literal(true),
    assignment: z.object({
      id: z.number().int(),
      workflowId: z.number().int(),
      annotatorId: z.number().int(),
      lsProjectId: z.number().int().nullable(),
      taskCount: z.number().int(),
      goldTaskCount: z.number().int(),
      status: z.enum(['pending', 'in_progress', 'completed', 'failed', 'cancelled']),
    }),
  })
  .openapi('AssignWorkflowResult');

export function workflowAssignRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/workflows/{id}/assign',
      tags: ['workflows'],
      summary: 'Assign a batch of this workflow to an annotator now',
      request: { params: IdParam, ...jsonBody(AssignBody) },
      responses: {
        200: jsonContent(AssignResponse, 'The batch, pending until Label Studio is set up'),
        400: errors[400],
        401: errors[401],
        404: errors[404],
        409: errors[409],
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { annotatorId } = c.req.valid('json');
      const workflow = await db
        .selectFrom('workflows')
        .select(['id', 's3SourcePath', 'previousWorkflowId'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (workflow && workflow.previousWorkflowId === null && !(await hasQueuedItems(db, id, annotatorId))) {
        try {
          const bucket = await fleetBucket(db, ctx.config);
          await syncCatalog({ database: ctx.database, storage: storageFor(ctx.config), bucket }, workflow, { force: true });
        } catch (err) {
          (c.get('log') ?? ctx.logger).warn({ err, workflowId: id }, 'catalog sync before manual assignment failed');
        }
      }
      const result = await assignBatch(db, { workflowId: id, annotatorId });
      if (!result.ok) throw assignError(result);
      ctx.wake(`assignment ${result.assignment.id} created`);
      return c.json({ success: true as const, assignment: toAssignmentSummary(result.assignment) }, 200);
    },
  );

  return app;
}
