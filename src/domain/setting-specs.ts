/**
 * What each known run-time setting (src/settings.ts SETTING_DEFAULTS) may hold: its type, range,
 * unit and meaning — the settings page shows it and checks a new value with `checkSettingValue`
 * before sending it (pure; the console's script imports it too). The ranges are the ones the
 * readers accept (orchestrator/annotators-step.ts readFleetSettings, src/workflows/quality.ts
 * readQualitySettings); a stored value outside them falls back to the default there.
 */
import { SETTING_DEFAULTS, type SettingKey } from '../settings.ts';

export type SettingType = 'number' | 'integer' | 'boolean' | 'string' | 'stringList' | 'timeZone';

export interface SettingSpec {
  type: SettingType;
  description: string;
  min?: number;
  max?: number;
  unit?: string;
  /** null is allowed (it means "use the environment's value", see the description). */
  nullable?: boolean;
  pattern?: { regex: RegExp; message: string };
}

const seconds = (description: string, max = 86_400): SettingSpec => ({ type: 'integer', min: 1, max, unit: 's', description });
const BUCKET = { regex: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, message: 'must be an S3 bucket name (3–63 lower-case letters, digits, dots, hyphens)' };

export const SETTING_SPECS: Record<SettingKey, SettingSpec> = {
  's3.bucket': { type: 'string', nullable: true, pattern: BUCKET, description: 'Bucket for source images and exports; null → S3_BUCKET' },
  'quality.accuracyThreshold': { type: 'number', min: 0, max: 1, description: 'Gold accuracy (0–1) below which an annotator is flagged' },
  'quality.minEvaluations': { type: 'integer', min: 1, max: 1_000_000, description: 'Gold evaluations needed before accuracy can flag an annotator' },
  'quality.pauseBelowThreshold': { type: 'boolean', description: "Flagging also pauses the annotator's auto-assignment" },
  'monitoring.timeZone': { type: 'timeZone', description: 'IANA time zone whose calendar day is "today"' },
  'fleet.image': { type: 'string', nullable: true, description: 'Label Studio image for new containers; null → FLEET_IMAGE' },
  'fleet.memoryMb': { type: 'number', min: 128, max: 65_536, unit: 'MB', description: 'Memory limit per Label Studio container' },
  'fleet.cpus': { type: 'number', min: 0.1, max: 64, unit: 'CPUs', description: 'CPU limit per Label Studio container' },
  'fleet.startTimeoutSeconds': seconds('A whole start, POST start → active'),
  'fleet.databaseTimeoutSeconds': seconds('Start phase limit: database and role'),
  'fleet.containerTimeoutSeconds': seconds('Start phase limit: container created and running'),
  'fleet.healthTimeoutSeconds': seconds('Start phase limit: Label Studio answers /health/'),
  'fleet.tokenTimeoutSeconds': seconds('Start phase limit: the instance reports its API token'),
  'fleet.routeTimeoutSeconds': seconds('Start phase limit: the Traefik route answers'),
  'fleet.maxRestarts': { type: 'integer', min: 0, max: 1000, description: 'Restarts of a dead container before the annotator goes to error' },
  'fleet.restartBackoffSeconds': { type: 'number', min: 0, max: 3600, unit: 's', description: 'Delay before the first restart (doubles, capped at 600 s)' },
  'fleet.restartResetSeconds': seconds('Uptime after which the restart count resets'),
  'fleet.deleteDatabaseOnDelete': { type: 'boolean', description: "On delete, drop the annotator's database, role and media volume" },
  'catalog.syncIntervalSeconds': seconds('Incremental S3 listing of a workflow source prefix'),
  'catalog.fullResyncMinutes': { type: 'integer', min: 1, max: 10_080, unit: 'min', description: 'Full S3 listing (finds keys added out of order)' },
  'batches.presignTtlSeconds': seconds('Lifetime of presigned image URLs given to Label Studio', 604_800),
  'batches.provisionTimeoutMinutes': { type: 'integer', min: 1, max: 10_080, unit: 'min', description: 'A batch that cannot be set up this long fails' },
  'batches.compareIntervalSeconds': seconds('How often an in-progress batch is compared with Label Studio'),
  // Ranges as read by src/api/rate-limit.ts and src/outbound/deliveries.ts readWebhookSettings.
  'rateLimit.keyRequestsPerMinute': { type: 'integer', min: 0, max: 1_000_000, unit: '/min', description: 'Requests per minute one API key may make (0 = unlimited)' },
  'rateLimit.clientRequestsPerMinute': { type: 'integer', min: 0, max: 1_000_000, unit: '/min', description: 'Requests per minute one client address may make with API keys (0 = unlimited)' },
  'webhooks.allowedNetworks': { type: 'stringList', description: 'Where outbound webhooks may go: CIDRs and/or "public"; link-local and metadata addresses never' },
  'webhooks.timeoutSeconds': { type: 'number', min: 1, max: 60, unit: 's', description: 'Time limit of one delivery attempt' },
  'webhooks.retryBaseSeconds': { type: 'number', min: 0.1, max: 3600, unit: 's', description: 'Delay before retry n is this × 2^(n-1), capped at one hour' },
  'webhooks.retryWindowHours': { type: 'number', min: 0.001, max: 720, unit: 'h', description: 'A delivery not accepted within this long is marked failed' },
  'webhooks.logRetentionDays': { type: 'number', min: 1, max: 3650, unit: 'days', description: 'How long deliveries, attempts and events are kept' },
};

export const KNOWN_SETTING_KEYS = Object.keys(SETTING_DEFAULTS) as SettingKey[];

export const isKnownSetting = (key: string): key is SettingKey => Object.hasOwn(SETTING_DEFAULTS, key);

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: unknown): zone is string {
  if (typeof zone !== 'string' || zone === '') return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A number with the setting's unit: `600 s`, `0.7`. */
export const withUnit = (spec: SettingSpec, n: number | undefined) => `${n}${spec.unit ? ` ${spec.unit}` : ''}`;

/** The allowed range of a number setting as the settings page shows it: `1–86400 s`. */
export const rangeText = (spec: SettingSpec) => `${spec.min}–${withUnit(spec, spec.max)}`;

/** Why `value` cannot be stored under `key`, or null when it can. Unknown keys take any JSON. */
export function checkSettingValue(key: string, value: unknown): string | null {
  if (!isKnownSetting(key)) return null;
  const spec = SETTING_SPECS[key];
  if (value === null) return spec.nullable ? null : 'must not be empty';
  switch (spec.type) {
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'timeZone':
      return isTimeZone(value) ? null : 'must be an IANA time zone such as Europe/Berlin or UTC';
    case 'stringList':
      return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.trim() !== '') ? null : 'must be a list of non-empty texts';
    case 'string':
      if (typeof value !== 'string' || value.trim() === '') return 'must be a non-empty text';
      return spec.pattern && !spec.pattern.regex.test(value) ? spec.pattern.message : null;
    case 'number':
    case 'integer': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a number';
      if (spec.type === 'integer' && !Number.isInteger(value)) return 'must be a whole number';
      if (spec.min !== undefined && value < spec.min) return `must be at least ${withUnit(spec, spec.min)}`;
      if (spec.max !== undefined && value > spec.max) return `must be at most ${withUnit(spec, spec.max)}`;
      return null;
    }
  }
}
