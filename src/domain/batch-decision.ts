/**
 * The batches step's decisions as pure functions, like decide() for annotators
 * (instance-decision.ts): desired state (the batch row, its workflow's policy) × observed state
 * (its annotator, what the last comparison with Label Studio found) → the one next action, and
 * when the batch next needs attention. No I/O here; orchestrator/batches-step.ts gathers the
 * inputs and performs the action.
 *
 * Rows (first match wins):
 *  - completed / failed / cancelled                      → none (never due again)
 *  - pending, annotator deleted                          → fail
 *  - pending                                             → provision (retry after retrySeconds;
 *                                                          provisioning fails the batch itself
 *                                                          past batches.provisionTimeoutMinutes)
 *  - in progress, every remaining task answered          → complete (export, chain), even past
 *                                                          the expiry: answered work is kept
 *  - in progress, untouched ≥ the workflow's expiryHours → reclaim (cancel, release images)
 *  - in progress, annotator not active                   → none (waits for the annotator; the
 *                                                          batch shows the problem); due again
 *                                                          at the expiry, if any
 *  - in progress, Label Studio unreachable last time     → compare again after retrySeconds
 *  - in progress, forced or compare interval elapsed     → compare
 *  - otherwise                                           → none, due at the next comparison
 *                                                          or the expiry, whichever is first
 * "Remaining" tasks exclude tasks deleted in Label Studio (removed): a batch whose every task was
 * deleted is complete with nothing to export.
 */
import type { AnnotatorStatusValue } from './annotator-status.ts';
import { isoMicros } from './task-data.ts';

export type BatchStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface BatchPolicy {
  /** batches.compareIntervalSeconds: how often an in-progress batch is compared with Label Studio. */
  compareIntervalSeconds: number;
  /** How soon a failed attempt (Label Studio unreachable, provisioning error) is retried, seconds. */
  retrySeconds: number;
  /** The workflow's expiryHours; null: batches never expire. */
  expiryHours: number | null;
}

export interface BatchInput {
  /** Epoch milliseconds. */
  now: number;
  status: BatchStatus;
  annotatorStatus: AnnotatorStatusValue;
  /** Tasks still in the batch (task_count: tasks deleted in Label Studio are no longer counted). */
  taskCount: number;
  /** Tasks answered (annotated or skipped). */
  completedCount: number;
  /** Tasks deleted in Label Studio. */
  removedTaskCount: number;
  hasProject: boolean;
  /** Last successful comparison with Label Studio, epoch ms. */
  lsCheckedAt: number | null;
  /** The batch's current problem code (what the last attempt found), if any. */
  problemCode: string | null;
  /** When the annotator last touched the batch (started it, or the newest annotation), epoch ms. */
  lastTouchedAt: number | null;
  /** POST /api/reconcile: compare every in-progress batch now. */
  force: boolean;
  policy: BatchPolicy;
}

export type BatchAction =
  | { action: 'none'; reason: string }
  | { action: 'provision' }
  | { action: 'fail'; reason: string }
  | { action: 'compare' }
  | { action: 'complete' }
  | { action: 'reclaim'; reason: string };

export interface BatchDecision {
  decision: BatchAction;
  /** Seconds until the batch next needs attention if nothing happens meanwhile; null: never. */
  nextInSeconds: number | null;
}

const HOUR_MS = 3_600_000;

/** Whether every task still in the batch is answered (and there was something to answer). */
export function batchDone(b: Pick<BatchInput, 'taskCount' | 'completedCount' | 'removedTaskCount'>): boolean {
  return b.completedCount >= b.taskCount && (b.taskCount > 0 || b.removedTaskCount > 0);
}

/**
 * When an in-progress batch expires (epoch ms): `expiryHours` (the workflow's) after the annotator
 * last touched it (`lastTouchedAt`, epoch ms); null when the workflow sets no expiry or the batch
 * was never started.
 */
export function batchExpiresAt(lastTouchedAt: number | null, expiryHours: number | null): number | null {
  return expiryHours !== null && lastTouchedAt !== null ? lastTouchedAt + expiryHours * HOUR_MS : null;
}

/** The batch's next action and when it is next due (see the module comment for the rows). */
export function decideBatch(b: BatchInput): BatchDecision {
  const secondsUntil = (at: number) => Math.max(0, Math.ceil((at - b.now) / 1000));
  const earliest = (...xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? Math.min(...v) : null;
  };

  if (b.status === 'completed' || b.status === 'failed' || b.status === 'cancelled') {
    return { decision: { action: 'none', reason: `batch ${b.status}` }, nextInSeconds: null };
  }
  if (b.status === 'pending') {
    if (b.annotatorStatus === 'deleted') return { decision: { action: 'fail', reason: 'annotator deleted' }, nextInSeconds: null };
    return { decision: { action: 'provision' }, nextInSeconds: b.policy.retrySeconds };
  }

  // In progress. Answered work completes even past the expiry: paid work is never thrown away.
  if (b.hasProject && batchDone(b)) return { decision: { action: 'complete' }, nextInSeconds: b.policy.retrySeconds };
  const expiresAt = batchExpiresAt(b.lastTouchedAt, b.policy.expiryHours);
  if (expiresAt !== null && b.now >= expiresAt) {
    return {
      decision: { action: 'reclaim', reason: `untouched by its annotator for ${b.policy.expiryHours} h (the workflow's expiryHours)` },
      nextInSeconds: null,
    };
  }
  const expiryIn = expiresAt === null ? null : secondsUntil(expiresAt);
  if (!b.hasProject) return { decision: { action: 'none', reason: 'no Label Studio project' }, nextInSeconds: expiryIn };
  if (b.annotatorStatus !== 'active') {
    return { decision: { action: 'none', reason: `annotator is ${b.annotatorStatus}` }, nextInSeconds: expiryIn };
  }
  if (b.problemCode === 'ls_unreachable') {
    return { decision: { action: 'compare' }, nextInSeconds: earliest(b.policy.retrySeconds, expiryIn) };
  }
  const compareAt = b.lsCheckedAt === null ? b.now : b.lsCheckedAt + b.policy.compareIntervalSeconds * 1000;
  if (b.force || b.now >= compareAt) {
    return { decision: { action: 'compare' }, nextInSeconds: earliest(b.policy.compareIntervalSeconds, expiryIn) };
  }
  return { decision: { action: 'none', reason: 'compared recently' }, nextInSeconds: earliest(secondsUntil(compareAt), expiryIn) };
}

/** What a batch is waiting on, shown as its `problem` (README "Batches" lists the codes). */
export interface BatchProblem {
  code: ProblemCode;
  message: string;
}

export const PROBLEM_CODES = [
  'annotator_not_running',
  'ls_unreachable',
  'provisioning_failing',
  'ls_tasks_deleted',
  'ls_unknown_tasks',
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

export interface ProblemInput {
  status: BatchStatus;
  annotatorStatus: AnnotatorStatusValue;
  /** The last provisioning attempt's error (pending batches). */
  provisionError: string | null;
  /**
   * What the last attempt to reach Label Studio found this pass: true → it did not answer
   * (with `lsError`), false → it answered; undefined → not tried this pass (the previous answer
   * stands).
   */
  lsUnreachable?: boolean;
  lsError?: string;
  /** The current problem, kept when nothing this pass says otherwise. */
  current: BatchProblem | null;
  removedTaskCount: number;
  unknownLsTaskCount: number;
}

/**
 * The batch's problem after this pass, most pressing first: a batch that cannot move
 * (annotator not running, Label Studio unreachable, provisioning failing) before one that moves
 * but deserves a look (tasks deleted or added by hand in Label Studio). Closed batches have none.
 */
export function batchProblem(p: ProblemInput): BatchProblem | null {
  if (p.status !== 'pending' && p.status !== 'in_progress') return null;
  if (p.annotatorStatus !== 'active' && p.annotatorStatus !== 'starting') {
    return { code: 'annotator_not_running', message: `the annotator's Label Studio is ${p.annotatorStatus}; the batch waits for it` };
  }
  const unreachable = p.lsUnreachable ?? p.current?.code === 'ls_unreachable';
  if (unreachable) {
    const message = p.lsUnreachable ? `Label Studio did not answer: ${p.lsError ?? 'unreachable'}` : p.current!.message;
    return { code: 'ls_unreachable', message: `${message}; retried on the next passes` };
  }
  if (p.status === 'pending' && p.provisionError) {
    return { code: 'provisioning_failing', message: `setting up the batch in Label Studio failed (retried): ${p.provisionError}` };
  }
  if (p.removedTaskCount > 0) {
    return {
      code: 'ls_tasks_deleted',
      message: `${p.removedTaskCount} task(s) were deleted in Label Studio; their images went back to the queue and the batch finishes without them`,
    };
  }
  if (p.unknownLsTaskCount > 0) {
    return {
      code: 'ls_unknown_tasks',
      message: `${p.unknownLsTaskCount} task(s) in the Label Studio project were not created by LabelFleet; they are ignored`,
    };
  }
  return null;
}

/**
 * Which of a task's annotations counts, when Label Studio holds several (a double submit, "create
 * copy", an annotation made from a prediction next to the annotator's own): the surviving
 * annotation updated last — the annotator's last word on the task — and among equal times the one
 * with the higher id (created later). Deleted annotations are not in Label Studio's answer, so
 * deleting the newest makes the one before it count again. undefined: no annotation (the task is
 * open). `updated_at` is compared to the microsecond; an unreadable one counts as oldest.
 */
export function countingAnnotation<A extends { id: number; updated_at?: string | null }>(annotations: readonly A[] | null | undefined): A | undefined {
  const micros = (a: A) => {
    const v = a.updated_at ? isoMicros(a.updated_at) : Number.NaN;
    return Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v;
  };
  let best: A | undefined;
  for (const a of annotations ?? []) {
    if (!best) best = a;
    else {
      const d = micros(a) - micros(best);
      if (d > 0 || (d === 0 && a.id > best.id) || (Number.isNaN(d) && a.id > best.id)) best = a;
    }
  }
  return best;
}
