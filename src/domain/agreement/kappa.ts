/**
 * Cohen's kappa between two annotators, and for every pair of annotators who shared items.
 * Pure (no I/O).
 *
 * Source: J. Cohen, "A Coefficient of Agreement for Nominal Scales", Educational and Psychological
 * Measurement 20(1), 1960, 37–46.
 *
 *   p_o = (items where both gave the same category) / N
 *   p_e = Σ_c p_A(c) · p_B(c)      (each annotator's own category shares over the N shared items)
 *   κ   = (p_o − p_e) / (1 − p_e)
 *
 * κ is 1 for perfect agreement and 0 for agreement at chance level. It is undefined (null) when
 * p_e = 1: both annotators gave one and the same category to every shared item, so chance alone
 * explains the agreement and there is nothing to correct for.
 */
import type { Id } from './dawid-skene.ts';

export interface KappaResult {
  kappa: number | null;
  observedAgreement: number;
  expectedAgreement: number;
  /** Items both annotators answered. */
  items: number;
}

/** κ of paired categorical answers [annotator A's, annotator B's], one pair per shared item. */
export function cohenKappa<V>(pairs: readonly (readonly [V, V])[]): KappaResult {
  return cohenKappaFromCounts(pairs.map(([x, y]) => [x, y, 1] as const));
}

/**
 * κ from joint counts [A's category, B's category, items] (a pair may repeat; counts add): the
 * same figure as cohenKappa, read from rollups that keep only the counts.
 */
export function cohenKappaFromCounts<V>(counts: Iterable<readonly [V, V, number]>): KappaResult {
  return cohenKappaFromTotals(kappaTotals(counts));
}

/**
 * What κ needs of a pair's joint counts, three numbers: `items` N, `same` (items with equal
 * categories) and `cross` = Σ_c n_A(c) · n_B(c) (each annotator's count of category c), so that
 * p_o = same / N and p_e = cross / N². Sums of counts: a rollup can add them up (or compute them in
 * SQL from the joint counts) and read κ without the joint table.
 */
export interface KappaTotals {
  items: number;
  same: number;
  cross: number;
}

/** The totals of joint counts [A's category, B's category, items]. */
export function kappaTotals<V>(counts: Iterable<readonly [V, V, number]>): KappaTotals {
  let items = 0;
  let same = 0;
  const a = new Map<V, number>();
  const b = new Map<V, number>();
  for (const [x, y, n] of counts) {
    items += n;
    if (x === y) same += n;
    a.set(x, (a.get(x) ?? 0) + n);
    b.set(y, (b.get(y) ?? 0) + n);
  }
  let cross = 0;
  for (const [c, na] of a) cross += na * (b.get(c) ?? 0);
  return { items, same, cross };
}

/** κ from a pair's totals (the formula above; null when p_e = 1 or no items). */
export function cohenKappaFromTotals({ items: N, same, cross }: KappaTotals): KappaResult {
  if (!N) return { kappa: null, observedAgreement: 0, expectedAgreement: 0, items: 0 };
  const pe = cross / (N * N);
  const po = same / N;
  const kappa = 1 - pe <= 1e-12 ? null : (po - pe) / (1 - pe);
  return { kappa, observedAgreement: po, expectedAgreement: pe, items: N };
}

export interface PairKappa extends KappaResult {
  /** The pair, a < b in string order. */
  a: Id;
  b: Id;
}

/**
 * Cohen's κ for every pair of annotators who answered at least one item in common, from one
 * categorical answer per (item, annotator) (a repeated answer by the same annotator replaces the
 * earlier one). Pairs come sorted by (a, b).
 */
export function pairwiseKappa<V>(answers: Iterable<{ item: Id; annotator: Id; label: V }>): PairKappa[] {
  const byItem = new Map<Id, Map<Id, V>>();
  for (const { item, annotator, label } of answers) {
    let m = byItem.get(item);
    if (!m) byItem.set(item, (m = new Map()));
    m.set(annotator, label);
  }
  const pairs = new Map<string, { a: Id; b: Id; pairs: [V, V][] }>();
  for (const m of byItem.values()) {
    const entries = [...m.entries()].sort(([x], [y]) => compareIds(x, y));
    for (let i = 0; i < entries.length; i++) {
      for (let j = i + 1; j < entries.length; j++) {
        const [a, va] = entries[i]!;
        const [b, vb] = entries[j]!;
        const key = JSON.stringify([a, b]);
        let p = pairs.get(key);
        if (!p) pairs.set(key, (p = { a, b, pairs: [] }));
        p.pairs.push([va, vb]);
      }
    }
  }
  return [...pairs.values()]
    .sort((p, q) => compareIds(p.a, q.a) || compareIds(p.b, q.b))
    .map((p) => ({ a: p.a, b: p.b, ...cohenKappa(p.pairs) }));
}

/** Numbers in numeric order before strings; strings in code-unit order. */
export function compareIds(x: Id, y: Id): number {
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  if (typeof x === 'number') return -1;
  if (typeof y === 'number') return 1;
  return x < y ? -1 : x > y ? 1 : 0;
}
