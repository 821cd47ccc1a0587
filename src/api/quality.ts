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
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { AppContext } from '../context.ts';
import { meanAccuracy, overallAccuracy } from '../db/accuracy.ts';
import type { Executor } from '../db/index.ts';
import { ratio } from '../domain/time-buckets.ts';
import type { Logger } from '../logger.ts';
import { isBelowThreshold, readQualitySettings } from '../workflows/quality.ts';
import { errors, isoRequired, jsonContent, Timestamp } from './common.ts';
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
export type Quality = z.infer<typeof QualitySchema>;

/** rejections ÷ reviewed, where a reviewed count below the rejections is taken as the rejections. */
const rejectionShare = (rejected: number, reviewed: number) => ratio(rejected, Math.max(reviewed, rejected));

export async function qualityReport(db: Executor, opts: { log?: Pick<Logger, 'warn'> } = {}): Promise<Quality> {
  const [settings, scores, fleet, evaluations, rejections] = await Promise.all([
    readQualitySettings(db, opts.log),
    sql<{
      annotatorId: number;
      annotatorName: string;
      accuracy: number | null;
      evaluationCount: number;
      rejectionCount: number;
      reviewedCount: number;
      agreementWithConsensus: number | null;
      agreementItemCount: number;
    }>`
      SELECT a.id AS annotator_id, a.name AS annotator_name,
             ${meanAccuracy('q')} AS accuracy,
             coalesce(q.evaluation_count, 0) AS evaluation_count,
             a.rejection_count, a.reviewed_count,
             round((g.similarity_sum / nullif(g.answers, 0))::numeric, 4)::float8 AS agreement_with_consensus,
             coalesce(g.items, 0)::int AS agreement_item_count
        FROM annotators a
        LEFT JOIN annotator_quality q ON q.annotator_id = a.id
        LEFT JOIN LATERAL (
          SELECT sum(x.items) AS items, sum(x.answers) AS answers, sum(x.similarity_sum) AS similarity_sum
            FROM agreement_annotators x WHERE x.annotator_id = a.id) g ON true
       WHERE a.status <> 'deleted'
         AND (coalesce(q.evaluation_count, 0) > 0 OR a.reviewed_count > 0 OR a.rejection_count > 0 OR g.items > 0)
       ORDER BY a.id`.execute(db),
    sql<{ overallAccuracy: number | null; rejections: number; reviewed: number }>`
      SELECT (SELECT ${overallAccuracy('q')} FROM annotator_quality q) AS overall_accuracy,
             (SELECT coalesce(sum(rejections), 0)::int FROM workflow_rejection_counts) AS rejections,
             (SELECT coalesce(sum(reviewed_count), 0)::float8 FROM annotators) AS reviewed`.execute(db),
    sql<{ annotatorId: number; annotatorName: string; goldTaskName: string | null; score: number; evaluatedAt: Date }>`
      SELECT g.annotator_id, a.name AS annotator_name, t.name AS gold_task_name, g.score, g.evaluated_at
        FROM gold_results g
        JOIN annotators a ON a.id = g.annotator_id
        LEFT JOIN gold_tasks t ON t.id = g.gold_task_id
       ORDER BY g.evaluated_at DESC, g.id DESC
       LIMIT 20`.execute(db),
    sql<{
      originalAnnotatorId: number | null;
      originalAnnotatorName: string | null;
      reviewerAnnotatorName: string | null;
      imageKey: string;
      reason: string | null;
      actionTaken: 'none' | 'archive' | 'route_to_workflow';
      createdAt: Date;
    }>`
      SELECT r.original_annotator_id, o.name AS original_annotator_name, v.name AS reviewer_annotator_name,
             r.image_key, r.reason, r.action_taken, r.created_at
        FROM rejections r
        LEFT JOIN annotators o ON o.id = r.original_annotator_id
        LEFT JOIN annotators v ON v.id = r.reviewer_annotator_id
       ORDER BY r.created_at DESC, r.id DESC
       LIMIT 20`.execute(db),
  ]);

  const f = fleet.rows[0]!;
  return {
    overallAccuracy: f.overallAccuracy,
    accuracyThreshold: settings.threshold,
    belowThresholdCount: scores.rows.filter((s) => isBelowThreshold(s.accuracy, s.evaluationCount, settings)).length,
    reworkRate: rejectionShare(f.rejections, f.reviewed),
    annotatorScores: scores.rows.map((s) => ({
      annotatorId: s.annotatorId,
      annotatorName: s.annotatorName,
      accuracy: s.accuracy,
      evaluationCount: s.evaluationCount,
      rejectionCount: s.rejectionCount,
      reviewedCount: s.reviewedCount,
      rejectionRate: rejectionShare(s.rejectionCount, s.reviewedCount),
      agreementWithConsensus: s.agreementWithConsensus,
      agreementItemCount: s.agreementItemCount,
    })),
    recentEvaluations: evaluations.rows.map((e) => ({
      annotatorId: e.annotatorId,
      annotatorName: e.annotatorName,
      goldTaskName: e.goldTaskName,
      score: e.score,
      evaluatedAt: isoRequired(e.evaluatedAt),
    })),
    recentRejections: rejections.rows.map((r) => ({
      originalAnnotatorId: r.originalAnnotatorId,
      originalAnnotatorName: r.originalAnnotatorName,
      reviewerAnnotatorName: r.reviewerAnnotatorName,
      imageKey: r.imageKey,
      reason: r.reason,
      actionTaken: r.actionTaken,
      createdAt: isoRequired(r.createdAt),
    })),
  };
}

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
