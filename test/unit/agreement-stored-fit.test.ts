/**
 * The per-item consensus on a stored Dawid–Skene fit (issue 13): one E-step,
 * P(c | answers) ∝ π_c Π_j θ_j[c][answer_j], checked against posteriors computed by hand, and
 * against the fit's own posteriors for the items it was fitted on.
 */
import { describe, expect, it } from 'vitest';
import { choiceConsensus, choiceOnFit, fitChoices } from '../../src/domain/agreement/consensus.ts';
import { controlsFromResults } from '../../src/domain/agreement/controls.ts';
import { dawidSkene, posteriorOnFit, POOLED, type Answer, type StoredFit } from '../../src/domain/agreement/dawid-skene.ts';
import { mulberry32 } from '../../src/domain/agreement/krippendorff.ts';
import { itemContribution } from '../../src/domain/agreement/rollup.ts';

/** Annotator 1 reliable (0.9), annotators 2 and 3 near chance (0.6). */
const FIT: StoredFit = {
  classes: ['cat', 'dog'],
  priors: [0.5, 0.5],
  confusion: {
    '1': [[0.9, 0.1], [0.1, 0.9]],
    '2': [[0.6, 0.4], [0.4, 0.6]],
    '3': [[0.6, 0.4], [0.4, 0.6]],
  },
};

describe('posteriorOnFit (one E-step)', () => {
  it('matches hand-computed posteriors', () => {
    // cat: 0.5·0.9·0.4·0.4 = 0.072; dog: 0.5·0.1·0.6·0.6 = 0.018 → P(cat) = 0.8.
    const p = posteriorOnFit(FIT, [
      { annotator: 1, label: 'cat' },
      { annotator: 2, label: 'dog' },
      { annotator: 3, label: 'dog' },
    ])!;
    expect(p[0]).toBeCloseTo(0.8, 12);
    expect(p[1]).toBeCloseTo(0.2, 12);
    // Priors count: π = (0.8, 0.2), one "dog" from annotator 2: cat 0.8·0.4 = 0.32, dog 0.2·0.6 = 0.12.
    const q = posteriorOnFit({ ...FIT, priors: [0.8, 0.2] }, [{ annotator: 2, label: 'dog' }])!;
    expect(q[0]).toBeCloseTo(0.32 / 0.44, 12);
    // Three classes, asymmetric matrix: cat 0.2·0.7·0.1 = 0.014, dog 0.5·0.2·0.6 = 0.06, bird 0.3·0.1·0.3 = 0.009.
    const three: StoredFit = {
      classes: ['cat', 'dog', 'bird'],
      priors: [0.2, 0.5, 0.3],
      confusion: { '7': [[0.7, 0.1, 0.2], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]] },
    };
    const r = posteriorOnFit(three, [
      { annotator: 7, label: 'cat' },
      { annotator: 7, label: 'dog' },
    ])!;
    const z = 0.2 * 0.7 * 0.1 + 0.5 * 0.2 * 0.6 + 0.3 * 0.1 * 0.3;
    expect([...r].map((x) => x * z)).toEqual([expect.closeTo(0.014, 12), expect.closeTo(0.06, 12), expect.closeTo(0.009, 12)]);
  });

  it('uses the pooled matrix, else the mean matrix, for an annotator without one', () => {
    const pooled = { ...FIT, confusion: { ...FIT.confusion, [POOLED]: [[0.7, 0.3], [0.2, 0.8]] } };
    // cat 0.3, dog 0.8 → P(dog) = 8/11.
    expect(posteriorOnFit(pooled, [{ annotator: 99, label: 'dog' }])![1]).toBeCloseTo(8 / 11, 12);
    // Mean of the three matrices: [[0.7, 0.3], [0.3, 0.7]] → P(cat | cat) = 0.7.
    expect(posteriorOnFit(FIT, [{ annotator: 99, label: 'cat' }])![0]).toBeCloseTo(0.7, 12);
  });

  it('floors a rate of 0 (an answer never given) instead of ruling a class out', () => {
    const sure: StoredFit = { classes: ['cat', 'dog'], priors: [0.5, 0.5], confusion: { '1': [[1, 0], [0, 1]], '2': [[1, 0], [0, 1]] } };
    const p = posteriorOnFit(sure, [
      { annotator: 1, label: 'cat' },
      { annotator: 2, label: 'dog' },
    ])!;
    expect(p[0]).toBeCloseTo(0.5, 12);
    expect(p.every(Number.isFinite)).toBe(true);
  });

  it('cannot decide on a label the fit does not know, or on no answers', () => {
    expect(posteriorOnFit(FIT, [{ annotator: 1, label: 'bird' }])).toBeNull();
    expect(posteriorOnFit(FIT, [])).toBeNull();
  });
});

describe('choiceOnFit', () => {
  it('lets a reliable annotator outvote two unreliable ones', () => {
    const d = choiceOnFit(FIT, [
      { annotator: 1, label: 'cat' },
      { annotator: 2, label: 'dog' },
      { annotator: 3, label: 'dog' },
    ]);
    expect(d).toEqual({ label: 'cat', confidence: expect.closeTo(0.8, 12) });
    // The plain majority on the same answers says dog.
    const m = choiceConsensus([
      { item: 1, annotator: 1, label: 'cat' },
      { item: 1, annotator: 2, label: 'dog' },
      { item: 1, annotator: 3, label: 'dog' },
    ]);
    expect(m.items.get(1)).toEqual({ label: 'dog', confidence: 2 / 3 });
  });

  it('treats "no label" as an abstention, as choiceConsensus does', () => {
    // Strict majority abstains: "no label", confidence their share.
    expect(choiceOnFit(FIT, [{ annotator: 1, label: 'cat' }, { annotator: 2, label: '' }, { annotator: 3, label: '' }], '')).toEqual({ label: '', confidence: 2 / 3 });
    // Otherwise the labels given decide: cat 0.5·0.9·0.4 = 0.18, dog 0.5·0.1·0.6 = 0.03 → 6/7.
    expect(choiceOnFit(FIT, [{ annotator: 1, label: 'cat' }, { annotator: 2, label: 'dog' }, { annotator: 3, label: '' }], '')).toEqual({
      label: 'cat',
      confidence: expect.closeTo(6 / 7, 12),
    });
  });

  it('breaks an exact tie to the first class of the fit', () => {
    expect(choiceOnFit(FIT, [{ annotator: 2, label: 'dog' }, { annotator: 3, label: 'cat' }])).toEqual({ label: 'cat', confidence: expect.closeTo(0.5, 12) });
  });
});

describe('fitChoices', () => {
  /** 300 items × 3 of 5 annotators; annotator 5 answers at random. */
  function synthetic(): Answer<string>[] {
    const rnd = mulberry32(13);
    const labels = ['a', 'b', 'c'];
    const out: Answer<string>[] = [];
    for (let item = 0; item < 300; item++) {
      const truth = labels[Math.floor(rnd() * 3)]!;
      for (const annotator of [1, 2, 3, 4, 5].sort(() => rnd() - 0.5).slice(0, 3)) {
        const right = annotator === 5 ? rnd() < 1 / 3 : rnd() < 0.85;
        out.push({ item, annotator, label: right ? truth : labels[Math.floor(rnd() * 3)]! });
      }
    }
    return out;
  }

  it('stores a fit whose E-step gives back the fit’s own posteriors on the fitted items', () => {
    const answers = synthetic();
    const stored = fitChoices(answers)!;
    expect(stored).not.toBeNull();
    const full = dawidSkene(answers, { classes: stored.fit.classes, pooled: new Set() });
    expect(Object.keys(stored.fit.confusion).sort()).toEqual(['1', '2', '3', '4', '5']);
    full.items.forEach((item, i) => {
      const p = posteriorOnFit(stored.fit, answers.filter((a) => a.item === item))!;
      [...p].forEach((x, c) => expect(x).toBeCloseTo(full.posteriors[i]![c]!, 5));
    });
  });

  it('is null below the threshold (10 × K items with two or more answers)', () => {
    expect(fitChoices(synthetic().filter((a) => Number(a.item) < 29))).toBeNull(); // 29 < 10 × 3
  });
});

describe('itemContribution with a stored fit', () => {
  it('merges choices on the fit and says dawid-skene; without a fit, majority', () => {
    const result = (label: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [label] } }];
    const item = { item: 1, annotations: [{ annotator: 1, result: result('cat') }, { annotator: 2, result: result('dog') }, { annotator: 3, result: result('dog') }] };
    const specs = controlsFromResults(item.annotations.map((a) => a.result));
    const onFit = itemContribution(item, specs, { choiceFits: new Map([['label', FIT]]) });
    expect(onFit.method).toBe('dawid-skene');
    expect(onFit.outcome.result).toEqual([{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }]);
    expect(onFit.outcome.confidence).toBeCloseTo(0.8, 12);
    const plain = itemContribution(item, specs);
    expect(plain.method).toBe('majority');
    expect(plain.outcome.result[0]!.value).toEqual({ choices: ['dog'] });
  });
});
