import { describe, expect, it } from 'vitest';
import { batchLayout, goldCountFor, mixGold, pickGold, seededRandom, shuffle } from '../../src/domain/gold-mixing.ts';

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
  it('places gold at random positions; real items fill the rest in order, or at random when shuffled', () => {
    const goldPositions = new Set<string>();
    const realOrders = new Set<string>();
    for (let seed = 1; seed <= 30; seed++) {
      for (const shuffled of [false, true]) {
        const { goldSlots, realSlots } = batchLayout(8, 2, shuffled, seededRandom(seed));
        // Every position once, gold ascending.
        expect([...goldSlots, ...realSlots].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(goldSlots).toEqual([...goldSlots].sort((a, b) => a - b));
        if (shuffled) realOrders.add(realSlots.join(','));
        else expect(realSlots).toEqual([...realSlots].sort((a, b) => a - b));
        goldPositions.add(goldSlots.join(','));
      }
      // The same seed gives the same layout.
      expect(batchLayout(8, 2, true, seededRandom(seed))).toEqual(batchLayout(8, 2, true, seededRandom(seed)));
    }
    // Not always at the end, nor always in one place; shuffled orders differ.
    expect(goldPositions.size).toBeGreaterThan(10);
    expect(realOrders.size).toBeGreaterThan(20);
    expect(batchLayout(3, 0, false, seededRandom(1))).toEqual({ goldSlots: [], realSlots: [0, 1, 2] });
  });
});
