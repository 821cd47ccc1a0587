/**
 * GET /api/quality: gold-standard accuracy and review outcomes.
 *
 * Definitions (README "Quality" mirrors them):
 * - accuracy: the mean gold score (0..1) of an annotator's gold results, rounded to 4 decimals;
 *   null without results. overallAccuracy is the same over every gold result (deleted annotators
 *   included); null when there are none.
 * - accuracyThreshold: setting `quality.accuracyThreshold` (default 0.7).
 * - belowThresholdCount: annotators, not deleted, with at least `quality.minEvaluations` (default
 *   5) gold results whose accuracy is below the threshold (the same rule that flags them).
 * - reworkRate: rejections ÷ reviewed items over the whole fleet = rejection rows ÷ the sum of
 *   every annotator's reviewedCount (a review, accept or reject, counts once), 4 decimals; 0 when
 *   nothing was reviewed. The denominator is never below the numerator, so the rate stays ≤ 1.
 * - annotatorScores: annotators, not deleted, with a gold result, a review or an overlap item
 *   compared with its consensus, by id: accuracy, evaluationCount, rejectionCount and
 *   reviewedCount (the annotator's counters), rejectionRate = rejectionCount ÷ reviewedCount
 *   (4 decimals, 0 when none reviewed, at most 1); agreementWithConsensus and agreementItemCount
 *   over every overlap workflow, from the agreement rollups (agreement_annotators: Σ similarity ÷
 *   Σ compared controls, 4 decimals, null when none; Σ items), as GET /api/workflows/:id/agreement
 *   reports them per workflow.
 * - recentEvaluations: the newest 20 gold results (goldTaskName null when the task has no name or
 *   is gone). recentRejections: the newest 20 rejections, with both annotators' names.
 *
 * The report is computed by src/db/quality.ts (shared with the console); this file documents and
 * serves it (the typed response keeps the repository's result type to QualitySchema).
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { AppContext } from '../context.ts';
import { qualityReport } from '../db/quality.ts';
import { errors, jsonContent, Timestamp } from './common.ts';
import { createRouter } from './router.ts';

const AnnotatorScore = z
  .object({
    annotatorId: z.number().int(),
    annotatorName: z.string(),
    accuracy: z.number().nullable(),
    evaluationCount: z.number().int(),
    rejectionCount: z.number().int(),
    reviewedCount: z.number().int(),
    rejectionRate: z.number(),
    agreementWithConsensus: z.number().nullable().openapi({
      description:
        'Overlap workflows: mean similarity (0..1, 4 decimals) of their answers to the consensus over every compared control; null when none',
    }),
    agreementItemCount: z.number().int().openapi({ description: 'Overlap items with two or more answers that they annotated (compared with the consensus)' }),
  })
  .openapi('AnnotatorScore');
const Evaluation = z
  .object({
    annotatorId: z.number().int(),
    annotatorName: z.string(),
    goldTaskName: z.string().nullable(),
    score: z.number(),
    evaluatedAt: Timestamp,
  })
  .openapi('QualityEvaluation');
const RecentRejection = z
  .object({
    originalAnnotatorId: z.number().int().nullable(),
    originalAnnotatorName: z.string().nullable(),
    reviewerAnnotatorName: z.string().nullable(),
    imageKey: z.string(),
    reason: z.string().nullable(),
    actionTaken: z.enum(['none', 'archive', 'route_to_workflow']),
    createdAt: Timestamp,
  })
  .openapi('QualityRejection');
export const QualitySchema = z
  .object({
    overallAccuracy: z.number().nullable(),
    accuracyThreshold: z.number(),
    belowThresholdCount: z.number().int(),
    reworkRate: z.number(),
    annotatorScores: z.array(AnnotatorScore),
    recentEvaluations: z.array(Evaluation),
    recentRejections: z.array(RecentRejection),
  })
  .openapi('Quality');

export function qualityRoutes(ctx: AppContext) {
  const app = createRouter();
  const { db } = ctx.database;

  app.openapi(
    createRoute({
      method: 'get',
      path: '/quality',
      tags: ['quality'],
      summary: 'Gold accuracy, threshold, rework rate, per-annotator scores, recent evaluations and rejections',
      responses: { 200: jsonContent(QualitySchema, 'Quality'), 401: errors[401] },
    }),
    async (c) => c.json(await qualityReport(db, { log: c.get('log') }), 200),
  );

  return app;
}
