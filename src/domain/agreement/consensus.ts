/**
 * Consensus of categorical answers across a workflow: each item's label, weighted by what each
 * annotator's answers say about their reliability. Pure (no I/O).
 *
 *  - Enough overlap (see dawidSkenePlan in dawid-skene.ts): Dawid–Skene EM, started from the
 *    annotators' gold accuracy when known; the label is the most probable class and the
 *    confidence its posterior probability.
 *  - Before that: the majority vote; the confidence is the winner's vote share. A tie goes to the
 *    label whose voters have the higher summed gold accuracy, then to the first label in code-unit
 *    order (deterministic).
 *  - "No label" answers (`noLabel`: a skip, or a control left empty) are abstentions, not a class:
 *    "no label" is the consensus only when a strict majority of the item's answers abstain (its
 *    confidence: their share); otherwise the labels given decide as above. As a class of its own it
 *    would break Dawid–Skene: random skips form a rare "class" no annotator is reliable on, and EM
 *    then drifts between it and the real classes without converging (seen on the benchmark data).
 */
import { dawidSkene, dawidSkenePlan, posteriorOnFit, POOLED, storedFit, type Answer, type DawidSkenePlan, type DawidSkeneResult, type Id, type StoredFit } from './dawid-skene.ts';

export type ConsensusMethod = 'dawid-skene' | 'majority';

export interface LabelDecision {
  label: string;
  confidence: number;
}

export interface ChoiceConsensus {
  method: ConsensusMethod;
  items: Map<Id, LabelDecision>;
  /**
   * Each annotator's estimated accuracy, Σ_c π_c θ[c][c] under Dawid–Skene (pooled annotators
   * share the pooled estimate); absent under the majority vote.
   */
  reliability?: Map<Id, number>;
}

export interface ChoiceConsensusOptions {
  /** Gold accuracy per annotator (0..1): Dawid–Skene's start and the majority's tie-break. */
  goldAccuracy?: ReadonlyMap<Id, number>;
  /** All categories (e.g. from the config), so a category nobody chose yet still has a prior. */
  classes?: readonly string[];
  /** The label that means "no answer" (an abstention, see above). */
  noLabel?: string;
}

export function choiceConsensus(all: readonly Answer<string>[], opts: ChoiceConsensusOptions = {}): ChoiceConsensus {
  const abstain = new Map<Id, number>();
  const total = new Map<Id, number>();
  for (const a of all) {
    total.set(a.item, (total.get(a.item) ?? 0) + 1);
    if (opts.noLabel !== undefined && a.label === opts.noLabel) abstain.set(a.item, (abstain.get(a.item) ?? 0) + 1);
  }
  const answers = abstain.size ? all.filter((a) => a.label !== opts.noLabel) : all;
  const decided = decide(answers, opts, total);
  for (const [item, n] of abstain) {
    if (n * 2 > total.get(item)!) decided.items.set(item, { label: opts.noLabel!, confidence: n / total.get(item)! });
  }
  return decided;
}

/** Dawid–Skene on the labels given (abstentions left out), or null below the threshold (dawidSkenePlan). */
function fitLabels(answers: readonly Answer<string>[], opts: ChoiceConsensusOptions): { fit: DawidSkeneResult<string>; plan: DawidSkenePlan } | null {
  const seen = new Set(answers.map((a) => a.label));
  const classes = [...new Set([...(opts.classes ?? []).filter((c) => seen.has(c)), ...[...seen].sort()])];
  const plan = dawidSkenePlan(answers, classes.length);
  if (!plan.useDawidSkene || classes.length < 2) return null;
  return { fit: dawidSkene(answers, { classes, pooled: plan.pooled, initialAccuracy: opts.goldAccuracy }), plan };
}

/**
 * The Dawid–Skene fit of a control's answers across a workflow, to store and apply to items that
 * finish later ({@link choiceOnFit}); null below the threshold (the majority vote stays).
 * Abstentions (`opts.noLabel`) are left out, as in {@link choiceConsensus}.
 */
export function fitChoices(all: readonly Answer<string>[], opts: ChoiceConsensusOptions = {}): { fit: StoredFit; iterations: number } | null {
  const answers = opts.noLabel === undefined ? all : all.filter((a) => a.label !== opts.noLabel);
  const r = fitLabels(answers, opts);
  return r ? { fit: storedFit(r.fit), iterations: r.fit.iterations } : null;
}

/**
 * One item's choice on a stored fit: as {@link choiceConsensus} would decide it under Dawid–Skene
 * (abstentions first: "no label" with a strict majority of them; otherwise the most probable
 * class of the labels given, ties to the first class of the fit, confidence its posterior), but
 * with one E-step on `fit` instead of refitting. Null when the fit cannot decide (no label given,
 * or a label the fit does not know): the caller uses the majority vote.
 */
export function choiceOnFit(fit: StoredFit, answers: readonly { annotator: Id; label: string }[], noLabel?: string): LabelDecision | null {
  const given = noLabel === undefined ? answers : answers.filter((a) => a.label !== noLabel);
  const abstained = answers.length - given.length;
  if (abstained * 2 > answers.length) return { label: noLabel!, confidence: abstained / answers.length };
  const p = posteriorOnFit(fit, given);
  if (!p) return null;
  let best = 0;
  for (let c = 1; c < p.length; c++) if (p[c]! > p[best]!) best = c;
  return { label: fit.classes[best]!, confidence: p[best]! };
}

function decide(answers: readonly Answer<string>[], opts: ChoiceConsensusOptions, total: Map<Id, number>): ChoiceConsensus {
  const fitted = fitLabels(answers, opts);
  if (!fitted) return majority(answers, total, opts.goldAccuracy);
  const { fit, plan } = fitted;
  const items = new Map<Id, LabelDecision>();
  fit.items.forEach((item, i) => {
    const p = fit.posteriors[i]!;
    let best = 0;
    for (let c = 1; c < p.length; c++) if (p[c]! > p[best]!) best = c;
    items.set(item, { label: fit.classes[best]!, confidence: p[best]! });
  });
  const accuracyOf = (theta: Float64Array[]) => theta.reduce((s, row, c) => s + fit.priors[c]! * row[c]!, 0);
  const reliability = new Map<Id, number>();
  for (const a of answers) {
    if (reliability.has(a.annotator)) continue;
    const theta = fit.confusion.get(plan.pooled.has(a.annotator) ? POOLED : a.annotator)!;
    reliability.set(a.annotator, accuracyOf(theta));
  }
  return { method: 'dawid-skene', items, reliability };
}

/** `totals`: every answer per item, abstentions included (the vote share's denominator). */
function majority(answers: readonly Answer<string>[], totals: Map<Id, number>, goldAccuracy?: ReadonlyMap<Id, number>): ChoiceConsensus {
  const votes = new Map<Id, Map<string, { count: number; gold: number }>>();
  for (const a of answers) {
    let m = votes.get(a.item);
    if (!m) votes.set(a.item, (m = new Map()));
    const v = m.get(a.label) ?? { count: 0, gold: 0 };
    v.count++;
    v.gold += goldAccuracy?.get(a.annotator) ?? 0;
    m.set(a.label, v);
  }
  const items = new Map<Id, LabelDecision>();
  for (const [item, m] of votes) {
    const [label, v] = [...m].sort(
      ([la, a], [lb, b]) => b.count - a.count || b.gold - a.gold || (la < lb ? -1 : la > lb ? 1 : 0),
    )[0]!;
    items.set(item, { label, confidence: v.count / totals.get(item)! });
  }
  return { method: 'majority', items };
}
