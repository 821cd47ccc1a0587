/**
 * Run-time settings (the settings table, PUT /api/settings/:key) read through one accessor with
 * documented defaults. README's settings table mirrors DEFAULTS.
 */
import type { Executor } from './db/index.ts';

export const SETTING_DEFAULTS = {
  /** S3 bucket for source images and exports; falls back to S3_BUCKET. */
  's3.bucket': null as string | null,
  /** Minimum gold accuracy (0..1) below which an annotator is flagged. */
  'quality.accuracyThreshold': 0.7,
  /** Gold evaluations an annotator needs before their accuracy can flag them (integer ≥ 1). */
  'quality.minEvaluations': 5,
  /** When true, flagging an annotator also pauses their auto-assignment (an admin resumes it). */
  'quality.pauseBelowThreshold': false,
  /** IANA time zone whose calendar day is "today" in GET /api/monitoring. */
  'monitoring.timeZone': 'UTC',
  // Batches (src/workflows/*.ts, orchestrator/batches-step.ts).
  /** Seconds between incremental S3 catalog syncs of a root workflow (StartAfter the last key). */
  'catalog.syncIntervalSeconds': 60,
  /** Minutes between full S3 listings of a root workflow (finds keys added mid-order, marks removed ones gone). */
  'catalog.fullResyncMinutes': 60,
  /** Lifetime of the presigned image URLs imported into Label Studio, seconds (≤ 604800 = 7 days). */
  'batches.presignTtlSeconds': 604800,
  /** A pending batch that could not be set up in Label Studio for this long fails and releases its images. */
  'batches.provisionTimeoutMinutes': 30,
  /** Seconds between two comparisons of an in-progress batch with its Label Studio project (POST /api/reconcile: always). */
  'batches.compareIntervalSeconds': 60,
} satisfies Record<string, unknown>;

export type SettingKey = keyof typeof SETTING_DEFAULTS;

export async function getSetting<K extends SettingKey>(
  db: Executor,
  key: K,
  fallback: (typeof SETTING_DEFAULTS)[K] = SETTING_DEFAULTS[key],
): Promise<(typeof SETTING_DEFAULTS)[K]> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  return row === undefined ? fallback : (row.value as (typeof SETTING_DEFAULTS)[K]);
}
