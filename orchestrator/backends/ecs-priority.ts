/**
 * ALB listener rule priorities for the ECS backend (pure: no I/O).
 *
 * A listener's rule priorities are unique integers in 1..50000. The fleet gives annotator `id`
 * the priority `offset + id`: distinct ids get distinct priorities, so two annotators starting
 * at once can never race for the same slot — collision-free by construction, no lock needed.
 * Only when that slot does not exist (offset + id > 50000) or is already held by a rule that is
 * not this annotator's (an operator's own rule) does the backend fall back to probing: it reads
 * the listener's rules, takes the first free candidate below, and re-reads and retries when
 * CreateRule answers PriorityInUse (someone else took it between the read and the create).
 */

export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 50_000;

/** How many times the backend re-reads the rules after PriorityInUse before giving up. */
export const PRIORITY_RETRIES = 8;

function checkOffset(offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset >= MAX_PRIORITY) {
    throw new RangeError(`rule priority offset must be an integer in 0..${MAX_PRIORITY - 1}, got ${offset}`);
  }
}

/** The annotator's own slot, `offset + id`, or undefined when it lies beyond 50000. */
export function preferredPriority(annotatorId: number, offset = 0): number | undefined {
  checkOffset(offset);
  if (!Number.isSafeInteger(annotatorId) || annotatorId < 1) {
    throw new RangeError(`annotator id must be a positive integer, got ${annotatorId}`);
  }
  const p = offset + annotatorId;
  return p <= MAX_PRIORITY ? p : undefined;
}

/**
 * Candidate priorities in the order the backend tries them: the preferred slot first, then every
 * slot of offset+1..50000 exactly once, starting at a point derived from the id (so annotators
 * beyond the range spread out instead of all probing from the bottom).
 */
export function* priorityCandidates(annotatorId: number, offset = 0): Generator<number> {
  const preferred = preferredPriority(annotatorId, offset);
  if (preferred !== undefined) yield preferred;
  const size = MAX_PRIORITY - offset;
  const start = (annotatorId - 1) % size;
  for (let k = 0; k < size; k++) {
    const p = offset + 1 + ((start + k) % size);
    if (p !== preferred) yield p;
  }
}

/** The first candidate not in `taken`; undefined when every slot above the offset is taken. */
export function choosePriority(annotatorId: number, taken: ReadonlySet<number>, offset = 0): number | undefined {
  for (const p of priorityCandidates(annotatorId, offset)) {
    if (!taken.has(p)) return p;
  }
  return undefined;
}
