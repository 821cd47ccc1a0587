/**
 * Dawid–Skene: the true class of each item and each annotator's confusion matrix, estimated
 * together by expectation–maximisation from answers with no known truth. Pure (no I/O).
 *
 * Source: A. P. Dawid and A. M. Skene, "Maximum Likelihood Estimation of Observer Error-Rates
 * Using the EM Algorithm", Journal of the Royal Statistical Society C 28(1), 1979, 20–28.
 *
 * Model: item i has a true class z_i with P(z_i = c) = π_c; annotator (or pooled group) g answers
 * k with probability θ_g[c][k] when the truth is c, independently of other answers. Given answers
 * y (several per item, repeats allowed):
 *
 *   E-step   T_ic ∝ π_c · Π_{answers (g, k) on i} θ_g[c][k]              (posteriors, Σ_c T_ic = 1)
 *   M-step   π_c = (1/I) Σ_i T_ic;   θ_g[c][k] ∝ Σ_{answers (g, k) on i} T_ic   (normalised over k)
 *
 * Items whose truth is known (gold) keep T fixed to that class. Details follow crowd-kit's
 * `DawidSkene` (Toloka's Crowd-Kit 1.4, crowdkit/aggregation/classification/dawid_skene.py), so the
 * two agree to rounding when run the same number of iterations (test/integration/agreement-reference):
 *  - θ_g[c][k] exists only for answers k that g gave at least once; those counts are floored at
 *    1e-10 before normalising (so no answer is impossible), as are the priors π_c.
 *  - The loop is: start posteriors T⁰ → M-step → repeat (E-step → M-step) until converged.
 *
 * Where this differs from crowd-kit, by choice:
 *  - Start: with no gold accuracy, T⁰ is the majority vote's vote shares (crowd-kit's start).
 *    With each annotator's gold accuracy a_g (LabelFleet's gold tasks), T⁰ is instead one E-step
 *    under the "one-coin" model θ_g[c][c] = a_g, θ_g[c][k≠c] = (1 − a_g)/(K − 1) with uniform
 *    priors: the reliability the annotators have shown on known answers is where EM begins.
 *  - Stopping: when the log-likelihood Σ_i log Σ_c π_c Π θ rises by less than `tolerance` per
 *    answer (default 1e-9), or after `maxIterations` (100). crowd-kit stops on its evidence lower
 *    bound changing by < 1e-5, which is coarser and can stop a few iterations earlier.
 *  - Pooling: annotators listed in `pooled` share one confusion matrix (too few answers of their own
 *    to estimate K(K − 1) free rates; see {@link dawidSkenePlan}).
 */

export type Id = string | number;

export interface Answer<L> {
  item: Id;
  annotator: Id;
  label: L;
}

export interface DawidSkeneOptions<L> {
  /** The classes, in the order of the posterior arrays; default: every label answered, sorted. */
  classes?: readonly L[];
  /** Items whose true class is known (gold tasks): their posterior stays one-hot. */
  truth?: ReadonlyMap<Id, L>;
  /** Each annotator's accuracy on gold tasks (0..1): the starting reliability (see module doc). */
  initialAccuracy?: ReadonlyMap<Id, number>;
  /** Annotators who share one confusion matrix, {@link POOLED}. */
  pooled?: ReadonlySet<Id>;
  maxIterations?: number;
  /** Minimum rise of the log-likelihood per answer to go on; -Infinity runs maxIterations. */
  tolerance?: number;
}

export interface DawidSkeneResult<L> {
  classes: L[];
  /** Items in first-seen order. */
  items: Id[];
  /** posteriors[i][c] = P(true class of items[i] = classes[c] | answers). */
  posteriors: Float64Array[];
  /** π_c. */
  priors: Float64Array;
  /**
   * Confusion matrix per annotator (pooled annotators under POOLED): confusion[c][k] =
   * P(answers classes[k] | truth classes[c]); 0 for answers the annotator never gave.
   */
  confusion: Map<Id, Float64Array[]>;
  iterations: number;
  converged: boolean;
  /** Log-likelihood of the answers at the last E-step (natural log). */
  logLikelihood: number;
}

/** The confusion-matrix key shared by pooled annotators. */
export const POOLED = '__pooled__';
const EPS = 1e-10;

const defaultOrder = <L>(a: L, b: L) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Fits Dawid–Skene to the answers. Throws RangeError when there are no answers or when a label
 * is not one of `classes`.
 */
export function dawidSkene<L extends Id>(answers: readonly Answer<L>[], opts: DawidSkeneOptions<L> = {}): DawidSkeneResult<L> {
  if (!answers.length) throw new RangeError('Dawid–Skene needs at least one answer');
  const classes = opts.classes ? [...opts.classes] : [...new Set(answers.map((a) => a.label))].sort(defaultOrder);
  const K = classes.length;
  const classIndex = new Map<L, number>(classes.map((c, i) => [c, i]));
  const itemIndex = new Map<Id, number>();
  const groupIndex = new Map<Id, number>();
  const groups: Id[] = [];
  const n = answers.length;
  const aItem = new Int32Array(n);
  const aGroup = new Int32Array(n);
  const aLabel = new Int32Array(n);
  answers.forEach((a, j) => {
    const k = classIndex.get(a.label);
    if (k === undefined) throw new RangeError(`label ${JSON.stringify(a.label)} is not one of the classes`);
    let i = itemIndex.get(a.item);
    if (i === undefined) itemIndex.set(a.item, (i = itemIndex.size));
    const key = opts.pooled?.has(a.annotator) ? POOLED : a.annotator;
    let g = groupIndex.get(key);
    if (g === undefined) {
      groupIndex.set(key, (g = groups.length));
      groups.push(key);
    }
    aItem[j] = i;
    aGroup[j] = g;
    aLabel[j] = k;
  });
  const I = itemIndex.size;
  const G = groups.length;
  const used = new Uint8Array(G * K);
  for (let j = 0; j < n; j++) used[aGroup[j]! * K + aLabel[j]!] = 1;

  // Gold: items with a known class keep a one-hot posterior.
  const fixed = new Int32Array(I).fill(-1);
  for (const [item, label] of opts.truth ?? []) {
    const i = itemIndex.get(item);
    const c = classIndex.get(label);
    if (i !== undefined && c !== undefined) fixed[i] = c;
  }
  const applyTruth = (T: Float64Array) => {
    for (let i = 0; i < I; i++) {
      const c = fixed[i]!;
      if (c < 0) continue;
      T.fill(0, i * K, i * K + K);
      T[i * K + c] = 1;
    }
  };

  const T = new Float64Array(I * K);
  const priors = new Float64Array(K);
  const logTheta = new Float64Array(G * K * K); // [g][c][k]
  const theta = new Float64Array(G * K * K);

  const mStep = () => {
    priors.fill(0);
    for (let i = 0; i < I; i++) for (let c = 0; c < K; c++) priors[c]! += T[i * K + c]!;
    for (let c = 0; c < K; c++) priors[c] = priors[c]! / I;
    theta.fill(0);
    for (let j = 0; j < n; j++) {
      const base = aGroup[j]! * K * K + aLabel[j]!;
      const row = aItem[j]! * K;
      for (let c = 0; c < K; c++) theta[base + c * K]! += T[row + c]!;
    }
    for (let g = 0; g < G; g++) {
      for (let c = 0; c < K; c++) {
        const off = g * K * K + c * K;
        let s = 0;
        for (let k = 0; k < K; k++) if (used[g * K + k]) s += theta[off + k] = Math.max(theta[off + k]!, EPS);
        for (let k = 0; k < K; k++) {
          theta[off + k] = used[g * K + k] ? theta[off + k]! / s : 0;
          logTheta[off + k] = used[g * K + k] ? Math.log(theta[off + k]!) : -Infinity;
        }
      }
    }
  };

  /** E-step: T from priors and logTheta; returns the log-likelihood. */
  const scratch = new Float64Array(I * K);
  const logPriors = new Float64Array(K);
  const eStep = (): number => {
    for (let c = 0; c < K; c++) logPriors[c] = Math.log(Math.max(priors[c]!, EPS));
    for (let i = 0; i < I; i++) scratch.set(logPriors, i * K);
    for (let j = 0; j < n; j++) {
      const base = aGroup[j]! * K * K + aLabel[j]!;
      const row = aItem[j]! * K;
      for (let c = 0; c < K; c++) scratch[row + c]! += logTheta[base + c * K]!;
    }
    let ll = 0;
    for (let i = 0; i < I; i++) {
      let max = -Infinity;
      for (let c = 0; c < K; c++) max = Math.max(max, scratch[i * K + c]!);
      let s = 0;
      for (let c = 0; c < K; c++) s += T[i * K + c] = Math.exp(scratch[i * K + c]! - max);
      for (let c = 0; c < K; c++) T[i * K + c] = T[i * K + c]! / s;
      ll += max + Math.log(s);
    }
    applyTruth(T);
    return ll;
  };

  // Start.
  const accuracy = startingAccuracy(groups, opts);
  if (accuracy) {
    priors.fill(1 / K);
    for (let g = 0; g < G; g++) {
      const a = Math.min(1 - EPS, Math.max(EPS, accuracy[g]!));
      for (let c = 0; c < K; c++) {
        for (let k = 0; k < K; k++) {
          logTheta[g * K * K + c * K + k] = Math.log(K === 1 ? 1 : c === k ? a : (1 - a) / (K - 1));
        }
      }
    }
    eStep();
  } else {
    const total = new Float64Array(I);
    for (let j = 0; j < n; j++) {
      T[aItem[j]! * K + aLabel[j]!]! += 1;
      total[aItem[j]!]! += 1;
    }
    for (let i = 0; i < I; i++) for (let c = 0; c < K; c++) T[i * K + c] = T[i * K + c]! / total[i]!;
    applyTruth(T);
  }
  mStep();

  const maxIterations = opts.maxIterations ?? 100;
  const tolerance = opts.tolerance ?? 1e-9;
  let ll = -Infinity;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations) {
    const next = eStep();
    mStep();
    iterations++;
    const rise = (next - ll) / n;
    ll = next;
    if (rise < tolerance) {
      converged = true;
      break;
    }
  }

  const posteriors = Array.from({ length: I }, (_, i) => T.slice(i * K, i * K + K));
  const confusion = new Map<Id, Float64Array[]>();
  groups.forEach((key, g) =>
    confusion.set(
      key,
      Array.from({ length: K }, (_, c) => theta.slice(g * K * K + c * K, g * K * K + c * K + K)),
    ),
  );
  return {
    classes,
    items: [...itemIndex.keys()],
    posteriors,
    priors,
    confusion,
    iterations,
    converged,
    logLikelihood: ll,
  };
}

/**
 * The starting accuracy per confusion group, or null to start from the majority vote (no annotator
 * has a gold accuracy). A pooled group, and an annotator without one, start at the mean of the
 * known accuracies of the annotators in the answers.
 */
function startingAccuracy<L>(groups: Id[], opts: DawidSkeneOptions<L>): number[] | null {
  const known = opts.initialAccuracy;
  if (!known || known.size === 0) return null;
  const values = [...known.values()].filter(Number.isFinite);
  if (!values.length) return null;
  const mean = values.reduce((s, x) => s + x, 0) / values.length;
  return groups.map((g) => {
    const a = g === POOLED ? undefined : known.get(g);
    return a !== undefined && Number.isFinite(a) ? a : mean;
  });
}

/** Dawid–Skene is used for a control once, per class, there are this many items answered twice or more. */
export const MIN_SHARED_ITEMS_PER_CLASS = 10;
/** An annotator gets a confusion matrix of their own at this many answers per class. */
export const MIN_ANSWERS_PER_CLASS = 10;

export interface DawidSkenePlan {
  /** False: too little overlap to estimate confusion matrices; use the majority vote. */
  useDawidSkene: boolean;
  /** Annotators with too few answers for their own matrix: they share the POOLED one. */
  pooled: Set<Id>;
}

/**
 * When Dawid–Skene has enough data, and whose confusion matrices it can estimate.
 *
 * The threshold: a K-class confusion matrix has K(K − 1) free rates, one row per true class, each
 * row estimated from the answers on items of that class. With fewer than ~10 answers per row the
 * maximum-likelihood rates swing between 0 and 1 (one wrong answer in 5 moves a rate by 0.2), and
 * EM on sparse data overfits: an annotator seen a few times can look perfect and outvote everyone.
 * The "10 events per parameter" rule of thumb for multinomial/logistic models (Peduzzi et al.,
 * J Clin Epidemiol 49(12), 1996) gives the numbers used here:
 *  - EM runs once at least 10·K items have two or more answers (agreement, the only signal EM has
 *    without gold, exists only on those), so each class has ~10 items to learn from;
 *  - an annotator gets an own confusion matrix with at least 10·K answers on such items; below
 *    that their answers pool into one shared matrix (the "pooled" model of Dawid–Skene variants,
 *    cf. Paun et al., TACL 6, 2018), which has enough data as soon as EM runs at all.
 * Below the first threshold the consensus is the plain majority vote.
 */
export function dawidSkenePlan(answers: readonly Answer<unknown>[], classCount: number): DawidSkenePlan {
  const perItem = new Map<Id, number>();
  for (const a of answers) perItem.set(a.item, (perItem.get(a.item) ?? 0) + 1);
  let shared = 0;
  for (const m of perItem.values()) if (m >= 2) shared++;
  const K = Math.max(2, classCount);
  const perAnnotator = new Map<Id, number>();
  for (const a of answers) {
    if (perItem.get(a.item)! < 2) continue;
    perAnnotator.set(a.annotator, (perAnnotator.get(a.annotator) ?? 0) + 1);
  }
  const pooled = new Set<Id>();
  for (const a of answers) {
    if ((perAnnotator.get(a.annotator) ?? 0) < MIN_ANSWERS_PER_CLASS * K) pooled.add(a.annotator);
  }
  return { useDawidSkene: shared >= MIN_SHARED_ITEMS_PER_CLASS * K, pooled };
}

/**
 * A Dawid–Skene fit as the service stores it (migrations/0027_consensus_fits.sql): the classes,
 * their priors π_c, and the confusion matrices θ[c][k] (rows: true class, columns: answer, in
 * `classes` order) by annotator id as a string, pooled annotators under {@link POOLED}.
 */
export interface StoredFit {
  classes: string[];
  priors: number[];
  confusion: Record<string, number[][]>;
}

/** The stored form of a fit: plain arrays, annotator ids as strings. */
export function storedFit(fit: DawidSkeneResult<string>): StoredFit {
  const confusion: Record<string, number[][]> = {};
  for (const [key, rows] of fit.confusion) confusion[String(key)] = rows.map((r) => [...r]);
  return { classes: [...fit.classes], priors: [...fit.priors], confusion };
}

/**
 * One E-step on a stored fit for one item: P(true class c | the item's answers) ∝
 * π_c · Π_{answers (j, k)} θ_j[c][k], normalised over c (computed in logs). O(answers × classes).
 *
 * The annotator's matrix is their own, else the pooled one, else the element-wise mean of the
 * stored matrices (an annotator the fit never saw). Rates and priors are floored at 1e-10, as in
 * the fit, so an answer an annotator never gave makes a class unlikely, not impossible.
 * Returns null when there are no answers or an answer is not one of the fit's classes (the fit
 * says nothing about it: the caller falls back to the majority vote).
 */
export function posteriorOnFit(fit: StoredFit, answers: readonly { annotator: Id; label: string }[]): Float64Array | null {
  const K = fit.classes.length;
  if (!answers.length || K === 0) return null;
  const index = new Map(fit.classes.map((c, i) => [c, i]));
  const logp = new Float64Array(K);
  for (let c = 0; c < K; c++) logp[c] = Math.log(Math.max(fit.priors[c] ?? 0, EPS));
  let fallback: number[][] | undefined;
  for (const a of answers) {
    const k = index.get(a.label);
    if (k === undefined) return null;
    let theta = fit.confusion[String(a.annotator)] ?? fit.confusion[POOLED];
    if (!theta) theta = fallback ??= meanMatrix(Object.values(fit.confusion), K);
    for (let c = 0; c < K; c++) logp[c]! += Math.log(Math.max(theta[c]?.[k] ?? 0, EPS));
  }
  let max = -Infinity;
  for (let c = 0; c < K; c++) max = Math.max(max, logp[c]!);
  let s = 0;
  for (let c = 0; c < K; c++) s += logp[c] = Math.exp(logp[c]! - max);
  for (let c = 0; c < K; c++) logp[c] = logp[c]! / s;
  return logp;
}

function meanMatrix(matrices: number[][][], K: number): number[][] {
  const out = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  for (const m of matrices) for (let c = 0; c < K; c++) for (let k = 0; k < K; k++) out[c]![k]! += (m[c]?.[k] ?? 0) / matrices.length;
  return out;
}
