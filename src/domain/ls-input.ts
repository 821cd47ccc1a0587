/**
 * What LabelFleet accepts from Label Studio (webhook bodies), checked against what PostgreSQL
 * stores, so a value JavaScript takes but the database refuses is a 400 naming the field instead
 * of a 500 mid-write. Pure; no I/O. One checker per kind of value, used by every field of that kind:
 *
 * - timestamps → `timestampProblem`: calendar-valid ISO 8601 date-times as Label Studio writes
 *   them (`2026-01-02T03:04:05.123456Z`): year 0001–9999, a real day of that month (leap years
 *   per the Gregorian rule), hour 00–23, minute and second 00–59, up to 9 fraction digits
 *   (PostgreSQL rounds to microseconds), and `Z`, `±HH`, `±HHMM` or `±HH:MM` with |offset| ≤
 *   15:59 (PostgreSQL's limit). No zone means UTC (`canonicalTimestamp` appends `Z`), so the
 *   stored instant never depends on the database session's time zone. Anything else — bare
 *   numbers, `2024-06-31`, `2026-02-30T00:00:00Z`, year 10000, `24:00`, leap second `:60`,
 *   dates without a time, RFC 2822 text — is refused. (JavaScript's `Date.parse` accepts many of
 *   these and rolls invalid days over; PostgreSQL refuses them: issue 11, item 6.)
 * - integers → `intProblem` with the column's range: `int4` (ids of annotations, tasks and
 *   projects; PostgreSQL `integer`, 1 … 2,147,483,647 for ids) or `int8`.
 * - seconds (lead_time) → finite, 0 … 10⁹ (a double precision column; larger is not a duration
 *   an annotator spent, and time_spent_ms is an int4 of milliseconds).
 * - JSON (annotation results) → `jsonValueProblem` (json-value.ts): no U+0000, no lone surrogates.
 */
import { jsonValueProblem } from './json-value.ts';

/** Integer column ranges (PostgreSQL `integer` / `bigint`). */
export const INT4 = { min: -2_147_483_648, max: 2_147_483_647 } as const;
export const INT8 = { min: -(2n ** 63n), max: 2n ** 63n - 1n } as const;

/** Largest lead_time accepted, in seconds (≈ 31 years). */
export const MAX_LEAD_TIME_SECONDS = 1e9;

/** Limits for annotation results: as deep and as long as a webhook body may be. */
export const RESULT_LIMITS = { maxDepth: 64, maxLength: 16 * 1024 * 1024 } as const;

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-](\d{2})(?::?(\d{2}))?)?$/;

const FIRST_INSTANT = new Date('0001-01-01T00:00:00Z').getTime();
const END_INSTANT = new Date('+010000-01-01T00:00:00Z').getTime();

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
/** Days in month `m` (1–12) of year `y`, Gregorian. */
export const daysInMonth = (y: number, m: number) => (m === 2 ? (isLeap(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31);

/** Why `value` is not a timestamp PostgreSQL stores as given, or null when it is one. */
export function timestampProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be an ISO 8601 date-time string';
  if (value.length > 64) return 'must be an ISO 8601 date-time (at most 64 characters)';
  const m = ISO.exec(value);
  if (!m) return 'must be an ISO 8601 date-time such as 2026-01-02T03:04:05.123456Z';
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  if (year < 1) return 'year must be 0001–9999';
  if (month < 1 || month > 12) return 'month must be 01–12';
  if (day < 1 || day > daysInMonth(year, month)) return `day must be 01–${daysInMonth(year, month)} in ${m[1]}-${m[2]}`;
  if (hour > 23) return 'hour must be 00–23';
  if (minute > 59) return 'minute must be 00–59';
  if (second > 59) return 'second must be 00–59';
  if (m[9] !== undefined && (Number(m[9]) > 15 || Number(m[10] ?? 0) > 59)) return 'time zone offset must be within ±15:59';
  // The instant itself must be in years 0001–9999 too (9999-12-31T23:00:00-05:00 is in 10000).
  const offsetMin = m[9] === undefined ? 0 : (m[8]!.startsWith('-') ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10] ?? 0));
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute - offsetMin, second);
  if (local.getTime() < FIRST_INSTANT || local.getTime() >= END_INSTANT) return 'must be an instant in years 0001–9999 (UTC)';
  return null;
}

/** A valid timestamp (see timestampProblem) with an explicit zone: `Z` appended when it has none. */
export function canonicalTimestamp(value: string): string {
  return ISO.exec(value)?.[8] === undefined ? `${value}Z` : value;
}

/**
 * Why `value` is not an integer within [min, max] (a column's range), or null. Accepts JavaScript
 * numbers (safe integers only: JSON.parse rounds larger ones) and, for int8, bigints.
 */
export function intProblem(value: unknown, range: { min: number | bigint; max: number | bigint }): string | null {
  if (typeof value === 'bigint') {
    return value < BigInt(range.min) || value > BigInt(range.max) ? `must be an integer from ${range.min} to ${range.max}` : null;
  }
  if (typeof value !== 'number' || !Number.isInteger(value)) return 'must be an integer';
  if (!Number.isSafeInteger(value)) return 'must be an integer of at most 15 digits (larger ones lose precision in JSON)';
  return value < Number(range.min) || value > Number(range.max) ? `must be an integer from ${range.min} to ${range.max}` : null;
}

/** Why `value` is not a Label Studio lead_time in seconds (finite, 0 … 10⁹), or null. */
export function secondsProblem(value: unknown): string | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a number of seconds';
  if (value < 0 || value > MAX_LEAD_TIME_SECONDS) return `must be from 0 to ${MAX_LEAD_TIME_SECONDS} seconds`;
  return null;
}

/** Why an annotation result is not storable as jsonb, or null. */
export function resultProblem(value: unknown): string | null {
  return jsonValueProblem(value, RESULT_LIMITS);
}
