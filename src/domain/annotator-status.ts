/**
 * The annotator (container) lifecycle, as a pure state machine:
 *
 *   created → starting → active → stopping → stopped → starting …
 *   starting | active → error;  error → starting (retry) | stopping
 *   starting → stopping (a start called off)
 *   any status except deleted → deleted (final)
 *
 * Every transition is recorded as a container event (src/workflows/annotators.ts).
 */

export const ANNOTATOR_STATUSES = ['created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted'] as const;
export type AnnotatorStatusValue = (typeof ANNOTATOR_STATUSES)[number];

const NEXT: Record<AnnotatorStatusValue, readonly AnnotatorStatusValue[]> = {
  created: ['starting', 'deleted'],
  starting: ['active', 'error', 'stopping', 'deleted'],
  active: ['stopping', 'error', 'deleted'],
  stopping: ['stopped', 'deleted'],
  stopped: ['starting', 'deleted'],
  error: ['starting', 'stopping', 'deleted'],
  deleted: [],
};

export const isAnnotatorStatus = (value: unknown): value is AnnotatorStatusValue =>
  typeof value === 'string' && (ANNOTATOR_STATUSES as readonly string[]).includes(value);

/** The statuses `from` may move to (empty for deleted). */
export const nextStatuses = (from: AnnotatorStatusValue): readonly AnnotatorStatusValue[] => NEXT[from];

/** Whether `from → to` is a transition of the lifecycle. Staying in the same status is not one. */
export const canTransition = (from: AnnotatorStatusValue, to: AnnotatorStatusValue): boolean => NEXT[from].includes(to);

/** Deleted is final: nothing leaves it. */
export const isFinal = (status: AnnotatorStatusValue): boolean => NEXT[status].length === 0;
