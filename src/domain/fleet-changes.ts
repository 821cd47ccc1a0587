/**
 * What changed in the fleet between two looks at it (pure). The change stream
 * (GET /api/changes) reads a watermark — a short fingerprint per topic, built from indexed
 * maxima and small counts (src/db/changes.ts) — every poll, and tells subscribers which topics
 * moved. A topic says "something here changed; read again", never what the change was.
 */

/** The topics of the change stream; pages subscribe to the ones they show. */
export const CHANGE_TOPICS = ['annotators', 'annotations', 'batches', 'quality', 'workflows', 'configs', 'settings'] as const;
export type ChangeTopic = (typeof CHANGE_TOPICS)[number];

/** One fingerprint string per topic; equal strings mean "nothing changed in that topic". */
export type Watermark = Record<ChangeTopic, string>;

/** The topics whose fingerprint differs, in CHANGE_TOPICS order (empty when nothing changed). */
export function changedTopics(previous: Watermark, next: Watermark): ChangeTopic[] {
  return CHANGE_TOPICS.filter((t) => previous[t] !== next[t]);
}

export const isChangeTopic = (v: unknown): v is ChangeTopic => typeof v === 'string' && (CHANGE_TOPICS as readonly string[]).includes(v);
