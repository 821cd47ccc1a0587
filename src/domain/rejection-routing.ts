/**
 * Review decisions and what a rejection does. Pure (no I/O): review.ts reads the rows, asks
 * here, then performs the effects (S3 copy, rows) exactly once.
 *
 * A review stage is a workflow whose labeling config has a `review_decision` control (accept /
 * reject) and optionally a `review_reason` text area; it reviews items that came from upstream.
 *
 * On reject, by the reviewer workflow's settings:
 * - every rejection is recorded (a rejections row) and numbered: `reworkIteration` is how many
 *   times this image has now been rejected along its chain (1 for the first rejection);
 * - rejectionFlagAnnotator → the original annotator's rejectionCount grows;
 * - rejectionMode 'none' → nothing else (the item simply does not move on);
 * - 'archive' → the image and its annotation are copied under the archive location;
 * - 'route_to_workflow' → the item is queued again in rejectionRouteWorkflowId, carrying the
 *   rejected annotation as a prediction; with rejectionReturnToOriginal it is reserved for the
 *   original annotator (anyone of the role may take it if that annotator is gone);
 * - maxReworkIterations N (null = unlimited) caps the loop: a rejection that would start rework
 *   number N+1 escalates instead — archived (action 'archive') with an escalation event and not
 *   routed again. N = 0 escalates the first rejection.
 * Acceptances and rejections both count as a review of the original annotator (reviewedCount),
 * so rejectionCount / reviewedCount is a rejection rate.
 */

export type RejectionMode = 'none' | 'archive' | 'route_to_workflow';
export type ReviewDecision = 'accept' | 'reject';

export interface ParsedReview {
  decision: ReviewDecision;
  reason: string | null;
}

const ACCEPT = new Set(['accept', 'accepted', 'approve', 'approved', 'yes', 'pass']);
const REJECT = new Set(['reject', 'rejected', 'deny', 'denied', 'no', 'fail']);

export const REVIEW_DECISION_CONTROL = 'review_decision';
export const REVIEW_REASON_CONTROL = 'review_reason';

/**
 * Reads the review decision from a Label Studio result: the `review_decision` control's choice
 * (case-insensitive accept/reject and a few synonyms) and the `review_reason` text, if any.
 * null when the result carries no recognisable decision.
 */
export function parseReviewDecision(result: unknown): ParsedReview | null {
  if (!Array.isArray(result)) return null;
  let decision: ReviewDecision | null = null;
  const reasons: string[] = [];
  for (const r of result) {
    if (typeof r !== 'object' || r === null) continue;
    const { from_name: fromName, value } = r as { from_name?: unknown; value?: Record<string, unknown> };
    if (typeof value !== 'object' || value === null) continue;
    if (fromName === REVIEW_DECISION_CONTROL) {
      const raw = [value.choices, value.text, value.labels].find((v) => Array.isArray(v) || typeof v === 'string');
      const first = (Array.isArray(raw) ? raw[0] : raw) as unknown;
      const v = typeof first === 'string' ? first.trim().toLowerCase() : '';
      if (ACCEPT.has(v)) decision = 'accept';
      else if (REJECT.has(v)) decision = 'reject';
    } else if (fromName === REVIEW_REASON_CONTROL) {
      const text = value.text;
      for (const t of Array.isArray(text) ? text : [text]) if (typeof t === 'string' && t.trim()) reasons.push(t.trim());
    }
  }
  return decision ? { decision, reason: reasons.length ? reasons.join('\n') : null } : null;
}

export interface ReviewerWorkflowRules {
  rejectionMode: RejectionMode;
  rejectionRouteWorkflowId: number | null;
  rejectionReturnToOriginal: boolean;
  rejectionFlagAnnotator: boolean;
  maxReworkIterations: number | null;
}

export interface RejectedItem {
  /** Rejections this image already had along its chain (0 the first time). */
  priorRejections: number;
  originalAnnotatorId: number | null;
  /** Whether the original annotator can still receive work (not deleted). */
  originalAnnotatorAvailable: boolean;
}

export interface RejectionPlan {
  /** The rejections row's action_taken. */
  actionTaken: RejectionMode;
  /** Number of this rejection along the chain (1-based). */
  reworkIteration: number;
  archive: boolean;
  escalated: boolean;
  route: { workflowId: number; annotatorId: number | null } | null;
  flagAnnotator: boolean;
}

export function planRejection(rules: ReviewerWorkflowRules, item: RejectedItem): RejectionPlan {
  const reworkIteration = item.priorRejections + 1;
  const flagAnnotator = rules.rejectionFlagAnnotator && item.originalAnnotatorId !== null;
  const base = { reworkIteration, flagAnnotator, escalated: false, archive: false, route: null };
  switch (rules.rejectionMode) {
    case 'none':
      return { ...base, actionTaken: 'none' };
    case 'archive':
      return { ...base, actionTaken: 'archive', archive: true };
    case 'route_to_workflow': {
      const cap = rules.maxReworkIterations;
      if ((cap !== null && reworkIteration > cap) || rules.rejectionRouteWorkflowId === null) {
        return { ...base, actionTaken: 'archive', archive: true, escalated: true };
      }
      const annotatorId =
        rules.rejectionReturnToOriginal && item.originalAnnotatorAvailable ? item.originalAnnotatorId : null;
      return { ...base, actionTaken: 'route_to_workflow', route: { workflowId: rules.rejectionRouteWorkflowId, annotatorId } };
    }
  }
}

export interface ArchiveLocation {
  bucket: string;
  /** Key prefix, '' or ending with '/'. */
  prefix: string;
}

/** Default prefix for archives when a workflow names no rejectionArchiveBucket. */
export const DEFAULT_ARCHIVE_PREFIX = 'rejections/';

/**
 * rejectionArchiveBucket is `s3://bucket/prefix` (another bucket) or a plain prefix inside the
 * fleet's bucket; unset → `rejections/` in the fleet's bucket.
 */
export function parseArchiveLocation(value: string | null | undefined, defaultBucket: string): ArchiveLocation {
  const v = (value ?? '').trim();
  if (!v) return { bucket: defaultBucket, prefix: DEFAULT_ARCHIVE_PREFIX };
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(v);
  if (m) return { bucket: m[1]!, prefix: normalizePrefix(m[2]!) };
  return { bucket: defaultBucket, prefix: normalizePrefix(v) };
}

/** '' stays '', otherwise no leading slash and exactly one trailing slash. */
export function normalizePrefix(p: string): string {
  const trimmed = p.trim().replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed ? `${trimmed}/` : '';
}

/** The last path segment of a key, made safe for use inside another key. */
export function keyBasename(key: string): string {
  const last = key.split('/').filter(Boolean).at(-1) ?? 'image';
  return last.replace(/[^A-Za-z0-9._-]/g, '_') || 'image';
}

/**
 * Where a rejection is archived: one folder per reviewer task, so a retried copy lands on the
 * same keys. `<prefix>workflow-<reviewerWorkflowId>/task-<reviewerTaskId>/<image basename>` and
 * `.../annotation.json`.
 */
export function archiveKeys(loc: ArchiveLocation, reviewerWorkflowId: number, reviewerTaskId: number, imageKey: string) {
  const folder = `${loc.prefix}workflow-${reviewerWorkflowId}/task-${reviewerTaskId}/`;
  return { bucket: loc.bucket, image: `${folder}${keyBasename(imageKey)}`, annotation: `${folder}annotation.json` };
}
