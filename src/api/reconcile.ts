/**
 * POST /api/reconcile: force-syncs batches with Label Studio now. Under the reconciler's advisory
 * lock (LOCKS.reconcile, shared by every replica and `fleet reconcile`) it runs the batches pass
 * with every in-progress batch compared (orchestrator/batches-step.ts): annotations whose webhooks
 * never arrived are ingested, review decisions applied, finished batches exported and completed,
 * next batches assigned and set up.
 *
 * Concurrency: a call made while a pass runs (another call, the loop, another replica) WAITS for
 * that pass to finish and then runs its own, so its answer always reflects a comparison that
 * started after the request. Response: {reconciled: batches compared with Label Studio,
 * completed: batches completed by this pass, errors: one line per failure}.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { LOCKS } from '../db/index.ts';
import { runBatchesPass, type BatchesReport } from '../../orchestrator/batches-step.ts';
import { errors, jsonContent } from './common.ts';
import { createRouter } from './router.ts';

const ReconcileResult = z
  .object({
    reconciled: z.number().int(),
    completed: z.number().int(),
    errors: z.array(z.string()),
  })
  .openapi('ReconcileResult');

export function reconcileRoutes(ctx: AppContext) {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: 'post',
      path: '/reconcile',
      tags: ['system'],
      summary: 'Compare in-progress batches with Label Studio now (waits for a running pass)',
      responses: { 200: jsonContent(ReconcileResult, 'What the pass did'), 401: errors[401] },
    }),
    async (c) => {
      const report = (await ctx.database.withAdvisoryLock(LOCKS.reconcile, () => runBatchesPass(ctx, { force: true }), {
        wait: true,
      })) as BatchesReport;
      return c.json({ reconciled: report.counts.reconciled, completed: report.counts.completed, errors: report.errors }, 200);
    },
  );

  return app;
}
