/**
 * Gold mixing: how many gold tasks a batch gets and where they sit. Pure (no I/O); randomness
 * comes from a seeded generator so a batch's layout is reproducible from its seed.
 *
 * Counting. `imagesPerProject` is the size of the whole batch (every task is an image, gold
 * ones included) and `goldStandardRate` is the share of those tasks that are gold:
 *
 *   gold = ceil(rate × total)   (with a 1e-9 tolerance, so 0.07 × 100 is 7, not 8)
 *
 * Rounding UP means any rate above 0 puts at least one gold task in every batch (a batch of 5
 * at 10 % gets 1), so every batch yields a quality signal; the share is never below the rate.
 * Two caps: gold never exceeds the distinct gold tasks available for the labeling config, and
 * a batch always keeps at least one real image (gold ≤ total − 1). When fewer real images are
 * available than the batch wants, the batch shrinks and its gold count is recomputed for the
 * smaller total (100 wanted, 5 real available at 10 % → 5 real + 1 gold). No real image → no
 * batch (the caller answers 409), gold alone is never assigned.
 *
 * Placement. Gold tasks take uniformly random positions among all the batch's positions
 * (whatever shuffleImages says about the real images' order), and carry exactly the same task
 * shape as real ones (see provision.ts), so nothing marks them to the annotator.
 */

export interface GoldMixInput {
  /** imagesPerProject: the batch size, gold included. */
  batchSize: number;
  /** goldStandardRate, 0..1. */
  rate: number;
  /** Real (non-gold) items that could go in this batch. */
  realAvailable: number;
  /** Distinct gold tasks of the workflow's labeling config. */
  goldAvailable: number;
}

export interface GoldMix {
  real: number;
  gold: number;
}

const EPSILON = 1e-9;

export function goldCountFor(total: number, rate: number, goldAvailable: number): number {
  if (!(rate > 0) || goldAvailable <= 0 || total <= 1) return 0;
  const wanted = Math.ceil(Math.min(1, rate) * total - EPSILON);
  return Math.max(0, Math.min(wanted, goldAvailable, total - 1));
}

/** How many real and gold tasks a batch gets (see the module comment for the rules). */
export function mixGold(input: GoldMixInput): GoldMix {
  const batchSize = Math.max(0, Math.floor(input.batchSize));
  const realAvailable = Math.max(0, Math.floor(input.realAvailable));
  const goldAvailable = Math.max(0, Math.floor(input.goldAvailable));
  if (realAvailable === 0 || batchSize === 0) return { real: 0, gold: 0 };
  for (let total = Math.min(batchSize, realAvailable + goldAvailable); total >= 1; total--) {
    const gold = goldCountFor(total, input.rate, goldAvailable);
    const real = total - gold;
    if (real <= realAvailable) return { real, gold };
  }
  return { real: Math.min(1, realAvailable), gold: 0 };
}

/** Mulberry32: a small seeded PRNG, enough for shuffling (not for secrets). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Picks `count` distinct gold tasks, preferring those this annotator has seen least (so gold
 * repeats only once the pool is exhausted); ties are broken at random.
 */
export function pickGold<T extends { id: number; timesSeen: number }>(candidates: readonly T[], count: number, random: () => number): T[] {
  return shuffle(candidates, random)
    .sort((a, b) => a.timesSeen - b.timesSeen)
    .slice(0, Math.max(0, count));
}

/** Where a batch's tasks go (positions 0..total-1): see batchLayout. */
export interface BatchLayout {
  /** The gold tasks' positions, ascending: the i-th picked gold task goes to goldSlots[i]. */
  goldSlots: number[];
  /** The real items' positions, in the order the items fill them: the k-th item goes to realSlots[k]. */
  realSlots: number[];
}

/**
 * Lays out a batch of `realCount` real items and `goldCount` gold tasks. Gold tasks take uniformly
 * random positions of the whole batch. The real items take the rest: for a shuffled workflow in a
 * random order (the k-th item taken goes to a random free position), otherwise in the order given
 * (the caller gives them in key order), left to right.
 */
export function batchLayout(realCount: number, goldCount: number, shuffled: boolean, random: () => number): BatchLayout {
  const total = realCount + goldCount;
  const gold = new Set(shuffle(Array.from({ length: total }, (_, i) => i), random).slice(0, goldCount));
  const goldSlots = [...gold].sort((a, b) => a - b);
  const free = Array.from({ length: total }, (_, i) => i).filter((i) => !gold.has(i));
  return { goldSlots, realSlots: shuffled ? shuffle(free, random) : free };
}
