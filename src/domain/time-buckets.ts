/**
 * Time arithmetic for monitoring, as pure functions (no I/O): where "today" starts in a time zone,
 * the last N hourly buckets, the time-bucket labels, uptime text and the rounding of rates.
 *
 * Definitions (README "Monitoring" mirrors them):
 * - "today" is the calendar day containing `now` in the configured IANA time zone: the half-open
 *   interval [start of today, start of tomorrow). A day is 23–25 hours long across DST changes,
 *   and starts at the first instant whose local date is that day (01:00 when midnight is skipped).
 * - hourly buckets are whole UTC hours [h, h + 1h); the last one contains `now`.
 * - time buckets split time spent in seconds as [0,10) [10,30) [30,60) [60,∞) — counted in SQL
 *   (labelfleet_time_bucket); only their labels are here.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const validZones = new Set<string>();

/** Whether `tz` is an IANA time zone name this runtime knows ("UTC", "Europe/Paris", ...). */
export function isValidTimeZone(tz: unknown): tz is string {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64) return false;
  // Every console page and monitoring read asks; building a formatter costs far more than a lookup.
  // Only valid names are kept, at most 1,000 (spellings a caller sends cannot grow it without bound).
  if (validZones.has(tz)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    if (validZones.size >= 1_000) validZones.clear();
    validZones.add(tz);
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The wall-clock time in `tz` at instant `ms`, as if that wall clock were UTC (ms, second precision). */
function wallClockMs(ms: number, tz: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
}

/** The zone's offset from UTC at instant `ms`, in ms (positive east of Greenwich). */
export function utcOffsetMs(ms: number, tz: string): number {
  const floored = Math.floor(ms / 1000) * 1000;
  return wallClockMs(floored, tz) - floored;
}

/** The local calendar date of instant `ms` in `tz`, as the UTC midnight of that date (ms). */
function localDateMs(ms: number, tz: string): number {
  return Math.floor(wallClockMs(ms, tz) / DAY_MS) * DAY_MS;
}

/** The first instant of the local calendar day that contains `now` in `tz`. */
export function startOfDay(now: Date, tz: string): Date {
  const ms = now.getTime();
  const date = localDateMs(ms, tz);
  // Local midnight is `date - offset` for the offset in force then; the offsets around `now`
  // are the only candidates. The day starts at the earliest candidate whose local date is
  // `date` while the millisecond before it belongs to an earlier date.
  const approx = date - utcOffsetMs(ms, tz);
  const offsets = new Set([-1, 0, 1].map((d) => utcOffsetMs(approx + d * DAY_MS, tz)));
  offsets.add(utcOffsetMs(ms, tz));
  const starts = [...offsets]
    .map((o) => date - o)
    .filter((c) => c <= ms && localDateMs(c, tz) === date && localDateMs(c - 1, tz) < date)
    .sort((a, b) => a - b);
  if (starts.length) return new Date(starts[0]!);
  // A skipped local midnight not on a transition we sampled: walk back minute by minute (bounded).
  let t = Math.min(approx, ms);
  for (let i = 0; i < 26 * 60 && localDateMs(t - 60_000, tz) === date; i++) t -= 60_000;
  while (localDateMs(t, tz) < date) t += 1000;
  return new Date(t);
}

/** The first instant of the local calendar day after the one containing `now`. */
export function startOfNextDay(now: Date, tz: string): Date {
  // Days are 23–25 hours long (or skipped entirely, as Samoa did): 26h past the start is always
  // inside the next existing day.
  return startOfDay(new Date(startOfDay(now, tz).getTime() + 26 * HOUR_MS), tz);
}

/** The UTC hour that contains `t`. */
export const floorHour = (t: Date): Date => new Date(Math.floor(t.getTime() / HOUR_MS) * HOUR_MS);
/** The first whole UTC hour at or after `t`. */
export const ceilHour = (t: Date): Date => new Date(Math.ceil(t.getTime() / HOUR_MS) * HOUR_MS);

/** The starts of the last `count` UTC hours, oldest first; the last one contains `now`. */
export function lastHours(now: Date, count = 24): Date[] {
  const current = floorHour(now).getTime();
  return Array.from({ length: count }, (_, i) => new Date(current - (count - 1 - i) * HOUR_MS));
}

/**
 * Splits [from, to) into whole UTC hours (served by the hourly rollup) and the partial-hour edges
 * before and after them (counted from raw events). Edges are empty when the bounds are whole hours.
 */
export function splitByHour(from: Date, to: Date): { hours: { from: Date; to: Date } | null; edges: { from: Date; to: Date }[] } {
  if (to.getTime() <= from.getTime()) return { hours: null, edges: [] };
  const hFrom = ceilHour(from);
  const hTo = floorHour(to);
  if (hFrom.getTime() >= hTo.getTime()) return { hours: null, edges: [{ from, to }] };
  const edges: { from: Date; to: Date }[] = [];
  if (hFrom.getTime() > from.getTime()) edges.push({ from, to: hFrom });
  if (to.getTime() > hTo.getTime()) edges.push({ from: hTo, to });
  return { hours: { from: hFrom, to: hTo }, edges };
}

/** A half-open interval [from, to) whose count is added (sign 1) or subtracted (sign -1). */
export interface SignedRange {
  from: Date;
  to: Date;
  sign: 1 | -1;
}

/** How to count [from, to) from the daily rollup, the hourly rollup and raw events. */
export interface RollupPlan {
  /** Whole UTC days [from, to): rows of the daily rollup whose day is in the range. */
  days: SignedRange[];
  /** Whole UTC hours [from, to): rows of the hourly rollup whose hour is in the range. */
  hours: SignedRange[];
  /** Partial hours: raw events whose time is in the range. */
  edges: SignedRange[];
}

/**
 * Splits [from, to) so that its count is the signed sum over the parts, reading the fewest rows:
 * each UTC day it covers wholly is one daily row; a day it covers for more than 12 hours is the
 * whole day minus the hours (and partial-hour edges) outside [from, to); a day covered for 12
 * hours or less is its hours and edges. A day of any time zone thus costs per annotator at most
 * two daily rows, 12 hourly rows per partially covered UTC day (two such days) and 4 partial-hour
 * edges, and a UTC day one daily row. Exact whatever the bounds.
 */
export function splitForRollups(from: Date, to: Date): RollupPlan {
  const plan: RollupPlan = { days: [], hours: [], edges: [] };
  const add = (a: number, b: number, sign: 1 | -1) => {
    const { hours, edges } = splitByHour(new Date(a), new Date(b));
    if (hours) plan.hours.push({ ...hours, sign });
    for (const e of edges) plan.edges.push({ ...e, sign });
  };
  const start = from.getTime();
  const end = to.getTime();
  for (let day = Math.floor(start / DAY_MS) * DAY_MS; day < end; day += DAY_MS) {
    const a = Math.max(start, day);
    const b = Math.min(end, day + DAY_MS);
    if (b - a > DAY_MS / 2) {
      plan.days.push({ from: new Date(day), to: new Date(day + DAY_MS), sign: 1 });
      if (a > day) add(day, a, -1);
      if (b < day + DAY_MS) add(b, day + DAY_MS, -1);
    } else {
      add(a, b, 1);
    }
  }
  // Adjacent whole days are one range (one index scan).
  plan.days = plan.days.reduce<SignedRange[]>((out, d) => {
    const last = out.at(-1);
    if (last && last.to.getTime() === d.from.getTime()) last.to = d.to;
    else out.push(d);
    return out;
  }, []);
  return plan;
}

/**
 * The labels of GET /api/monitoring's timeDistribution, in bucket order. Which bucket a time falls
 * in is decided in one place, the database (labelfleet_time_bucket, migrations/0018_ingestion.sql:
 * [0,10) [10,30) [30,60) [60,∞) seconds, negative in the first), as the hourly rollup counts it.
 */
export const TIME_BUCKETS = ['0-10s', '10-30s', '30-60s', '60s+'] as const;
export type TimeBucket = (typeof TIME_BUCKETS)[number];

/**
 * Uptime as text, whole minutes rounded down: "0m", "45m", "4h 32m", "2d 3h 0m".
 * A negative duration (clock skew) reads "0m".
 */
export function formatUptime(ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}

/** Rounds to `places` decimals, half away from zero (ratios use 4, per-hour rates 2). */
export function round(value: number, places = 4): number {
  if (!Number.isFinite(value)) return value;
  // Shifting through the decimal exponent rounds the number as written (1.005 → 1.01).
  const abs = Math.abs(value);
  const r = /e/i.test(String(abs))
    ? Math.round(abs * 10 ** places) / 10 ** places
    : Number(`${Math.round(Number(`${abs}e${places}`))}e-${places}`);
  return value < 0 ? -r : r;
}

/** numerator ÷ denominator rounded to 4 decimals; 0 when the denominator is 0. */
export const ratio = (numerator: number, denominator: number): number =>
  denominator > 0 ? round(numerator / denominator, 4) : 0;

/**
 * An annotator's hourly rate today: today's annotations ÷ hours elapsed since the start of
 * today (at least one hour, so a few minutes after midnight does not read as thousands an hour),
 * rounded to 2 decimals.
 */
export function ratePerHour(countToday: number, dayStart: Date, now: Date): number {
  const hours = Math.max(1, (now.getTime() - dayStart.getTime()) / HOUR_MS);
  return round(countToday / hours, 2);
}
