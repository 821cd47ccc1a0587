/**
 * LabelFleet's agreement maths against the published reference implementations, on the same
 * generated and public data: Krippendorff's alpha against the `krippendorff` package and
 * Dawid–Skene against crowd-kit's `DawidSkene` (and `MajorityVote`), run as a Python subprocess
 * in the reference-tools venv (scripts/env/reference-venv.sh).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { dawidSkene, type DawidSkeneResult } from '../../src/domain/agreement/dawid-skene.ts';
import { krippendorffAlpha, METRICS, mulberry32, unitsFromCoderRows, type Metric } from '../../src/domain/agreement/krippendorff.ts';
import { answers as dawidSkene1979 } from '../fixtures/dawid-skene-1979.ts';
import { reference } from '../helpers/reference.ts';

type Answer = { item: number; annotator: string | number; label: number };

/** Reliability data: `coders` × `units`, values 1..`values`, each missing with `missing` chance. */
function randomMatrix(random: () => number, coders: number, units: number, values: number, missing: number) {
  return Array.from({ length: coders }, () =>
    Array.from({ length: units }, () => (random() < missing ? null : 1 + Math.floor(random() * values))),
  );
}

/**
 * Synthetic crowd answers: true classes drawn from `priors`; each annotator answers an item with
 * probability `coverage`, correctly with their accuracy, otherwise a uniformly random other class.
 */
function crowd(random: () => number, items: number, accuracies: number[], priors: number[], coverage: number) {
  const answers: Answer[] = [];
  const truth = new Map<number, number>();
  for (let i = 0; i < items; i++) {
    let r = random();
    let t = 0;
    while (t < priors.length - 1 && r >= priors[t]!) r -= priors[t++]!;
    truth.set(i, t);
    accuracies.forEach((acc, w) => {
      if (random() >= coverage) return;
      let label = t;
      if (random() >= acc) label = (t + 1 + Math.floor(random() * (priors.length - 1))) % priors.length;
      answers.push({ item: i, annotator: `w${w}`, label });
    });
  }
  return { answers, truth };
}

interface DsReference {
  items: number[];
  classes: number[];
  posteriors: number[][];
  priors: number[];
  iterations: number;
  confusion: Record<string, number[][]>;
}

/** Largest difference between crowd-kit's posteriors and ours, over every item and class. */
function maxPosteriorGap(ref: DsReference, ours: DawidSkeneResult<number>): number {
  let gap = 0;
  const row = new Map(ours.items.map((item, i) => [item, i]));
  ref.items.forEach((item, r) => {
    const i = row.get(item);
    expect(i, `item ${item} in both results`).toBeDefined();
    ref.classes.forEach((c, ci) => {
      gap = Math.max(gap, Math.abs(ref.posteriors[r]![ci]! - ours.posteriors[i!]![ours.classes.indexOf(c)]!));
    });
  });
  return gap;
}

const toRows = (answers: Answer[]) => answers.map((a) => [a.item, a.annotator, a.label]);

describe("Krippendorff's alpha against the krippendorff package", () => {
  const random = mulberry32(20_261_130);
  const cases = Array.from({ length: 40 }, (_, k) => ({
    metric: METRICS[k % 4]!,
    data: randomMatrix(random, 2 + (k % 5), 5 + Math.floor(random() * 60), 2 + Math.floor(random() * 6), 0.25 * random()),
  }));
  let expected: { alpha: number }[];
  beforeAll(async () => {
    expected = await reference<{ alpha: number }>(cases.map((c) => ({ kind: 'alpha', ...c })));
  }, 120_000);

  it.each(cases.map((c, k) => [k, c.metric, c.data.length, c.data[0]!.length] as const))(
    'random matrix %i (%s, %i coders x %i units) gives the same alpha',
    (k, metric) => {
      const ours = krippendorffAlpha(unitsFromCoderRows(cases[k]!.data), metric as Metric).alpha;
      expect(ours).not.toBeNull();
      expect(Math.abs(ours! - expected[k]!.alpha)).toBeLessThan(1e-9);
    },
  );
});

describe("Dawid–Skene against crowd-kit's DawidSkene", () => {
  const random = mulberry32(7);
  const synthetic = crowd(random, 400, [0.92, 0.8, 0.7, 0.6, 0.45], [0.5, 0.3, 0.2], 0.6);
  const binary = crowd(random, 300, [0.95, 0.75, 0.65], [0.7, 0.3], 1);
  const gold = new Map([...synthetic.truth].filter(([item]) => item % 10 === 0));
  const public1979 = dawidSkene1979();
  // Ours run to convergence first: crowd-kit is then run a fixed, slightly larger number of
  // iterations (its own stopping rule ends at the first fall of its evidence bound, see below).
  const convergedSynthetic = dawidSkene(synthetic.answers, { maxIterations: 2000, tolerance: 1e-15 });
  const converged1979 = dawidSkene(public1979, { maxIterations: 2000, tolerance: 1e-15 });
  let ref: DsReference[];
  let mv: { items: number[]; classes: number[]; posteriors: number[][] }[];
  beforeAll(async () => {
    const ds = (answers: Answer[], n_iter: number, tol: number, truth?: Map<number, number>) => ({
      kind: 'dawid_skene',
      answers: toRows(answers),
      n_iter,
      tol,
      ...(truth ? { truth: Object.fromEntries(truth) } : {}),
    });
    const all = await reference<unknown>([
      ds(synthetic.answers, 1, -1e300),
      ds(synthetic.answers, 15, -1e300),
      ds(binary.answers, 30, -1e300),
      ds(synthetic.answers, 20, -1e300, gold),
      ds(public1979, 30, -1e300),
      ds(synthetic.answers, convergedSynthetic.iterations + 5, -1e300),
      ds(public1979, converged1979.iterations + 5, -1e300),
      ds(synthetic.answers, 100, 1e-5),
      ds(public1979, 100, 1e-5),
      { kind: 'majority', answers: toRows(public1979) },
    ]);
    ref = all.slice(0, 9) as DsReference[];
    mv = all.slice(9) as typeof mv;
  }, 300_000);

  const fixed = (answers: Answer[], iterations: number, truth?: Map<number, number>) =>
    dawidSkene(answers, { maxIterations: iterations, tolerance: -Infinity, truth });

  it('posteriors, priors and confusion matrices match after the same number of EM iterations (synthetic, 3 classes)', () => {
    for (const [r, n] of [[0, 1], [1, 15]] as const) {
      const ours = fixed(synthetic.answers, n);
      expect(ours.iterations).toBe(ref[r]!.iterations);
      expect(maxPosteriorGap(ref[r]!, ours)).toBeLessThan(1e-6);
      ref[r]!.classes.forEach((c, ci) => expect(ours.priors[ours.classes.indexOf(c)]).toBeCloseTo(ref[r]!.priors[ci]!, 6));
      for (const [worker, matrix] of Object.entries(ref[r]!.confusion)) {
        const theta = ours.confusion.get(worker)!;
        matrix.forEach((row, c) => row.forEach((p, k) => expect(theta[c]![k]).toBeCloseTo(p, 6)));
      }
    }
  });

  it('posteriors match on binary data and with gold items held at their known class', () => {
    expect(maxPosteriorGap(ref[2]!, fixed(binary.answers, 30))).toBeLessThan(1e-6);
    const withGold = fixed(synthetic.answers, 20, gold);
    expect(maxPosteriorGap(ref[3]!, withGold)).toBeLessThan(1e-6);
    for (const [item, label] of gold) expect(withGold.posteriors[withGold.items.indexOf(item)]![label]).toBe(1);
  });

  it('posteriors match on the public Dawid–Skene (1979) anaesthesia data, repeated ratings included', () => {
    expect(maxPosteriorGap(ref[4]!, fixed(public1979, 30))).toBeLessThan(1e-6);
  });

  it('run to convergence, both reach the same fixed point', () => {
    expect(convergedSynthetic.converged).toBe(true);
    expect(converged1979.converged).toBe(true);
    expect(maxPosteriorGap(ref[5]!, convergedSynthetic)).toBeLessThan(1e-6);
    expect(maxPosteriorGap(ref[6]!, converged1979)).toBeLessThan(1e-6);
  });

  it('each on its own default stopping rule: the same label for every item; posteriors differ by where each stopped', () => {
    for (const [r, answers] of [[7, synthetic.answers], [8, public1979]] as const) {
      const ours = dawidSkene(answers);
      const row = new Map(ours.items.map((item, i) => [item, i]));
      const argmax = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));
      ref[r]!.items.forEach((item, k) => {
        const p = ours.posteriors[row.get(item)!]!;
        expect(ours.classes[argmax(p)], `item ${item}`).toBe(ref[r]!.classes[argmax(ref[r]!.posteriors[k]!)]);
      });
      expect(maxPosteriorGap(ref[r]!, ours)).toBeLessThan(0.05);
    }
    // crowd-kit stops as soon as its evidence lower bound per answer changes by less than 1e-5,
    // a fall included: its bound is computed with priors and confusions from the M-step after the
    // posteriors, so it is not monotone, and on the 1979 data it stops after a handful of
    // iterations where EM is still moving posteriors by ~0.02. Ours stops on the log-likelihood
    // (monotone under EM) rising < 1e-9 per answer. The fixed-point test above shows the maths agree.
    expect(ref[8]!.iterations).toBeLessThan(dawidSkene(public1979).iterations);
  });

  it("starts from crowd-kit's majority vote shares", () => {
    // Zero iterations of ours = the start; compare with MajorityVote.fit_predict_proba.
    const start = dawidSkene(public1979, { maxIterations: 0 });
    const m = mv[0]!;
    const row = new Map(start.items.map((item, i) => [item, i]));
    m.items.forEach((item, k) =>
      m.classes.forEach((c, ci) => expect(start.posteriors[row.get(item)!]![start.classes.indexOf(c)]).toBeCloseTo(m.posteriors[k]![ci]!, 12)),
    );
  });
});
