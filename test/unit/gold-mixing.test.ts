import { describe, expect, it } from 'vitest';
import { goldCountFor, mixGold, pickGold, placeGold, seededRandom, shuffle } from '../../src/domain/gold-mixing.ts';

describe('gold mixing: counts', () => {
  it('makes gold the given share of the whole batch, rounded up', () => {
    expect(mixGold({ batchSize: 100, rate: 0.1, realAvailable: 1000, goldAvailable: 50 })).toEqual({ real: 90, gold: 10 });
    expect(mixGold({ batchSize: 101, rate: 0.1, realAvailable: 1000, goldAvailable: 50 })).toEqual({ real: 90, gold: 11 });
    expect(mixGold({ batchSize: 5, rate: 0.1, realAvailable: 1000, goldAvailable: 50 })).toEqual({ real: 4, gold: 1 });
    // Floating point: 0.07 × 100 is 7.000000000000001, still 7.
    expect(goldCountFor(100, 0.07, 50)).toBe(7);
  });
  it('gives no gold at rate 0 or without gold tasks', () => {
    expect(mixGold({ batchSize: 10, rate: 0, realAvailable: 100, goldAvailable: 5 })).toEqual({ real: 10, gold: 0 });
    expect(mixGold({ batchSize: 10, rate: 0.5, realAvailable: 100, goldAvailable: 0 })).toEqual({ real: 10, gold: 0 });
  });
  it('caps gold at the gold tasks available and keeps one real image', () => {
    expect(mixGold({ batchSize: 100, rate: 0.5, realAvailable: 1000, goldAvailable: 3 })).toEqual({ real: 97, gold: 3 });
    expect(mixGold({ batchSize: 4, rate: 1, realAvailable: 1000, goldAvailable: 10 })).toEqual({ real: 1, gold: 3 });
    expect(mixGold({ batchSize: 1, rate: 0.5, realAvailable: 10, goldAvailable: 10 })).toEqual({ real: 1, gold: 0 });
  });
  it('shrinks the batch when few real images are left and recomputes gold for it', () => {
    expect(mixGold({ batchSize: 100, rate: 0.1, realAvailable: 5, goldAvailable: 50 })).toEqual({ real: 5, gold: 1 });
    // The largest batch that fits: 11 tasks, ceil(5.5) = 6 gold.
    expect(mixGold({ batchSize: 100, rate: 0.5, realAvailable: 5, goldAvailable: 50 })).toEqual({ real: 5, gold: 6 });
  });
  it('makes no batch without real images', () => {
    expect(mixGold({ batchSize: 100, rate: 0.5, realAvailable: 0, goldAvailable: 50 })).toEqual({ real: 0, gold: 0 });
  });
});

describe('gold mixing: choice and placement', () => {
  it('shuffles reproducibly from a seed and keeps every element', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = shuffle(items, seededRandom(42));
    expect(a).toEqual(shuffle(items, seededRandom(42)));
    expect(a).not.toEqual(items);
    expect([...a].sort((x, y) => x - y)).toEqual(items);
  });
  it('prefers gold tasks the annotator has seen least', () => {
    const candidates = [
      { id: 1, timesSeen: 2 },
      { id: 2, timesSeen: 0 },
      { id: 3, timesSeen: 1 },
      { id: 4, timesSeen: 0 },
    ];
    const picked = pickGold(candidates, 3, seededRandom(7)).map((g) => g.id);
    expect(new Set(picked)).toEqual(new Set([2, 4, 3]));
  });
  it('places gold at random positions and keeps the real order', () => {
    const real = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const positions = new Set<string>();
    for (let seed = 1; seed <= 30; seed++) {
      const slots = placeGold(real, ['G1', 'G2'], seededRandom(seed));
      expect(slots).toHaveLength(10);
      expect(slots.filter((s) => s.kind === 'real').map((s) => s.item)).toEqual(real);
      expect(slots.filter((s) => s.kind === 'gold').map((s) => s.item)).toEqual(['G1', 'G2']);
      positions.add(slots.flatMap((s, i) => (s.kind === 'gold' ? [i] : [])).join(','));
    }
    // Not always at the end, nor always in one place.
    expect(positions.size).toBeGreaterThan(10);
  });
});
