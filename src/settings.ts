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
  // Fleet (orchestrator/annotators-step.ts reads these at every pass; bad values fall back to the default).
  /** Label Studio image for new containers; null → FLEET_IMAGE. A change recreates containers between batches. */
  'fleet.image': null as string | null,
  /** Memory limit per Label Studio container, MB (128..65536). */
  'fleet.memoryMb': 2048,
  /** CPU limit per Label Studio container, in CPUs (0.1..64). */
  'fleet.cpus': 1,
  /** A whole start (POST /start → active) must finish within this many seconds, else status error. */
  'fleet.startTimeoutSeconds': 900,
  /** Per-phase limits of a start, seconds: database, container (create/pull), healthy (LS boot), token, route. */
  'fleet.databaseTimeoutSeconds': 60,
  'fleet.containerTimeoutSeconds': 300,
  'fleet.healthTimeoutSeconds': 600,
  'fleet.tokenTimeoutSeconds': 300,
  'fleet.routeTimeoutSeconds': 120,
  /** Restarts of a container that died or vanished while active before the annotator goes to error. */
  'fleet.maxRestarts': 5,
  /** Delay before restart n+1 is base × 2^(n-1), capped at 600 s. */
  'fleet.restartBackoffSeconds': 10,
  /** A container up this long since its last restart has its restart count reset. */
  'fleet.restartResetSeconds': 600,
  /** On annotator delete: drop its database, role and media volume (true) or keep them (false). */
  'fleet.deleteDatabaseOnDelete': true,
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
  // Pipelines (src/api/rate-limit.ts, src/outbound/). Bad values fall back to the default.
  /** Requests per minute one API key may make (0 = unlimited). */
  'rateLimit.keyRequestsPerMinute': 600,
  /** Requests per minute one client address may make with API keys, valid or not (0 = unlimited). */
  'rateLimit.clientRequestsPerMinute': 1200,
  /** Where outbound webhooks may go: CIDRs and/or "public" (any public unicast address). Link-local and cloud metadata addresses never. */
  'webhooks.allowedNetworks': ['public'] as string[],
  /** Time limit of one delivery attempt (connect, send, response), seconds (1..60). */
  'webhooks.timeoutSeconds': 10,
  /** Delay before retry n is this × 2^(n-1) seconds, capped at one hour, with ±10 % jitter. */
  'webhooks.retryBaseSeconds': 10,
  /** A delivery not accepted within this many hours of its first attempt (or redelivery) is marked failed. */
  'webhooks.retryWindowHours': 24,
  /** Delivered and failed deliveries (and their attempts), and events, are kept this many days. */
  'webhooks.logRetentionDays': 30,
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
