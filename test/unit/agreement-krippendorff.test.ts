import { describe, expect, it } from 'vitest';
import {
  alphaWithDistance,
  CoincidenceMatrix,
  alphaFromCoincidences,
  krippendorffAlpha,
  unitsFromCoderRows,
} from '../../src/domain/agreement/krippendorff.ts';

const N = null;
// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
// units, 7 missing values (unit 12 has one value: not pairable).
const PAPER = [
  [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
  [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
  [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
  [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
];

describe("Krippendorff's alpha: the published worked examples", () => {
  const units = unitsFromCoderRows(PAPER);

  it.each([
    ['nominal', 0.743],
    ['ordinal', 0.815],
    ['interval', 0.849],
    ['ratio', 0.797],
  ] as const)('%s alpha of the 4 x 12 reliability data is %s', (metric, published) => {
    const r = krippendorffAlpha(units, metric);
    expect(r.alpha!.toFixed(3)).toBe(published.toFixed(3));
    expect(r.pairableValues).toBe(40);
    expect(r.pairableUnits).toBe(11);
  });

  it('nominal: the paper\'s computation, alpha = 1 - (n - 1) * (off-diagonal o) / (n^2 - sum of n_c^2)', () => {
    const r = krippendorffAlpha(units, 'nominal');
    // n = 40; off-diagonal coincidences sum to 8; n_c = 9, 13, 10, 5, 3 so sum of n_c^2 = 384.
    expect(r.observedDisagreement).toBeCloseTo(8 / 40, 12);
    expect(r.alpha).toBeCloseTo(1 - (39 * 8) / (1600 - 384), 12);
  });

  it("Wikipedia's 3 coders x 15 units example: nominal 0.691, interval 0.811", () => {
    const wiki = unitsFromCoderRows([
      [N, N, N, N, N, 3, 4, 1, 2, 1, 1, 3, 3, N, 3],
      [1, N, 2, 1, 3, 3, 4, 3, N, N, N, N, N, N, N],
      [N, N, 2, 1, 3, 4, 4, N, 2, 1, 1, 3, 3, N, 4],
    ]);
    expect(krippendorffAlpha(wiki, 'nominal').alpha).toBeCloseTo(0.691358, 6);
    expect(krippendorffAlpha(wiki, 'interval').alpha).toBeCloseTo(0.810845, 6);
  });

  it('two observers, binary data (section B): alpha 0.095', () => {
    const b = unitsFromCoderRows([
      [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
      [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
    ]);
    expect(krippendorffAlpha(b, 'nominal').alpha!.toFixed(3)).toBe('0.095');
  });
});

describe("Krippendorff's alpha: edges", () => {
  it('is 1 for perfect agreement and near 0 when half the pairs disagree on two even categories', () => {
    expect(krippendorffAlpha([[1, 1], [2, 2], [3, 3, 3]], 'interval').alpha).toBe(1);
    // D_o = 4/8, D_e = (64 - 32)/56: alpha = 1 - 0.5/(4/7) = 1/8 (chance level is 0 only as n grows).
    expect(krippendorffAlpha([['a', 'b'], ['b', 'a'], ['a', 'a'], ['b', 'b']], 'nominal').alpha).toBeCloseTo(1 / 8, 12);
  });

  it('is null (undefined) when nothing is pairable or every pairable value is the same', () => {
    expect(krippendorffAlpha([[1], [2, null]], 'nominal').alpha).toBeNull();
    expect(krippendorffAlpha([[5, 5], [5, 5, 5]], 'interval').alpha).toBeNull();
    expect(krippendorffAlpha([], 'ratio').alpha).toBeNull();
  });

  it('missing values (null, undefined, NaN) are skipped, not coded', () => {
    const a = krippendorffAlpha([[1, 2, null], [2, 2, undefined], [3, NaN, 3]], 'interval');
    const b = krippendorffAlpha([[1, 2], [2, 2], [3, 3]], 'interval');
    expect(a).toEqual(b);
  });

  it('refuses non-numbers for a numeric metric with a TypeError', () => {
    expect(() => krippendorffAlpha([['a', 'b']], 'interval')).toThrow(TypeError);
    expect(() => krippendorffAlpha([['a', 'b']], 'ordinal')).toThrow(/needs finite numbers/);
  });

  it('ratio treats 0 + 0 as no difference', () => {
    expect(krippendorffAlpha([[0, 0], [1, 1], [2, 2]], 'ratio').alpha).toBe(1);
  });
});

describe('CoincidenceMatrix: an exact running state', () => {
  it('adding then removing units leaves exactly the matrix without them (integer entries)', () => {
    const base = unitsFromCoderRows(PAPER);
    const cm = new CoincidenceMatrix();
    for (const u of base) cm.addUnit(u);
    const before = JSON.stringify(cm.entries().sort());
    const extra = [[1, 2, 3, 4, 5, 1, 2, 3, 4, 5], [2, 2, 2], [7, 1, 4, 4, 1, 1, 2]];
    for (const u of extra) cm.addUnit(u);
    for (const u of extra) cm.addUnit(u, -1);
    expect(JSON.stringify(cm.entries().sort())).toBe(before);
    for (const row of cm.o.values()) for (const x of row.values()) expect(Number.isInteger(x)).toBe(true);
    expect(alphaFromCoincidences(cm, 'ordinal')).toEqual(krippendorffAlpha(base, 'ordinal'));
  });

  it("reproduces the paper's coincidence matrix and marginals", () => {
    const cm = new CoincidenceMatrix();
    for (const u of unitsFromCoderRows(PAPER)) cm.addUnit(u);
    const o = (c: number, k: number) => (cm.o.get(c)?.get(k) ?? 0) / 2520;
    const t = 1 / 3;
    const expected = [
      [7, 4 * t, t, t, 0],
      [4 * t, 10, 4 * t, t, 0],
      [t, 4 * t, 8, t, 0],
      [t, t, t, 4, 0],
      [0, 0, 0, 0, 3],
    ];
    expected.forEach((row, c) => row.forEach((x, k) => expect(o(c + 1, k + 1)).toBeCloseTo(x, 12)));
    expect([...cm.marginals()].sort(([a], [b]) => (a as number) - (b as number))).toEqual([[1, 9], [2, 13], [3, 10], [4, 5], [5, 3]]);
  });
});

describe('alphaWithDistance', () => {
  it('with the nominal distance it equals nominal alpha', () => {
    const units = unitsFromCoderRows(PAPER);
    const r = alphaWithDistance(units, (a, b) => (a === b ? 0 : 1));
    expect(r.alpha).toBeCloseTo(krippendorffAlpha(units, 'nominal').alpha!, 12);
    expect(r.sampled).toBe(false);
  });

  it('with squared differences it equals interval alpha', () => {
    const units = unitsFromCoderRows(PAPER);
    expect(alphaWithDistance(units, (a, b) => ((a as number) - (b as number)) ** 2).alpha).toBeCloseTo(
      krippendorffAlpha(units, 'interval').alpha!,
      12,
    );
  });

  it('estimates D_e from a fixed-seed sample once n(n - 1) ordered pairs exceed samplePairs', () => {
    const units = unitsFromCoderRows(PAPER); // n = 40: 1560 ordered pairs
    const nominal = (a: unknown, b: unknown) => (a === b ? 0 : 1);
    const exact = alphaWithDistance(units, nominal, { samplePairs: 1560 });
    expect(exact.sampled).toBe(false);
    const sampled = alphaWithDistance(units, nominal, { samplePairs: 1559 });
    expect(sampled.sampled).toBe(true);
    expect(alphaWithDistance(units, nominal, { samplePairs: 1559 })).toEqual(sampled); // repeatable
    expect(Math.abs(sampled.expectedDisagreement - exact.expectedDisagreement)).toBeLessThan(0.04);
    expect(sampled.observedDisagreement).toBe(exact.observedDisagreement);
  });
});
