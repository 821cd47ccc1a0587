/**
 * The checkers for what Label Studio sends (domain/ls-input.ts): every member of a class of values
 * PostgreSQL refuses is refused here, and what PostgreSQL stores as given is accepted.
 */
import { describe, expect, it } from 'vitest';
import { canonicalTimestamp, daysInMonth, INT4, INT8, intProblem, resultProblem, secondsProblem, timestampProblem } from '../../src/domain/ls-input.ts';

describe('timestampProblem', () => {
  it.each([
    '2026-01-02T03:04:05.123456Z',
    '2026-01-02T03:04:05Z',
    '2026-01-02T03:04Z',
    '2026-01-02T03:04:05.1Z',
    '2026-01-02T03:04:05.123456789Z',
    '2026-01-02T03:04:05+05:30',
    '2026-01-02T03:04:05+0530',
    '2026-01-02T03:04:05-08',
    '2026-01-02T03:04:05-15:59',
    '2026-01-02T03:04:05.000001',
    '2024-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z',
    '2026-12-31T23:59:59.999999Z',
    '2026-04-30T00:00:00Z',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59Z',
  ])('accepts %s', (s) => expect(timestampProblem(s)).toBeNull());

  it.each([
    ['2024-06-31T00:00:00Z', /day must be 01–30/],
    ['2026-02-30T00:00:00Z', /day must be 01–28/],
    ['2026-02-29T00:00:00Z', /day must be 01–28/],
    ['1900-02-29T00:00:00Z', /day must be 01–28/],
    ['2026-04-31T00:00:00Z', /day must be 01–30/],
    ['2026-11-31T00:00:00Z', /day must be 01–30/],
    ['2026-01-32T00:00:00Z', /day must be 01–31/],
    ['2026-01-00T00:00:00Z', /day must be/],
    ['2026-13-01T00:00:00Z', /month/],
    ['2026-00-01T00:00:00Z', /month/],
    ['0000-01-01T00:00:00Z', /year/],
    ['10000-01-01T00:00:00Z', /ISO 8601/],
    ['+010000-01-01T00:00:00Z', /ISO 8601/],
    ['-000001-01-01T00:00:00Z', /ISO 8601/],
    ['9999-12-31T23:00:00-05:00', /years 0001–9999/],
    ['0001-01-01T00:00:00+01:00', /years 0001–9999/],
    ['2026-01-02T24:00:00Z', /hour/],
    ['2026-01-02T23:60:00Z', /minute/],
    ['2026-01-02T23:59:60Z', /second/],
    ['2026-01-02T03:04:05+16:00', /offset/],
    ['2026-01-02T03:04:05+05:60', /offset/],
    ['2026-01-02', /ISO 8601/],
    ['2026-01-02 03:04:05Z', /ISO 8601/],
    ['1767323045', /ISO 8601/],
    ['', /ISO 8601/],
    ['yesterday', /ISO 8601/],
    ['Fri, 02 Jan 2026 03:04:05 GMT', /ISO 8601/],
    ['2026-1-2T03:04:05Z', /ISO 8601/],
    ['2026-01-02T03:04:05.1234567890Z', /ISO 8601/],
    ['2026-01-02T03:04:05ZZ', /ISO 8601/],
    [' 2026-01-02T03:04:05Z', /ISO 8601/],
    ['2026-01-02T03:04:05Z'.padEnd(65, ' '), /at most 64/],
  ])('refuses %s', (s, why) => expect(timestampProblem(s)).toMatch(why));

  it.each([1767323045, 1767323045000, null, true, {}, ['2026-01-02T03:04:05Z']])('refuses the non-string %j', (v) =>
    expect(timestampProblem(v)).toMatch(/string/),
  );

  it('knows the length of every month, leap years by the Gregorian rule', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((m) => daysInMonth(2026, m))).toEqual([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
    expect([2024, 2000, 1900, 2100, 2400].map((y) => daysInMonth(y, 2))).toEqual([29, 29, 28, 28, 29]);
  });

  it('makes a zone-less time UTC and leaves the others as sent', () => {
    expect(canonicalTimestamp('2026-01-02T03:04:05.000001')).toBe('2026-01-02T03:04:05.000001Z');
    expect(canonicalTimestamp('2026-01-02T03:04:05Z')).toBe('2026-01-02T03:04:05Z');
    expect(canonicalTimestamp('2026-01-02T03:04:05+05:30')).toBe('2026-01-02T03:04:05+05:30');
  });
});

describe('intProblem', () => {
  const id = { min: 1, max: INT4.max };
  it.each([1, 42, 2_147_483_647])('accepts the id %d', (v) => expect(intProblem(v, id)).toBeNull());
  it.each([
    [0, /from 1 to 2147483647/],
    [-1, /from 1/],
    [2_147_483_648, /from 1 to 2147483647/],
    [1e15, /from 1/],
    [2 ** 53, /15 digits/],
    [1e300, /15 digits/],
    [1.5, /integer/],
    [Number.NaN, /integer/],
    [Number.POSITIVE_INFINITY, /integer/],
    ['1', /integer/],
    [null, /integer/],
  ])('refuses the id %j', (v, why) => expect(intProblem(v, id)).toMatch(why));

  it('checks int8 bounds, with bigints too', () => {
    expect(intProblem(-2_147_483_648, INT4)).toBeNull();
    expect(intProblem(-2_147_483_649, INT4)).toMatch(/from -2147483648/);
    expect(intProblem(2_147_483_648, INT8)).toBeNull();
    expect(intProblem(2n ** 63n - 1n, INT8)).toBeNull();
    expect(intProblem(2n ** 63n, INT8)).toMatch(/9223372036854775807/);
    expect(intProblem(-(2n ** 63n) - 1n, INT8)).toMatch(/-9223372036854775808/);
  });
});

describe('secondsProblem', () => {
  it.each([0, 0.001, 12.5, 86_400, 1e9])('accepts %d', (v) => expect(secondsProblem(v)).toBeNull());
  it.each([-0.5, -1, 1e9 + 1, 1e300, Number.NaN, Number.POSITIVE_INFINITY, '12', null])('refuses %j', (v) =>
    expect(secondsProblem(v)).not.toBeNull(),
  );
});

describe('resultProblem', () => {
  const region = (text: string) => [{ from_name: 'note', to_name: 'image', type: 'textarea', value: { text: [text] } }];
  it('accepts results with any storable text', () => {
    expect(resultProblem(region('Box too loose 🐈‍⬛ עברית'))).toBeNull();
    expect(resultProblem([])).toBeNull();
  });
  it.each([
    ['U+0000 in a value', region('a\u0000b'), /U\+0000/],
    ['a lone high surrogate', region('\uD83D'), /surrogate/],
    ['a lone low surrogate', region('x\uDC08'), /surrogate/],
    ['U+0000 in a key', [{ 'from\u0000name': 'x' }], /keys/],
  ])('refuses %s', (_, v, why) => expect(resultProblem(v)).toMatch(why));
  it('refuses results nested deeper than 64 levels', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 70; i++) deep = [deep];
    expect(resultProblem([deep])).toMatch(/nested/);
  });
});
