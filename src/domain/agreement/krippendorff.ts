/**
 * Krippendorff's alpha, the reliability coefficient for any number of coders, missing values and
 * nominal, ordinal, interval or ratio data. Pure (no I/O).
 *
 * Source: K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011, University of
 * Pennsylvania, ScholarlyCommons asc_papers/43), sections A–E; the same definitions are in
 * Krippendorff, "Content Analysis", 4th ed. (2019), ch. 12.
 *
 * Reliability data are units (items), each holding the values the coders gave it; a coder who did
 * not code a unit is simply absent (a missing value). Only units with m_u ≥ 2 values are pairable.
 *
 *   coincidences  o_ck = Σ_u (number of c–k pairs of values in u, ordered, i ≠ j) / (m_u − 1)
 *   marginals     n_c  = Σ_k o_ck,   n = Σ_c n_c  (the number of pairable values)
 *   observed      D_o  = (1/n)        Σ_c Σ_k o_ck      δ²_ck
 *   expected      D_e  = 1/(n(n − 1)) Σ_c Σ_k n_c · n_k δ²_ck
 *   alpha         α    = 1 − D_o / D_e
 *
 * with the difference functions (values c < k; for ordinal data the values are ranks and n_g the
 * marginals of the values between them):
 *   nominal   δ² = 0 if c = k, else 1
 *   ordinal   δ² = (Σ_{g=c..k} n_g − (n_c + n_k)/2)²
 *   interval  δ² = (c − k)²
 *   ratio     δ² = ((c − k) / (c + k))²   (0 when c + k = 0)
 *
 * α is 1 for perfect agreement and 0 for agreement at chance level; it is undefined (null here)
 * when no unit has two values or when all pairable values are equal (D_e = 0, "no variation").
 *
 * The coincidence matrix is additive over units, so it is also the state to keep for an exact
 * running alpha: {@link CoincidenceMatrix.addUnit} with sign −1 takes a unit out again. Entries are
 * stored multiplied by {@link SCALE} = 2520 = lcm(1..9): for units of up to 10 values (overlap ≤ 10)
 * every entry is an integer, so adding and removing units never accumulates rounding error.
 */

export type Metric = 'nominal' | 'ordinal' | 'interval' | 'ratio';
export const METRICS: readonly Metric[] = ['nominal', 'ordinal', 'interval', 'ratio'];

/** A coded value: a category (string or number) for nominal data, a number for the other metrics. */
export type Value = string | number;

/** One unit's values, one per coder who coded it; null / undefined mark a missing value. */
export type Unit = readonly (Value | null | undefined)[];

export interface AlphaResult {
  /** Krippendorff's alpha; null when undefined (nothing pairable, or no variation at all). */
  alpha: number | null;
  metric: Metric;
  observedDisagreement: number;
  expectedDisagreement: number;
  /** n: values in units that have at least two. */
  pairableValues: number;
  /** Units with at least two values. */
  pairableUnits: number;
}

/** Multiplier of the stored coincidences: lcm(1..9), so units of ≤ 10 values add integers. */
export const SCALE = 2520;

const present = (v: Value | null | undefined): v is Value =>
  v !== null && v !== undefined && !(typeof v === 'number' && Number.isNaN(v));

/**
 * A coincidence matrix built unit by unit (sparse: only value pairs that occur are stored).
 * Values are compared as JavaScript Map keys: 1 and '1' are different categories.
 */
export class CoincidenceMatrix {
  /** o[c][k] × SCALE. */
  readonly o = new Map<Value, Map<Value, number>>();
  /** Pairable units (m_u ≥ 2) currently counted. */
  units = 0;

  /**
   * Adds (sign 1) or removes (sign −1) one unit's contribution. Units with fewer than two values
   * contribute nothing (they are not pairable). Returns this.
   */
  addUnit(values: Unit, sign: 1 | -1 = 1): this {
    const counts = new Map<Value, number>();
    let m = 0;
    for (const v of values) {
      if (!present(v)) continue;
      counts.set(v, (counts.get(v) ?? 0) + 1);
      m++;
    }
    if (m < 2) return this;
    const w = (sign * SCALE) / (m - 1);
    for (const [c, nc] of counts) {
      for (const [k, nk] of counts) {
        const pairs = c === k ? nc * (nc - 1) : nc * nk;
        if (pairs) this.bump(c, k, pairs * w);
      }
    }
    this.units += sign;
    return this;
  }

  private bump(c: Value, k: Value, by: number) {
    let row = this.o.get(c);
    if (!row) this.o.set(c, (row = new Map()));
    const next = (row.get(k) ?? 0) + by;
    if (next === 0) {
      row.delete(k);
      if (!row.size) this.o.delete(c);
    } else row.set(k, next);
  }

  /** n_c for every value with pairable occurrences. */
  marginals(): Map<Value, number> {
    const n = new Map<Value, number>();
    for (const [c, row] of this.o) {
      let s = 0;
      for (const x of row.values()) s += x;
      n.set(c, s / SCALE);
    }
    return n;
  }

  /** The matrix as plain rows of [c, k, o_ck] (unscaled), for display and tests. */
  entries(): [Value, Value, number][] {
    const out: [Value, Value, number][] = [];
    for (const [c, row] of this.o) for (const [k, x] of row) out.push([c, k, x / SCALE]);
    return out;
  }
}

function requireNumbers(values: Iterable<Value>, metric: Metric): void {
  if (metric === 'nominal') return;
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new TypeError(`Krippendorff's alpha (${metric}) needs finite numbers, got ${JSON.stringify(v)}`);
    }
  }
}

/** δ² as a function of two values, given the sorted domain and its marginals (ordinal). */
function differenceFunction(metric: Metric, n: Map<Value, number>): (c: Value, k: Value) => number {
  switch (metric) {
    case 'nominal':
      return (c, k) => (c === k ? 0 : 1);
    case 'interval':
      return (c, k) => ((c as number) - (k as number)) ** 2;
    case 'ratio':
      return (c, k) => {
        const s = (c as number) + (k as number);
        return s === 0 ? 0 : (((c as number) - (k as number)) / s) ** 2;
      };
    case 'ordinal': {
      const domain = [...n.keys()].sort((a, b) => (a as number) - (b as number));
      const rank = new Map(domain.map((v, i) => [v, i]));
      const cum = [0];
      for (const v of domain) cum.push(cum.at(-1)! + n.get(v)!);
      return (c, k) => {
        let i = rank.get(c)!;
        let j = rank.get(k)!;
        if (i === j) return 0;
        if (i > j) [i, j] = [j, i];
        const between = cum[j + 1]! - cum[i]!;
        return (between - (n.get(domain[i]!)! + n.get(domain[j]!)!) / 2) ** 2;
      };
    }
  }
}

/** Σ_c Σ_k n_c n_k δ²_ck, in O(V) for nominal and interval and O(V²) for ordinal and ratio. */
function expectedSum(metric: Metric, n: Map<Value, number>, total: number, delta: (c: Value, k: Value) => number) {
  if (metric === 'nominal') {
    let sq = 0;
    for (const x of n.values()) sq += x * x;
    return total * total - sq;
  }
  if (metric === 'interval') {
    let s1 = 0;
    let s2 = 0;
    for (const [v, x] of n) {
      s1 += x * (v as number);
      s2 += x * (v as number) ** 2;
    }
    return 2 * total * s2 - 2 * s1 * s1;
  }
  const vals = [...n.entries()];
  let sum = 0;
  for (let i = 0; i < vals.length; i++) {
    for (let j = i + 1; j < vals.length; j++) {
      sum += 2 * vals[i]![1] * vals[j]![1] * delta(vals[i]![0], vals[j]![0]);
    }
  }
  return sum;
}

/** Alpha from an accumulated coincidence matrix. Throws TypeError for non-numbers with a numeric metric. */
export function alphaFromCoincidences(cm: CoincidenceMatrix, metric: Metric): AlphaResult {
  const n = cm.marginals();
  requireNumbers(n.keys(), metric);
  let total = 0;
  for (const x of n.values()) total += x;
  const result = (alpha: number | null, dO: number, dE: number): AlphaResult => ({
    alpha,
    metric,
    observedDisagreement: dO,
    expectedDisagreement: dE,
    pairableValues: total,
    pairableUnits: cm.units,
  });
  if (total < 2) return result(null, 0, 0);
  const delta = differenceFunction(metric, n);
  let observed = 0;
  for (const [c, row] of cm.o) for (const [k, x] of row) if (c !== k) observed += x * delta(c, k);
  const dO = observed / SCALE / total;
  const dE = expectedSum(metric, n, total, delta) / (total * (total - 1));
  // A relative floor: sums of n² terms that should be 0 can leave rounding dust.
  if (dE <= 1e-12 * Math.max(1, dO)) return result(null, dO, dE);
  return result(1 - dO / dE, dO, dE);
}

/**
 * Krippendorff's alpha of reliability data given unit by unit (each unit: the values its coders
 * gave; null / undefined / NaN = missing). Values must be numbers for ordinal, interval and ratio
 * (ordinal ranks them by numeric order); nominal accepts strings and numbers.
 */
export function krippendorffAlpha(units: Iterable<Unit>, metric: Metric): AlphaResult {
  const cm = new CoincidenceMatrix();
  for (const u of units) cm.addUnit(u);
  return alphaFromCoincidences(cm, metric);
}

/**
 * The same data in the canonical coders × units layout (`data[coder][unit]`, missing as null),
 * as Krippendorff tabulates it and the `krippendorff` Python package takes it.
 */
export function unitsFromCoderRows(data: readonly Unit[]): Unit[] {
  const width = Math.max(0, ...data.map((r) => r.length));
  return Array.from({ length: width }, (_, u) => data.map((row) => row[u]));
}

export interface DistanceAlphaResult extends Omit<AlphaResult, 'metric'> {
  metric: 'distance';
  /** True when D_e is a mean over `samplePairs` random value pairs rather than all of them. */
  sampled: boolean;
}

/**
 * Krippendorff's alpha with a custom difference function for values that are not numbers or
 * categories (a set of boxes, a text): δ² = distance(a, b) ∈ [0, 1], symmetric, 0 for equal
 * values. Same definitions as above written over values instead of coincidences:
 *
 *   D_o = (1/n) Σ_u 1/(m_u − 1) Σ_{i≠j in u} δ²(v_i, v_j)
 *   D_e = 1/(n(n − 1)) Σ_{i≠j over all n pairable values} δ²(v_i, v_j)
 *
 * D_o costs Σ m_u² comparisons; D_e costs n², so above `samplePairs` ordered pairs (default
 * 200 000) it is estimated from that many pairs drawn uniformly with a fixed seed (repeatable;
 * standard error ≤ 0.5/√samplePairs ≈ 0.0011 since δ² ≤ 1) and `sampled` says so.
 */
export function alphaWithDistance<T>(
  units: Iterable<readonly (T | null | undefined)[]>,
  distance: (a: T, b: T) => number,
  opts: { samplePairs?: number; seed?: number } = {},
): DistanceAlphaResult {
  const values: T[] = [];
  let observed = 0;
  let pairableUnits = 0;
  for (const unit of units) {
    const vs = unit.filter((v): v is T => v !== null && v !== undefined);
    if (vs.length < 2) continue;
    pairableUnits++;
    let s = 0;
    for (let i = 0; i < vs.length; i++) for (let j = i + 1; j < vs.length; j++) s += 2 * distance(vs[i]!, vs[j]!);
    observed += s / (vs.length - 1);
    values.push(...vs);
  }
  const n = values.length;
  const base = { metric: 'distance' as const, pairableValues: n, pairableUnits };
  if (n < 2) return { ...base, alpha: null, observedDisagreement: 0, expectedDisagreement: 0, sampled: false };
  const dO = observed / n;
  const samplePairs = opts.samplePairs ?? 200_000;
  let dE: number;
  let sampled = false;
  if (n * (n - 1) <= samplePairs) {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += 2 * distance(values[i]!, values[j]!);
    dE = s / (n * (n - 1));
  } else {
    sampled = true;
    const random = mulberry32(opts.seed ?? 1);
    let s = 0;
    for (let p = 0; p < samplePairs; p++) {
      const i = Math.floor(random() * n);
      let j = Math.floor(random() * (n - 1));
      if (j >= i) j++;
      s += distance(values[i]!, values[j]!);
    }
    dE = s / samplePairs;
  }
  const alpha = dE <= 1e-12 ? null : 1 - dO / dE;
  return { ...base, alpha, observedDisagreement: dO, expectedDisagreement: dE, sampled };
}

/** mulberry32: a small seeded PRNG (uniform in [0, 1)), for repeatable samples. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
