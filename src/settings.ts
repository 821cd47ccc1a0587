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
