/**
 * What a batch's Label Studio tasks look like, from the labeling config's XML. Pure (no I/O).
 * Every task — real or gold — has exactly the same shape: `{data: {<key>: <image URL>}, meta:
 * {labelfleet: {task: <assignment task id>}}}`, plus the upstream annotation as a prediction for
 * chained items, restricted to the controls the downstream config has (Label Studio would import
 * a prediction for a control it does not have, and its editor would then fail to show it).
 */

/** The data key the config's object tag reads: the first `value="$key"` (default "image"). */
export function taskDataKey(configXml: string): string {
  const m = /\bvalue\s*=\s*["']\$([A-Za-z_][\w]*)["']/.exec(configXml);
  return m ? m[1]! : 'image';
}

/** Every tag name="..." in the config: control and object names. */
export function configNames(configXml: string): Set<string> {
  const names = new Set<string>();
  for (const m of configXml.matchAll(/<[A-Za-z][\w]*\b[^>]*?\bname\s*=\s*["']([^"']+)["']/g)) names.add(m[1]!);
  return names;
}

/** The prediction results whose from_name and to_name exist in the config. */
export function predictionFor(result: unknown, names: Set<string>): Record<string, unknown>[] {
  if (!Array.isArray(result)) return [];
  return result.filter(
    (r): r is Record<string, unknown> =>
      typeof r === 'object' &&
      r !== null &&
      typeof (r as Record<string, unknown>).from_name === 'string' &&
      names.has((r as Record<string, string>).from_name!) &&
      (typeof (r as Record<string, unknown>).to_name !== 'string' || names.has((r as Record<string, string>).to_name!)),
  );
}

/** A review's own controls, which are not labels to pass on. */
export const REVIEW_CONTROLS = new Set(['review_decision', 'review_reason']);

/** Result entries that are not review controls. */
export function withoutReviewControls(result: unknown): Record<string, unknown>[] {
  if (!Array.isArray(result)) return [];
  return result.filter(
    (r): r is Record<string, unknown> => typeof r === 'object' && r !== null && !REVIEW_CONTROLS.has(String((r as Record<string, unknown>).from_name)),
  );
}

/** The key in a batch project's description that finds it again after a crash. */
export const projectKey = (assignmentId: number) => `[labelfleet:assignment=${assignmentId}]`;

/** Microseconds since the epoch of an ISO timestamp, keeping digits past the millisecond. */
export function isoMicros(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return Number.NaN;
  const frac = /T\d{2}:\d{2}:\d{2}\.(\d+)/.exec(iso)?.[1] ?? '';
  return Math.floor(ms / 1000) * 1_000_000 + Number((frac + '000000').slice(0, 6));
}
