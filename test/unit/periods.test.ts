/** Calendar periods in a time zone, exact across clock changes. */
import { describe, expect, it } from 'vitest';
import { defaultFrom, formatLocalDate, localDateOf, parseLocalDate, periodBuckets, periodLabel, startOfLocalDate } from '../../src/domain/periods.ts';

const d = (s: string) => parseLocalDate(s)!;
const hours = (b: { start: Date; end: Date }) => (b.end.getTime() - b.start.getTime()) / 3_600_000;

describe('periods', () => {
  it('parses real dates only', () => {
    expect(formatLocalDate(d('2026-03-29'))).toBe('2026-03-29');
    for (const bad of ['2026-02-30', '2026-13-01', '26-01-01', '2026-1-1', 'yesterday']) expect(parseLocalDate(bad), bad).toBeNull();
  });

  it('days around the clock changes in Europe/Paris are 23 and 25 hours, starting at local midnight', () => {
    const days = periodBuckets('day', d('2026-03-28'), d('2026-03-30'), 'Europe/Paris');
    expect(days.map((b) => [b.label, b.start.toISOString(), hours(b)])).toEqual([
      ['2026-03-28', '2026-03-27T23:00:00.000Z', 24],
      ['2026-03-29', '2026-03-28T23:00:00.000Z', 23],
      ['2026-03-30', '2026-03-29T22:00:00.000Z', 24],
    ]);
    const autumn = periodBuckets('day', d('2026-10-25'), d('2026-10-25'), 'Europe/Paris');
    expect(autumn.map((b) => [b.start.toISOString(), b.end.toISOString(), hours(b)])).toEqual([['2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 25]]);
  });

  it('America/New_York, Australia/Lord_Howe (30-minute shift) and Asia/Kolkata (+05:30)', () => {
    expect(periodBuckets('day', d('2026-03-08'), d('2026-03-08'), 'America/New_York').map(hours)).toEqual([23]);
    expect(periodBuckets('day', d('2026-11-01'), d('2026-11-01'), 'America/New_York').map(hours)).toEqual([25]);
    expect(periodBuckets('day', d('2026-04-05'), d('2026-04-05'), 'Australia/Lord_Howe').map(hours)).toEqual([24.5]);
    expect(periodBuckets('day', d('2026-10-04'), d('2026-10-04'), 'Australia/Lord_Howe').map(hours)).toEqual([23.5]);
    const kolkata = periodBuckets('day', d('2026-01-01'), d('2026-01-01'), 'Asia/Kolkata')[0]!;
    expect(kolkata.start.toISOString()).toBe('2025-12-31T18:30:00.000Z');
  });

  it('a day whose midnight is skipped starts at 01:00 (America/Santiago, 2026-09-06)', () => {
    const [day] = periodBuckets('day', d('2026-09-06'), d('2026-09-06'), 'America/Santiago');
    expect(day!.start.toISOString()).toBe('2026-09-06T04:00:00.000Z'); // 01:00 -03:00
    expect(hours(day!)).toBe(23);
  });

  it('weeks are ISO weeks from Monday; months are calendar months; both inherit DST', () => {
    const weeks = periodBuckets('week', d('2026-03-25'), d('2026-04-01'), 'Europe/Paris');
    expect(weeks.map((b) => [b.label, b.start.toISOString(), hours(b)])).toEqual([
      ['2026-W13', '2026-03-22T23:00:00.000Z', 167],
      ['2026-W14', '2026-03-29T22:00:00.000Z', 168],
    ]);
    const months = periodBuckets('month', d('2026-02-10'), d('2026-03-01'), 'Europe/Paris');
    expect(months.map((b) => [b.label, b.start.toISOString(), hours(b)])).toEqual([
      ['2026-02', '2026-01-31T23:00:00.000Z', 28 * 24],
      ['2026-03', '2026-02-28T23:00:00.000Z', 31 * 24 - 1],
    ]);
    expect(periodLabel('week', d('2026-12-28'))).toBe('2026-W53');
    expect(periodLabel('week', d('2024-12-30'))).toBe('2025-W01');
  });

  it('local dates of instants and default ranges', () => {
    expect(formatLocalDate(localDateOf(new Date('2026-03-28T23:30:00Z'), 'Europe/Paris'))).toBe('2026-03-29');
    expect(formatLocalDate(localDateOf(new Date('2026-03-28T23:30:00Z'), 'UTC'))).toBe('2026-03-28');
    expect(startOfLocalDate(d('2026-03-29'), 'UTC').toISOString()).toBe('2026-03-29T00:00:00.000Z');
    expect(formatLocalDate(defaultFrom('day', d('2026-03-30')))).toBe('2026-03-01');
    expect(formatLocalDate(defaultFrom('week', d('2026-03-30')))).toBe('2026-01-12');
    expect(formatLocalDate(defaultFrom('month', d('2026-03-30')))).toBe('2025-04-01');
  });

  it('refuses ranges of more than the maximum', () => {
    expect(() => periodBuckets('day', d('2020-01-01'), d('2026-01-01'), 'UTC', 1000)).toThrow(RangeError);
  });
});
