/**
 * Calendar periods in a time zone (pure): days, ISO weeks (Monday to Sunday) and months, each the
 * half-open interval [first instant of its first local day, first instant of the next period's
 * first local day). A day is 23, 24 or 25 hours long across clock changes (and starts at 01:00
 * where midnight is skipped); weeks and months inherit that. Instants come from
 * startOfDay (src/domain/time-buckets.ts), so "today" and these periods agree.
 */
import { startOfDay, utcOffsetMs } from './time-buckets.ts';

export const PERIODS = ['day', 'week', 'month'] as const;
export type Period = (typeof PERIODS)[number];

const DAY_MS = 86_400_000;

/** A local calendar date as the UTC midnight of that date, ms (date arithmetic without zones). */
export type LocalDate = number;

/** Parses YYYY-MM-DD (a real date), or null. */
export function parseLocalDate(s: string): LocalDate | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(ms).toISOString().slice(0, 10) === s ? ms : null;
}

export const formatLocalDate = (d: LocalDate) => new Date(d).toISOString().slice(0, 10);

/** The local date of instant `at` in `tz`. */
export function localDateOf(at: Date, tz: string): LocalDate {
  return Math.floor((at.getTime() + utcOffsetMs(at.getTime(), tz)) / DAY_MS) * DAY_MS;
}

/** The first instant of local date `d` in `tz`. */
export function startOfLocalDate(d: LocalDate, tz: string): Date {
  const noon = d + 12 * 3_600_000;
  return startOfDay(new Date(noon - utcOffsetMs(noon, tz)), tz);
}

/** The first local date of the period containing `d`. */
export function periodStart(period: Period, d: LocalDate): LocalDate {
  const date = new Date(d);
  if (period === 'day') return d;
  if (period === 'week') return d - ((date.getUTCDay() + 6) % 7) * DAY_MS;
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
}

/** The first local date of the period after the one starting at `start`. */
export function nextPeriodStart(period: Period, start: LocalDate): LocalDate {
  if (period === 'day') return start + DAY_MS;
  if (period === 'week') return start + 7 * DAY_MS;
  const date = new Date(start);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}

/** The name of a period: 2026-03-29, 2026-W13 (ISO week), 2026-03. */
export function periodLabel(period: Period, start: LocalDate): string {
  if (period === 'day') return formatLocalDate(start);
  if (period === 'month') return formatLocalDate(start).slice(0, 7);
  // ISO week: the week belongs to the year of its Thursday.
  const thursday = new Date(start + 3 * DAY_MS);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

export interface PeriodBucket {
  label: string;
  start: Date;
  end: Date;
}

/**
 * The periods covering local dates `from`..`to` (inclusive), in order: the first one contains
 * `from`, the last one `to`. Throws RangeError past `max` periods.
 */
export function periodBuckets(period: Period, from: LocalDate, to: LocalDate, tz: string, max = 1000): PeriodBucket[] {
  // Local dates first (cheap), then one zone conversion per boundary.
  const starts: LocalDate[] = [];
  for (let d = periodStart(period, from); d <= to; d = nextPeriodStart(period, d)) {
    if (starts.length >= max) throw new RangeError(`more than ${max} periods`);
    starts.push(d);
  }
  const instants = [...starts, nextPeriodStart(period, starts.at(-1) ?? from)].map((d) => startOfLocalDate(d, tz));
  return starts.map((d, i) => ({ label: periodLabel(period, d), start: instants[i]!, end: instants[i + 1]! }));
}

/** The default range: the last 30 days, 12 weeks or 12 months up to `today`. */
export function defaultFrom(period: Period, today: LocalDate): LocalDate {
  if (period === 'day') return today - 29 * DAY_MS;
  if (period === 'week') return periodStart('week', today) - 11 * 7 * DAY_MS;
  const t = new Date(today);
  return Date.UTC(t.getUTCFullYear(), t.getUTCMonth() - 11, 1);
}
