import { describe, expect, it } from 'vitest';
import {
  ceilHour,
  floorHour,
  formatUptime,
  isValidTimeZone,
  lastHours,
  ratePerHour,
  ratio,
  round,
  splitByHour,
  splitForRollups,
  startOfDay,
  startOfNextDay,
  utcOffsetMs,
} from '../../src/domain/time-buckets.ts';

const at = (iso: string) => new Date(iso);
const isoOf = (d: Date) => d.toISOString();

describe('isValidTimeZone', () => {
  it('accepts IANA names and rejects anything else', () => {
    for (const tz of ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham']) {
      expect(isValidTimeZone(tz), tz).toBe(true);
    }
    for (const tz of ['', 'Mars/Olympus', 'Europe/Pariss', 'x'.repeat(65), 42, null, undefined, {}]) {
      expect(isValidTimeZone(tz), String(tz)).toBe(false);
    }
  });
});

describe('startOfDay / startOfNextDay', () => {
  it('is UTC midnight in UTC', () => {
    expect(isoOf(startOfDay(at('2026-04-06T12:34:56.789Z'), 'UTC'))).toBe('2026-04-06T00:00:00.000Z');
    expect(isoOf(startOfDay(at('2026-04-06T00:00:00.000Z'), 'UTC'))).toBe('2026-04-06T00:00:00.000Z');
    expect(isoOf(startOfDay(at('2026-04-05T23:59:59.999Z'), 'UTC'))).toBe('2026-04-05T00:00:00.000Z');
    expect(isoOf(startOfNextDay(at('2026-04-06T12:00:00Z'), 'UTC'))).toBe('2026-04-07T00:00:00.000Z');
  });

  it('moves with the zone: 03:00 UTC is still yesterday in New York and already today in Tokyo', () => {
    const now = at('2026-04-06T03:00:00Z');
    expect(isoOf(startOfDay(now, 'America/New_York'))).toBe('2026-04-05T04:00:00.000Z'); // EDT, UTC-4
    expect(isoOf(startOfDay(now, 'Asia/Tokyo'))).toBe('2026-04-05T15:00:00.000Z'); // UTC+9
    expect(isoOf(startOfNextDay(now, 'Asia/Tokyo'))).toBe('2026-04-06T15:00:00.000Z');
  });

  it('handles offsets that are not whole hours', () => {
    expect(isoOf(startOfDay(at('2026-04-06T12:00:00Z'), 'Asia/Kolkata'))).toBe('2026-04-05T18:30:00.000Z');
    expect(isoOf(startOfDay(at('2026-04-06T12:00:00Z'), 'Asia/Kathmandu'))).toBe('2026-04-05T18:15:00.000Z');
    // Chatham in June is on standard time, UTC+12:45: 10:00Z is 22:45 local, 12:00Z already tomorrow.
    expect(isoOf(startOfDay(at('2026-06-06T10:00:00Z'), 'Pacific/Chatham'))).toBe('2026-06-05T11:15:00.000Z');
    expect(isoOf(startOfDay(at('2026-06-06T12:00:00Z'), 'Pacific/Chatham'))).toBe('2026-06-06T11:15:00.000Z');
  });

  it('gives 23- and 25-hour days across DST changes', () => {
    // US spring forward 2026-03-08, fall back 2026-11-01.
    const spring = startOfDay(at('2026-03-08T18:00:00Z'), 'America/New_York');
    expect(isoOf(spring)).toBe('2026-03-08T05:00:00.000Z');
    expect(startOfNextDay(spring, 'America/New_York').getTime() - spring.getTime()).toBe(23 * 3_600_000);
    const fall = startOfDay(at('2026-11-01T18:00:00Z'), 'America/New_York');
    expect(isoOf(fall)).toBe('2026-11-01T04:00:00.000Z');
    expect(startOfNextDay(fall, 'America/New_York').getTime() - fall.getTime()).toBe(25 * 3_600_000);
    // Just after local midnight on the fall-back day.
    expect(isoOf(startOfDay(at('2026-11-01T04:00:00.001Z'), 'America/New_York'))).toBe('2026-11-01T04:00:00.000Z');
    expect(isoOf(startOfDay(at('2026-11-01T03:59:59.999Z'), 'America/New_York'))).toBe('2026-10-31T04:00:00.000Z');
  });

  it('starts the day at 01:00 when local midnight is skipped', () => {
    // Brazil began DST at 00:00 on 2018-11-04: clocks jumped to 01:00 (UTC-3 → UTC-2).
    const start = startOfDay(at('2018-11-04T15:00:00Z'), 'America/Sao_Paulo');
    expect(isoOf(start)).toBe('2018-11-04T03:00:00.000Z');
    expect(startOfNextDay(start, 'America/Sao_Paulo').getTime() - start.getTime()).toBe(23 * 3_600_000);
  });

  it('skips a day that does not exist (Samoa, 2011-12-30)', () => {
    const start = startOfDay(at('2011-12-29T12:00:00Z'), 'Pacific/Apia');
    const next = startOfNextDay(start, 'Pacific/Apia');
    expect(new Intl.DateTimeFormat('en-CA', { timeZone: 'Pacific/Apia' }).format(next)).toBe('2011-12-31');
  });

  it('reports offsets', () => {
    expect(utcOffsetMs(at('2026-04-06T12:00:00Z').getTime(), 'Asia/Kolkata')).toBe(5.5 * 3_600_000);
    expect(utcOffsetMs(at('2026-01-06T12:00:00Z').getTime(), 'America/New_York')).toBe(-5 * 3_600_000);
  });
});

describe('hours', () => {
  it('floors and ceils to UTC hours', () => {
    expect(isoOf(floorHour(at('2026-04-06T10:59:59.999Z')))).toBe('2026-04-06T10:00:00.000Z');
    expect(isoOf(floorHour(at('2026-04-06T11:00:00.000Z')))).toBe('2026-04-06T11:00:00.000Z');
    expect(isoOf(ceilHour(at('2026-04-06T10:00:00.001Z')))).toBe('2026-04-06T11:00:00.000Z');
    expect(isoOf(ceilHour(at('2026-04-06T10:00:00.000Z')))).toBe('2026-04-06T10:00:00.000Z');
  });

  it('lists the last 24 hours oldest first, ending with the current hour', () => {
    const hours = lastHours(at('2026-04-06T10:30:00Z'));
    expect(hours).toHaveLength(24);
    expect(isoOf(hours[0]!)).toBe('2026-04-05T11:00:00.000Z');
    expect(isoOf(hours[23]!)).toBe('2026-04-06T10:00:00.000Z');
    for (let i = 1; i < 24; i++) expect(hours[i]!.getTime() - hours[i - 1]!.getTime()).toBe(3_600_000);
    expect(lastHours(at('2026-04-06T10:30:00Z'), 3).map(isoOf)).toEqual([
      '2026-04-06T08:00:00.000Z',
      '2026-04-06T09:00:00.000Z',
      '2026-04-06T10:00:00.000Z',
    ]);
  });

  it('splits a range into whole hours and partial edges', () => {
    expect(splitByHour(at('2026-04-06T00:00:00Z'), at('2026-04-07T00:00:00Z'))).toEqual({
      hours: { from: at('2026-04-06T00:00:00Z'), to: at('2026-04-07T00:00:00Z') },
      edges: [],
    });
    expect(splitByHour(at('2026-04-05T18:30:00Z'), at('2026-04-06T18:30:00Z'))).toEqual({
      hours: { from: at('2026-04-05T19:00:00Z'), to: at('2026-04-06T18:00:00Z') },
      edges: [
        { from: at('2026-04-05T18:30:00Z'), to: at('2026-04-05T19:00:00Z') },
        { from: at('2026-04-06T18:00:00Z'), to: at('2026-04-06T18:30:00Z') },
      ],
    });
    expect(splitByHour(at('2026-04-06T10:10:00Z'), at('2026-04-06T10:50:00Z'))).toEqual({
      hours: null,
      edges: [{ from: at('2026-04-06T10:10:00Z'), to: at('2026-04-06T10:50:00Z') }],
    });
    expect(splitByHour(at('2026-04-06T10:10:00Z'), at('2026-04-06T10:10:00Z'))).toEqual({ hours: null, edges: [] });
  });
});

describe('splitForRollups', () => {
  const H = 3_600_000;
  /** How many times the plan counts instant t (signed): must be 1 inside [from, to), 0 outside. */
  const coverage = (plan: ReturnType<typeof splitForRollups>, t: number) =>
    [...plan.days, ...plan.hours, ...plan.edges].reduce(
      (n, r) => n + (r.from.getTime() <= t && t < r.to.getTime() ? r.sign : 0),
      0,
    );

  it('reads a UTC day as one daily row and nothing else', () => {
    expect(splitForRollups(at('2026-04-06T00:00:00Z'), at('2026-04-07T00:00:00Z'))).toEqual({
      days: [{ from: at('2026-04-06T00:00:00Z'), to: at('2026-04-07T00:00:00Z'), sign: 1 }],
      hours: [],
      edges: [],
    });
  });

  it('reads a New York day (04:00–04:00 UTC) as a day minus 4 hours plus 4 hours', () => {
    expect(splitForRollups(at('2026-04-06T04:00:00Z'), at('2026-04-07T04:00:00Z'))).toEqual({
      days: [{ from: at('2026-04-06T00:00:00Z'), to: at('2026-04-07T00:00:00Z'), sign: 1 }],
      hours: [
        { from: at('2026-04-06T00:00:00Z'), to: at('2026-04-06T04:00:00Z'), sign: -1 },
        { from: at('2026-04-07T00:00:00Z'), to: at('2026-04-07T04:00:00Z'), sign: 1 },
      ],
      edges: [],
    });
  });

  it('reads a Kolkata day (18:30–18:30 UTC) with partial-hour edges on both days', () => {
    expect(splitForRollups(at('2026-04-05T18:30:00Z'), at('2026-04-06T18:30:00Z'))).toEqual({
      days: [{ from: at('2026-04-06T00:00:00Z'), to: at('2026-04-07T00:00:00Z'), sign: 1 }],
      hours: [
        { from: at('2026-04-05T19:00:00Z'), to: at('2026-04-06T00:00:00Z'), sign: 1 },
        { from: at('2026-04-06T19:00:00Z'), to: at('2026-04-07T00:00:00Z'), sign: -1 },
      ],
      edges: [
        { from: at('2026-04-05T18:30:00Z'), to: at('2026-04-05T19:00:00Z'), sign: 1 },
        { from: at('2026-04-06T18:30:00Z'), to: at('2026-04-06T19:00:00Z'), sign: -1 },
      ],
    });
  });

  it('joins adjacent whole days and reads nothing for an empty range', () => {
    expect(splitForRollups(at('2026-04-06T00:00:00Z'), at('2026-04-09T00:00:00Z')).days).toEqual([
      { from: at('2026-04-06T00:00:00Z'), to: at('2026-04-09T00:00:00Z'), sign: 1 },
    ]);
    expect(splitForRollups(at('2026-04-06T10:00:00Z'), at('2026-04-06T10:00:00Z'))).toEqual({ days: [], hours: [], edges: [] });
  });

  it('counts every instant of the range once and none outside it, for days of many zones and odd bounds', () => {
    const ranges: [Date, Date][] = [];
    for (const tz of ['UTC', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham', 'Pacific/Kiritimati', 'Pacific/Niue', 'America/Santiago']) {
      for (const now of ['2026-04-06T00:00:00Z', '2026-04-05T12:34:56.789Z', '2026-09-06T23:59:59.999Z', '2026-11-01T06:30:00Z']) {
        ranges.push([startOfDay(at(now), tz), startOfNextDay(at(now), tz)]);
      }
    }
    ranges.push([at('2026-04-06T10:10:00Z'), at('2026-04-06T10:50:00Z')], [at('2026-04-06T10:10:00Z'), at('2026-04-09T02:00:01Z')]);
    for (const [from, to] of ranges) {
      const plan = splitForRollups(from, to);
      const probes = [from.getTime() - 1, from.getTime(), to.getTime() - 1, to.getTime()];
      for (let t = Math.floor(from.getTime() / H) * H - 2 * H; t < to.getTime() + 2 * H; t += 15 * 60_000) probes.push(t, t + 1, t - 1);
      for (const t of probes) {
        expect(coverage(plan, t), `${isoOf(from)}–${isoOf(to)} at ${new Date(t).toISOString()}`).toBe(
          t >= from.getTime() && t < to.getTime() ? 1 : 0,
        );
      }
      // At most 12 hours per partially covered UTC day, of which a day of a zone has two.
      const hourRows = plan.hours.reduce((n, r) => n + (r.to.getTime() - r.from.getTime()) / H, 0);
      if (to.getTime() - from.getTime() <= 26 * H) expect(hourRows, `${isoOf(from)}–${isoOf(to)}`).toBeLessThanOrEqual(24);
    }
  });
});

describe('formatUptime', () => {
  it('formats whole minutes, rounding down', () => {
    expect(formatUptime(0)).toBe('0m');
    expect(formatUptime(59_999)).toBe('0m');
    expect(formatUptime(-60_000)).toBe('0m');
    expect(formatUptime(45 * 60_000 + 59_000)).toBe('45m');
    expect(formatUptime(3_600_000)).toBe('1h 0m');
    expect(formatUptime((4 * 60 + 32) * 60_000)).toBe('4h 32m');
    expect(formatUptime((23 * 60 + 59) * 60_000 + 59_999)).toBe('23h 59m');
    expect(formatUptime(24 * 3_600_000)).toBe('1d 0h 0m');
    expect(formatUptime(((2 * 24 + 3) * 60 + 7) * 60_000)).toBe('2d 3h 7m');
  });
});

describe('rounding and rates', () => {
  it('rounds half away from zero at the stated places', () => {
    expect(round(1 / 3)).toBe(0.3333);
    expect(round(2 / 3)).toBe(0.6667);
    expect(round(1.005, 2)).toBe(1.01);
    expect(round(0.00005)).toBe(0.0001);
    expect(round(-0.00005)).toBe(-0.0001);
    expect(round(1e-9)).toBe(0);
    expect(round(21.5, 2)).toBe(21.5);
  });

  it('answers 0 for an empty denominator', () => {
    expect(ratio(0, 0)).toBe(0);
    expect(ratio(5, 0)).toBe(0);
    expect(ratio(19, 20)).toBe(0.95);
    expect(ratio(1, 7)).toBe(0.1429);
  });

  it('divides today by the hours elapsed, at least one', () => {
    const start = at('2026-04-06T00:00:00Z');
    expect(ratePerHour(86, start, at('2026-04-06T04:00:00Z'))).toBe(21.5);
    expect(ratePerHour(10, start, at('2026-04-06T00:05:00Z'))).toBe(10);
    expect(ratePerHour(0, start, at('2026-04-06T12:00:00Z'))).toBe(0);
    expect(ratePerHour(10, start, at('2026-04-06T03:00:00Z'))).toBe(3.33);
  });
});
