import { describe, expect, it } from 'vitest';
import { choiceConsensus } from '../../src/domain/agreement/consensus.ts';
import { dawidSkene, dawidSkenePlan, POOLED } from '../../src/domain/agreement/dawid-skene.ts';
import { cohenKappa, pairwiseKappa } from '../../src/domain/agreement/kappa.ts';
import { mulberry32 } from '../../src/domain/agreement/krippendorff.ts';
import { answers as dawidSkene1979 } from '../fixtures/dawid-skene-1979.ts';

describe("Cohen's kappa", () => {
  it('the textbook 2 x 2 example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no gives 0.4', () => {
    const pairs: [string, string][] = [
      ...Array(20).fill(['yes', 'yes']),
      ...Array(5).fill(['yes', 'no']),
      ...Array(10).fill(['no', 'yes']),
      ...Array(15).fill(['no', 'no']),
    ];
    const r = cohenKappa(pairs);
    expect(r.observedAgreement).toBeCloseTo(0.7, 12);
    expect(r.expectedAgreement).toBeCloseTo(0.5, 12);
    expect(r.kappa).toBeCloseTo(0.4, 12);
    expect(r.items).toBe(50);
  });

  it('is null when both gave one and the same category throughout, and negative below chance', () => {
    expect(cohenKappa([['a', 'a'], ['a', 'a']]).kappa).toBeNull();
    expect(cohenKappa([['a', 'b'], ['b', 'a']]).kappa).toBeCloseTo(-1, 12);
  });

  it('pairs annotators only on the items they shared', () => {
    const pairs = pairwiseKappa([
      { item: 1, annotator: 'x', label: 'a' },
      { item: 1, annotator: 'y', label: 'a' },
      { item: 2, annotator: 'x', label: 'b' },
      { item: 2, annotator: 'y', label: 'b' },
      { item: 2, annotator: 'z', label: 'a' },
      { item: 3, annotator: 'z', label: 'b' },
    ]);
    expect(pairs.map((p) => [p.a, p.b, p.items])).toEqual([
      ['x', 'y', 2],
      ['x', 'z', 1],
      ['y', 'z', 1],
    ]);
    expect(pairs[0]!.kappa).toBe(1);
  });
});

/** Binary data; w3 nearly always answers the opposite of the truth. */
function adversarialCrowd(items: number) {
  const random = mulberry32(3);
  const answers: { item: number; annotator: string; label: string }[] = [];
  const truth: string[] = [];
  for (let i = 0; i < items; i++) {
    const t = random() < 0.5 ? 'yes' : 'no';
    truth.push(t);
    const flip = (l: string) => (l === 'yes' ? 'no' : 'yes');
    for (const [w, acc] of [['w0', 0.8], ['w1', 0.7], ['w2', 0.65], ['w3', 0.03]] as const) {
      answers.push({ item: i, annotator: w, label: random() < acc ? t : flip(t) });
    }
  }
  return { answers, truth };
}

describe('Dawid–Skene', () => {
  it('learns that an annotator who always says the opposite is informative, and beats the majority', () => {
    const { answers, truth } = adversarialCrowd(300);
    const fit = dawidSkene(answers);
    const labelOf = (i: number) => fit.classes[fit.posteriors[fit.items.indexOf(i)]![0]! > 0.5 ? 0 : 1];
    const dsCorrect = truth.filter((t, i) => labelOf(i) === t).length;
    // The majority is blind to w3 being inverted: ties and 2-2 splits cost it dearly.
    const majorityCorrect = truth.filter((t, i) => {
      const votes = answers.filter((a) => a.item === i && a.label === 'yes').length;
      return (votes > 2 ? 'yes' : votes < 2 ? 'no' : null) === t;
    }).length;
    expect(dsCorrect).toBeGreaterThan(0.95 * truth.length);
    expect(majorityCorrect).toBeLessThan(0.7 * truth.length);
    // w3's confusion matrix says "answers no when yes".
    const w3 = fit.confusion.get('w3')!;
    expect(w3[fit.classes.indexOf('yes')]![fit.classes.indexOf('no')]).toBeGreaterThan(0.9);
  });

  it('posteriors are probabilities and the log-likelihood never falls', () => {
    const a = dawidSkene1979();
    let last = -Infinity;
    for (let n = 1; n <= 20; n++) {
      const fit = dawidSkene(a, { maxIterations: n, tolerance: -Infinity });
      expect(fit.logLikelihood).toBeGreaterThanOrEqual(last - 1e-9);
      last = fit.logLikelihood;
      for (const p of fit.posteriors) expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
    }
  });

  it('the 1979 data: converges, and every patient all five observers agreed on keeps that rating', () => {
    const a = dawidSkene1979();
    const fit = dawidSkene(a);
    expect(fit.converged).toBe(true);
    for (const item of new Set(a.map((x) => x.item))) {
      const labels = new Set(a.filter((x) => x.item === item).map((x) => x.label));
      if (labels.size !== 1) continue;
      const p = fit.posteriors[fit.items.indexOf(item)]!;
      expect(fit.classes[p.indexOf(Math.max(...p))]).toBe([...labels][0]);
    }
  });

  it('gold accuracy is the starting point: one E-step under the one-coin model', () => {
    const answers = [
      { item: 'i', annotator: 'good', label: 'a' },
      { item: 'i', annotator: 'bad', label: 'b' },
    ];
    const start = dawidSkene(answers, { maxIterations: 0, initialAccuracy: new Map([['good', 0.9], ['bad', 0.6]]) });
    // P(a) ∝ 0.9 * 0.4, P(b) ∝ 0.1 * 0.6 (two classes: the wrong answer has all of 1 - accuracy).
    expect(start.posteriors[0]![0]).toBeCloseTo(0.36 / (0.36 + 0.06), 12);
    const majority = dawidSkene(answers, { maxIterations: 0 });
    expect(majority.posteriors[0]![0]).toBe(0.5);
  });

  it('pooled annotators share one confusion matrix; unknown labels are refused', () => {
    const answers = [
      { item: 1, annotator: 'p', label: 'x' },
      { item: 1, annotator: 'q', label: 'x' },
      { item: 2, annotator: 'p', label: 'y' },
      { item: 2, annotator: 'r', label: 'y' },
    ];
    const fit = dawidSkene(answers, { pooled: new Set(['q', 'r']) });
    expect([...fit.confusion.keys()]).toEqual(['p', POOLED]);
    expect(() => dawidSkene(answers, { classes: ['x'] })).toThrow(RangeError);
    expect(() => dawidSkene([])).toThrow(RangeError);
  });

  it('plan: EM from 10 shared items per class; own matrices from 10 answers per class', () => {
    const shared = (items: number, annotators: string[]) =>
      Array.from({ length: items }, (_, i) => annotators.map((annotator) => ({ item: i, annotator, label: 'x' }))).flat();
    expect(dawidSkenePlan(shared(19, ['a', 'b']), 2).useDawidSkene).toBe(false);
    const plan = dawidSkenePlan([...shared(20, ['a', 'b']), { item: 0, annotator: 'c', label: 'x' }], 2);
    expect(plan.useDawidSkene).toBe(true);
    expect([...plan.pooled]).toEqual(['c']);
    expect(dawidSkenePlan(shared(29, ['a', 'b']), 3).useDawidSkene).toBe(false);
  });
});

describe('choiceConsensus', () => {
  it('below the threshold: majority with the vote share as confidence; ties by gold accuracy, then label', () => {
    const c = choiceConsensus(
      [
        { item: 1, annotator: 'a', label: 'cat' },
        { item: 1, annotator: 'b', label: 'cat' },
        { item: 1, annotator: 'c', label: 'dog' },
        { item: 2, annotator: 'a', label: 'dog' },
        { item: 2, annotator: 'b', label: 'cat' },
        { item: 3, annotator: 'a', label: 'dog' },
        { item: 3, annotator: 'b', label: 'cat' },
      ],
      { goldAccuracy: new Map([['a', 0.9], ['b', 0.7]]) },
    );
    expect(c.method).toBe('majority');
    expect(c.items.get(1)).toEqual({ label: 'cat', confidence: 2 / 3 });
    expect(c.items.get(2)).toEqual({ label: 'dog', confidence: 0.5 }); // a's gold accuracy is higher
    const plain = choiceConsensus([
      { item: 1, annotator: 'a', label: 'dog' },
      { item: 1, annotator: 'b', label: 'cat' },
    ]);
    expect(plain.items.get(1)!.label).toBe('cat');
  });

  it('"no label" wins only with a strict majority of abstentions; otherwise the labels given decide', () => {
    const c = choiceConsensus(
      [
        { item: 1, annotator: 'a', label: '' },
        { item: 1, annotator: 'b', label: '' },
        { item: 1, annotator: 'c', label: 'cat' },
        { item: 2, annotator: 'a', label: '' },
        { item: 2, annotator: 'b', label: 'dog' },
        { item: 3, annotator: 'a', label: '' },
      ],
      { noLabel: '' },
    );
    expect(c.items.get(1)).toEqual({ label: '', confidence: 2 / 3 });
    expect(c.items.get(2)).toEqual({ label: 'dog', confidence: 0.5 });
    expect(c.items.get(3)).toEqual({ label: '', confidence: 1 });
  });

  it('Dawid–Skene converges with random skips among the answers (abstentions are not a class)', () => {
    const { answers } = adversarialCrowd(200);
    const random = mulberry32(5);
    const skipped = answers.map((a) => (random() < 0.02 ? { ...a, label: '' } : a));
    const c = choiceConsensus(skipped, { noLabel: '' });
    expect(c.method).toBe('dawid-skene');
    expect([...c.items.values()].filter((d) => d.label === '').length).toBe(0);
  });

  it('with enough overlap: Dawid–Skene, the posterior as confidence, and a reliability per annotator', () => {
    const { answers, truth } = adversarialCrowd(100);
    const c = choiceConsensus(answers);
    expect(c.method).toBe('dawid-skene');
    const right = truth.filter((t, i) => c.items.get(i)!.label === t).length;
    expect(right).toBeGreaterThan(85);
    expect(c.reliability!.get('w0')!).toBeGreaterThan(0.75);
    expect(c.reliability!.get('w3')!).toBeLessThan(0.2);
  });
});
