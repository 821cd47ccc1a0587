import { describe, expect, it } from 'vitest';
import { controlsFromConfig, controlsFromResults, type ControlSpec } from '../../src/domain/agreement/controls.ts';
import { median, mergeMedoid, mergeNumbers, mergeRegions } from '../../src/domain/agreement/merge.ts';
import { analyzeAgreement, NO_LABEL } from '../../src/domain/agreement/workflow.ts';
import { checkLabelingConfig } from '../../src/domain/labeling-config.ts';

const BOXES: ControlSpec = { fromName: 'box', toName: 'image', type: 'rectanglelabels', kind: 'boxes' };
const SPANS: ControlSpec = { fromName: 'ner', toName: 'text', type: 'labels', kind: 'spans' };
const RATING: ControlSpec = { fromName: 'quality', toName: 'image', type: 'rating', kind: 'rating', maxRating: 5 };

const box = (x: number, y: number, label = 'Car', size = 20) => ({ x, y, width: size, height: size, rectanglelabels: [label] });

describe('controls', () => {
  it('reads kinds, toName and maxRating from a labeling config', () => {
    const check = checkLabelingConfig(`<View>
      <Image name="image" value="$image"/>
      <Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/></Choices>
      <Choices name="tags" toName="image" choice="multiple"><Choice value="a"/></Choices>
      <RectangleLabels name="box" toName="image"><Label value="Car"/></RectangleLabels>
      <Rating name="quality" toName="image" maxRating="10"/>
      <TextArea name="note" toName="image"/>
    </View>`);
    expect(check.ok).toBe(true);
    const specs = controlsFromConfig((check as { ok: true; config: Parameters<typeof controlsFromConfig>[0] }).config);
    expect(specs.map((s) => [s.fromName, s.kind, s.toName])).toEqual([
      ['label', 'single-choice', 'image'],
      ['tags', 'multi-choice', 'image'],
      ['box', 'boxes', 'image'],
      ['quality', 'rating', 'image'],
      ['note', 'text', 'image'],
    ]);
    expect(specs.find((s) => s.fromName === 'quality')!.maxRating).toBe(10);
  });

  it('infers controls from results: several choices in one answer make it multi-choice', () => {
    const specs = controlsFromResults([
      [{ from_name: 'c', to_name: 'i', type: 'choices', value: { choices: ['a'] } }],
      [{ from_name: 'c', to_name: 'i', type: 'choices', value: { choices: ['a', 'b'] } }],
    ]);
    expect(specs).toEqual([{ fromName: 'c', toName: 'i', type: 'choices', kind: 'multi-choice' }]);
  });
});

describe('per-item merges', () => {
  it('median: the middle value; even counts average, or take the lower one for ratings', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([4, 1, 3, 2], true)).toBe(2);
  });

  it('ratings: the lower median of the given ratings, confidence = mean closeness to it', () => {
    const m = mergeNumbers(RATING, [[{ rating: 4 }], [{ rating: 5 }], [{ rating: 2 }], [{ rating: 4 }]]);
    expect(m.values).toEqual([{ rating: 4 }]);
    // Closeness 1 - |r - 4| / 4: 1, 0.75, 0.5, 1.
    expect(m.confidence).toBeCloseTo((1 + 0.75 + 0.5 + 1) / 4, 12);
    expect(mergeNumbers(RATING, [[{ rating: 4 }], [], []]).values).toEqual([]); // most said nothing
  });

  it('boxes: a cluster drawn by a majority is kept with mean coordinates; a lone box is dropped', () => {
    const m = mergeRegions(BOXES, [[box(10, 10), box(70, 70)], [box(12, 10)], [box(14, 10)]]);
    expect(m.values).toEqual([box(12, 10)]);
    // Similarity to the merged box per answer: answer 1 also has an extra box, halving its score.
    expect(m.confidence).toBeGreaterThan(0.6);
    expect(m.confidence).toBeLessThan(0.9);
  });

  it('boxes: different labels or IoU below 0.5 never join; one box per annotator per cluster', () => {
    expect(mergeRegions(BOXES, [[box(10, 10, 'Car')], [box(10, 10, 'Bus')], [box(10, 10, 'Van')]]).values).toEqual([]);
    // x 10 vs 25 with width 20: IoU = 5*20 / (800 - 100) = 1/7.
    expect(mergeRegions(BOXES, [[box(10, 10)], [box(25, 10)]]).values).toEqual([]);
    const two = mergeRegions(BOXES, [[box(10, 10), box(11, 10)], [box(10, 10)]]);
    expect(two.values).toEqual([box(10, 10)]); // the second box of annotator 1 stays out of the cluster
  });

  it('boxes: with an even number of answers a cluster needs more than half', () => {
    expect(mergeRegions(BOXES, [[box(10, 10)], [box(10, 10)], [], []]).values).toEqual([]);
    expect(mergeRegions(BOXES, [[box(10, 10)], [box(10, 10)], [box(10, 10)], []]).values).toEqual([box(10, 10)]);
  });

  it('spans: mean offsets rounded, text cut from the object text when given', () => {
    const text = 'Barack Obama was born in Hawaii.';
    const span = (start: number, end: number) => ({ start, end, text: text.slice(start, end), labels: ['PER'] });
    const m = mergeRegions(SPANS, [[span(0, 12)], [span(0, 12)], [span(3, 12)]], { text });
    expect(m.values).toEqual([{ start: 1, end: 12, text: 'arack Obama', labels: ['PER'] }]);
    // 7..12 overlaps 0..12 with IoU 5/12 < 0.5: it does not join, and 0..12 stays as drawn.
    const same = mergeRegions(SPANS, [[span(0, 12)], [span(0, 12)], [span(7, 12)]]);
    expect(same.values).toEqual([span(0, 12)]);
  });

  it('text: the medoid answer', () => {
    const TEXT: ControlSpec = { fromName: 'note', type: 'textarea', kind: 'text' };
    const m = mergeMedoid(TEXT, [[{ text: ['a red car'] }], [{ text: ['A red  car'] }], [{ text: ['blue bus'] }]]);
    expect(m.values).toEqual([{ text: ['a red car'] }]);
  });
});

const choice = (label: string) => ({ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [label] } });
const tags = (...labels: string[]) => ({ from_name: 'tags', to_name: 'image', type: 'choices', value: { choices: labels } });
const LABEL: ControlSpec = { fromName: 'label', toName: 'image', type: 'choices', kind: 'single-choice' };
const TAGS: ControlSpec = { fromName: 'tags', toName: 'image', type: 'choices', kind: 'multi-choice' };

describe('analyzeAgreement', () => {
  it('single choice: item agreement, majority consensus, skip = "no label"', () => {
    const a = analyzeAgreement(
      [
        { item: 'x', annotations: [{ annotator: 1, result: [choice('cat')] }, { annotator: 2, result: [choice('cat')] }, { annotator: 3, result: [choice('dog')] }] },
        { item: 'y', annotations: [{ annotator: 1, result: [choice('dog')] }, { annotator: 2, result: [choice('dog')], skipped: true }, { annotator: 3, result: [choice('dog')] }] },
        { item: 'z', annotations: [{ annotator: 1, result: [choice('cat')] }] },
      ],
      [LABEL],
    );
    const [x, y, z] = a.items;
    expect(x!.agreement).toBeCloseTo(1 / 3, 12); // 1 of 3 pairs agree
    expect(x!.result).toEqual([choice('cat')]);
    expect(x!.confidence).toBeCloseTo(2 / 3, 12);
    expect(y!.agreement).toBeCloseTo(1 / 3, 12); // the skip disagrees with both
    expect(y!.result).toEqual([choice('dog')]);
    expect(z!.agreement).toBeNull();
    expect(a.itemsScored).toBe(2);
    const report = a.controls[0]!;
    expect(report.method).toBe('majority');
    expect(report.alpha.metric).toBe('nominal');
    expect(report.coincidences!.find((r) => r.label === NO_LABEL)!.with).toEqual({ dog: 1 });
    expect(report.pairs.find((p) => p.a === 1 && p.b === 2)).toMatchObject({ items: 2, agreement: 0.5 });
    expect(a.annotators.map((x) => [x.annotator, x.items, x.agreementWithConsensus])).toEqual([
      [1, 2, 1],
      [2, 2, 0.5],
      [3, 2, 0.5],
    ]);
  });

  it('multi-choice: each label a binary variable; a label kept when most chose it', () => {
    const a = analyzeAgreement(
      [
        { item: 1, annotations: [{ annotator: 'a', result: [tags('red', 'big')] }, { annotator: 'b', result: [tags('red')] }, { annotator: 'c', result: [tags('red', 'big')] }] },
        { item: 2, annotations: [{ annotator: 'a', result: [tags('blue')] }, { annotator: 'b', result: [tags('red')] }, { annotator: 'c', result: [tags('blue')] }] },
      ],
      [TAGS],
    );
    expect(a.items[0]!.result).toEqual([tags('big', 'red')]); // labels in sorted order
    expect(a.items[0]!.confidence).toBeCloseTo(2 / 3, 12); // the least certain label: big, 2 of 3
    expect(a.items[1]!.result).toEqual([tags('blue')]);
    const labels = a.controls[0]!.labels!;
    expect(labels.map((l) => [l.label, l.chosen])).toEqual([
      ['big', 2],
      ['blue', 2],
      ['red', 4],
    ]);
  });

  it('boxes: an optional control nobody used on an item stays out of its alpha and pairs', () => {
    const b = (x: number) => ({ from_name: 'box', to_name: 'image', type: 'rectanglelabels', value: box(x, 10) });
    const a = analyzeAgreement(
      [
        { item: 1, annotations: [{ annotator: 'a', result: [b(10)] }, { annotator: 'b', result: [b(11)] }] },
        { item: 2, annotations: [{ annotator: 'a', result: [] }, { annotator: 'b', result: [] }] },
      ],
      [BOXES],
    );
    expect(a.items[1]!.agreement).toBe(1); // both drew nothing: nothing to disagree on
    expect(a.controls[0]!.alpha.pairableUnits).toBe(1);
    expect(a.controls[0]!.pairs[0]!.items).toBe(1);
    expect(a.items[0]!.result[0]!.value).toEqual(box(10.5, 10));
  });

  it('ratings: interval alpha over the ratings given', () => {
    const r = (v: number) => ({ from_name: 'quality', to_name: 'image', type: 'rating', value: { rating: v } });
    const a = analyzeAgreement(
      [1, 2, 3, 4].map((v) => ({ item: v, annotations: [{ annotator: 'a', result: [r(v)] }, { annotator: 'b', result: [r(v)] }] })),
      [RATING],
    );
    expect(a.controls[0]!.alpha).toMatchObject({ value: 1, metric: 'interval', pairableUnits: 4 });
    expect(a.meanAgreement).toBe(1);
  });
});
