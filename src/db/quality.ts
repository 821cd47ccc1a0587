/**
 * The quality report — gold accuracy, threshold, rework rate, per-annotator scores, recent gold
 * evaluations and rejections — shared by GET /api/quality (src/api/quality.ts, whose header defines
 * every figure) and the console's overview and quality pages, so each figure is computed once.
 * Takes `db | trx` first; timestamps come back as ISO 8601 strings, the API's form.
 */
import { sql } from 'kysely';
import { ratio } from '../domain/time-buckets.ts';
import type { Logger } from '../logger.ts';
import { isBelowThreshold, readQualitySettings } from '../workflows/quality.ts';
import { meanAccuracy, overallAccuracy } from './accuracy.ts';
import type { Executor } from './index.ts';
import type { RejectionMode } from './types.ts';

/** One annotator's score as read (GET /api/quality's annotatorScores entry without rejectionRate). */
interface ScoreRow {
  annotatorId: number;
  annotatorName: string;
  /** Mean gold score (0..1, 4 decimals); null without results. */
  accuracy: number | null;
  evaluationCount: number;
  rejectionCount: number;
  reviewedCount: number;
  agreementWithConsensus: number | null;
  agreementItemCount: number;
}

/** A gold result; `At` is Date as read, string (ISO 8601) as reported. */
interface Evaluation<At> {
  annotatorId: number;
  annotatorName: string;
  goldTaskName: string | null;
  score: number;
  evaluatedAt: At;
}

/** A rejection with both annotators' names; `At` is Date as read, string (ISO 8601) as reported. */
interface RecentRejection<At> {
  originalAnnotatorId: number | null;
  originalAnnotatorName: string | null;
  reviewerAnnotatorName: string | null;
  imageKey: string;
  reason: string | null;
  actionTaken: RejectionMode;
  createdAt: At;
}

/** GET /api/quality's body (the route's QualitySchema; src/api/quality.ts defines each figure). */
export interface Quality {
  /** Mean gold score (0..1, 4 decimals) over every gold result; null without results. */
  overallAccuracy: number | null;
  /** Setting `quality.accuracyThreshold`. */
  accuracyThreshold: number;
  belowThresholdCount: number;
  /** Fleet rejections ÷ reviewed items (0..1, 4 decimals). */
  reworkRate: number;
  /** rejectionRate: rejectionCount ÷ reviewedCount (0..1, 4 decimals). */
  annotatorScores: (ScoreRow & { rejectionRate: number })[];
  /** The newest 20 gold results. */
  recentEvaluations: Evaluation<string>[];
  /** The newest 20 rejections. */
  recentRejections: RecentRejection<string>[];
}

/** rejections ÷ reviewed, where a reviewed count below the rejections is taken as the rejections. */
const rejectionShare = (rejected: number, reviewed: number) => ratio(rejected, Math.max(reviewed, rejected));

/**
 * The fleet's quality report (GET /api/quality's body), read now; settings per
 * readQualitySettings (an invalid stored value warns on `opts.log` and falls back to its default).
 * Reads only; throws only database errors.
 */
export async function qualityReport(db: Executor, opts: { log?: Pick<Logger, 'warn'> } = {}): Promise<Quality> {
  const [settings, scores, fleet, evaluations, rejections] = await Promise.all([
    readQualitySettings(db, opts.log),
    sql<ScoreRow>`
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
    sql<Evaluation<Date>>`
      SELECT g.annotator_id, a.name AS annotator_name, t.name AS gold_task_name, g.score, g.evaluated_at
        FROM gold_results g
        JOIN annotators a ON a.id = g.annotator_id
        LEFT JOIN gold_tasks t ON t.id = g.gold_task_id
       ORDER BY g.evaluated_at DESC, g.id DESC
       LIMIT 20`.execute(db),
    sql<RecentRejection<Date>>`
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
      evaluatedAt: e.evaluatedAt.toISOString(),
    })),
    recentRejections: rejections.rows.map((r) => ({
      originalAnnotatorId: r.originalAnnotatorId,
      originalAnnotatorName: r.originalAnnotatorName,
      reviewerAnnotatorName: r.reviewerAnnotatorName,
      imageKey: r.imageKey,
      reason: r.reason,
      actionTaken: r.actionTaken,
      createdAt: r.createdAt.toISOString(),
    })),
  };
}
