import { describe, expect, it } from 'vitest';
import { boxIoU, levenshtein, scoreGold, spanIoU, strings, textSimilarity } from '../../src/domain/gold-scoring.ts';

const choice = (...choices: string[]) => ({ from_name: 'label', to_name: 'image', type: 'choices', value: { choices } });
const rect = (x: number, y: number, w: number, h: number, label = 'car', from = 'box') => ({
  from_name: from,
  to_name: 'image',
  type: 'rectanglelabels',
  value: { x, y, width: w, height: h, rotation: 0, rectanglelabels: [label] },
});
const span = (start: number, end: number, label = 'PER') => ({
  from_name: 'ner',
  to_name: 'text',
  type: 'labels',
  value: { start, end, text: 'x', labels: [label] },
});
const textarea = (...text: string[]) => ({ from_name: 'caption', to_name: 'image', type: 'textarea', value: { text } });
const rating = (r: number) => ({ from_name: 'quality', to_name: 'image', type: 'rating', value: { rating: r } });
const number = (n: number) => ({ from_name: 'count', to_name: 'image', type: 'number', value: { number: n } });

describe('gold scoring: choices', () => {
  it('scores a matching single choice 1 and a different one 0', () => {
    expect(scoreGold([choice('cat')], [choice('cat')]).score).toBe(1);
    expect(scoreGold([choice('cat')], [choice('dog')]).score).toBe(0);
  });
  it('scores multiple choices by Jaccard similarity', () => {
    expect(scoreGold([choice('a', 'b')], [choice('b', 'c')]).score).toBeCloseTo(1 / 3, 6);
    expect(scoreGold([choice('a', 'b')], [choice('b', 'a')]).score).toBe(1);
  });
  it('scores a missing control 0 and ignores controls the gold does not name', () => {
    expect(scoreGold([choice('cat')], []).score).toBe(0);
    expect(scoreGold([choice('cat')], [choice('cat'), rating(3)]).score).toBe(1);
    expect(scoreGold([choice('cat')], null).score).toBe(0);
  });
});

describe('gold scoring: values no Label Studio form makes (an annotator can post any result through the API)', () => {
  const weird = (v: unknown) => ({ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: v } });
  it('reads any JSON value as text without calling into it', () => {
    expect(strings([{ toString: 0 }])).toEqual(['{"toString":0}']);
    expect(strings([{ valueOf: 'x', toString: null }])).toEqual(['{"toString":null,"valueOf":"x"}']);
    expect(strings([['a', { b: 1 }], null, 3, true])).toEqual(['a / {"b":1}', 'null', '3', 'true']);
    expect(strings({ toString: 0 })).toEqual(['{"toString":0}']);
    expect(strings('cat')).toEqual(['cat']);
  });
  it('scores them as the labels they are: 0 against a real label, 1 against the same value', () => {
    expect(scoreGold([choice('cat')], [weird([{ toString: 0 }])]).score).toBe(0);
    expect(scoreGold([weird([{ toString: 0 }])], [weird([{ toString: 0 }])]).score).toBe(1);
    // Two different objects are two different labels (not both "[object Object]").
    expect(scoreGold([weird([{ a: 1 }])], [weird([{ a: 2 }])]).score).toBe(0);
  });
});

describe('gold scoring: rectangles', () => {
  it('computes IoU of boxes', () => {
    expect(boxIoU({ x: 0, y: 0, width: 10, height: 10 }, { x: 0, y: 0, width: 10, height: 10 })).toBe(1);
    expect(boxIoU({ x: 0, y: 0, width: 10, height: 10 }, { x: 5, y: 0, width: 10, height: 10 })).toBeCloseTo(50 / 150, 9);
    expect(boxIoU({ x: 0, y: 0, width: 10, height: 10 }, { x: 20, y: 20, width: 5, height: 5 })).toBe(0);
  });
  it('scores by IoU, requiring the same label', () => {
    expect(scoreGold([rect(10, 10, 20, 20)], [rect(10, 10, 20, 20)]).score).toBe(1);
    expect(scoreGold([rect(0, 0, 10, 10)], [rect(5, 0, 10, 10)]).score).toBeCloseTo(1 / 3, 6);
    expect(scoreGold([rect(10, 10, 20, 20, 'car')], [rect(10, 10, 20, 20, 'person')]).score).toBe(0);
  });
  it('pairs boxes one-to-one and charges missing and extra boxes', () => {
    const gold = [rect(0, 0, 10, 10), rect(50, 50, 10, 10)];
    expect(scoreGold(gold, [rect(50, 50, 10, 10), rect(0, 0, 10, 10)]).score).toBe(1);
    expect(scoreGold(gold, [rect(0, 0, 10, 10)]).score).toBe(0.5);
    expect(scoreGold([rect(0, 0, 10, 10)], [rect(0, 0, 10, 10), rect(0, 0, 10, 10)]).score).toBe(0.5);
  });
});

describe('gold scoring: text spans', () => {
  it('overlaps character ranges with label match', () => {
    expect(spanIoU({ start: 0, end: 10 }, { start: 5, end: 10 })).toBe(0.5);
    expect(scoreGold([span(0, 5)], [span(0, 5)]).score).toBe(1);
    expect(scoreGold([span(0, 10)], [span(5, 10)]).score).toBe(0.5);
    expect(scoreGold([span(0, 5, 'PER')], [span(0, 5, 'ORG')]).score).toBe(0);
  });
});

describe('gold scoring: text areas', () => {
  it('normalises whitespace and case, then scores by edit distance', () => {
    expect(levenshtein('kitten', 'sitting')).toBe(3);
    expect(scoreGold([textarea('A red  car')], [textarea(' a red car ')]).score).toBe(1);
    expect(textSimilarity('abcd', 'abce')).toBe(0.75);
    expect(scoreGold([textarea('abcd')], [textarea('abce')]).score).toBe(0.75);
    expect(scoreGold([textarea('abcd')], [textarea('')]).score).toBe(0);
  });
});

describe('gold scoring: ratings and numbers', () => {
  it('scores ratings by distance on the scale (default 5 stars)', () => {
    expect(scoreGold([rating(4)], [rating(4)]).score).toBe(1);
    expect(scoreGold([rating(4)], [rating(3)]).score).toBe(0.75);
    expect(scoreGold([rating(5)], [rating(1)]).score).toBe(0);
    expect(scoreGold([rating(10)], [rating(9)], { ratingScale: { quality: 10 } }).score).toBeCloseTo(1 - 1 / 9, 6);
  });
  it('scores numbers by relative error', () => {
    expect(scoreGold([number(10)], [number(10)]).score).toBe(1);
    expect(scoreGold([number(10)], [number(9)]).score).toBe(0.9);
    expect(scoreGold([number(0)], [number(0.5)]).score).toBe(0.5);
    expect(scoreGold([number(10)], [number(100)]).score).toBe(0);
  });
});

describe('gold scoring: several controls', () => {
  it('averages per control, whatever the number of regions', () => {
    const gold = [choice('cat'), rect(0, 0, 10, 10), rect(50, 50, 10, 10)];
    const result = scoreGold(gold, [choice('cat'), rect(0, 0, 10, 10)]);
    expect(result.score).toBe(0.75);
    expect(result.controls).toEqual([
      { fromName: 'label', type: 'choices', score: 1, expected: 1, annotated: 1 },
      { fromName: 'box', type: 'rectanglelabels', score: 0.5, expected: 2, annotated: 1 },
    ]);
  });
  it('compares unknown control types by value', () => {
    const kp = { from_name: 'kp', to_name: 'image', type: 'keypointlabels', value: { x: 1, y: 2, keypointlabels: ['eye'] } };
    expect(scoreGold([kp], [{ ...kp, value: { keypointlabels: ['eye'], y: 2, x: 1 } }]).score).toBe(1);
    expect(scoreGold([kp], [{ ...kp, value: { x: 1, y: 3, keypointlabels: ['eye'] } }]).score).toBe(0);
  });
  it('stays within 0..1 for odd input', () => {
    expect(scoreGold([], [choice('x')]).score).toBe(0);
    expect(scoreGold([number(1)], [number(Number.NaN)]).score).toBe(0);
    expect(scoreGold([rating(1)], [rating(5)], { ratingScale: { quality: 3 } }).score).toBe(0);
  });
});
