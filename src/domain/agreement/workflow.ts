/**
 * Agreement and consensus of a whole workflow's overlapping annotations: per item its agreement,
 * merged result and confidence; per control Krippendorff's alpha, coincidences, pairwise
 * agreement (Cohen's kappa for categories) and each annotator's agreement with the consensus.
 * Pure (no I/O): phase 2 reads the annotations from the database and stores what this returns.
 *
 * Definitions (README "Overlap and consensus"):
 *  - An annotation's answer to a control is its result values for that control's from_name; a
 *    skipped task answers every control with "no label" (no values).
 *  - Similarity of two answers: the gold scorer's comparison (src/domain/gold-scoring.ts), made
 *    symmetric by averaging both directions; two empty answers are equal (1).
 *  - A control that no annotation of an item answered tells nothing about agreement on that
 *    control: the item is left out of the control's alpha, pairs, kappa and agreement with the
 *    consensus (an optional control would otherwise look perfectly agreed on).
 *  - Item agreement per control: the mean similarity over pairs of the item's answers. Item
 *    agreement: the mean over the controls that at least one annotation answered (1 when every
 *    annotation answered nothing); null with fewer than two annotations.
 *  - Consensus per control: consensus.ts (choices), merge.ts (numbers, regions, text); the item's
 *    confidence is the mean of its controls' confidences over the same controls.
 */
import { resultsByControl, strings, type Obj } from '../gold-scoring.ts';
import { choiceConsensus, choiceOnFit, type ConsensusMethod, type LabelDecision } from './consensus.ts';
import { controlValues, type ControlKind, type ControlSpec } from './controls.ts';
import type { Answer, Id, StoredFit } from './dawid-skene.ts';
import { compareIds, pairwiseKappa, type PairKappa } from './kappa.ts';
import {
  alphaFromCoincidences,
  alphaWithDistance,
  CoincidenceMatrix,
  type Metric,
  type Unit,
} from './krippendorff.ts';
import { mergeMedoid, mergeNumbers, mergeRegions, similarity, type Merged } from './merge.ts';

export interface ItemAnnotations {
  item: Id;
  annotations: readonly { annotator: Id; result: unknown; skipped?: boolean }[];
  /** The labeled text (Text tasks), so merged spans carry their exact substring. */
  text?: string;
}

export interface AnalysisOptions {
  /** Each annotator's gold accuracy (0..1): Dawid–Skene's starting point. */
  goldAccuracy?: ReadonlyMap<Id, number>;
  /** IoU for regions to match (default 0.5). */
  regionThreshold?: number;
  /** Pairs sampled for alpha's expected disagreement on regions and texts (default 200 000). */
  alphaSamplePairs?: number;
  /**
   * Stored Dawid–Skene fits by single-choice control (from_name): each item's choice is one E-step
   * on the fit (consensus.ts choiceOnFit) instead of a consensus over these items alone; an item
   * the fit cannot decide gets the latter. The service's per-item path (src/workflows/consensus.ts).
   */
  choiceFits?: ReadonlyMap<string, StoredFit>;
}

/** The category "no label" of a single-choice control (an empty answer or a skip). */
export const NO_LABEL = '';

export interface LsResultEntry {
  from_name: string;
  to_name?: string;
  type: string;
  value: Obj;
}

export interface ItemOutcome {
  item: Id;
  annotators: Id[];
  /** 0..1; null with fewer than two annotations. */
  agreement: number | null;
  /** 0..1: how strongly the answers support the merged result. */
  confidence: number;
  /** The merged Label Studio result. */
  result: LsResultEntry[];
  controls: { fromName: string; agreement: number | null; confidence: number }[];
}

export interface PairAgreement {
  a: Id;
  b: Id;
  /** Items both answered. */
  items: number;
  /** Mean similarity of their answers on those items (for categories: the share of equal answers). */
  agreement: number;
  /** Cohen's kappa (categorical controls only; null when undefined). */
  kappa?: number | null;
}

export interface AnnotatorAgreement {
  annotator: Id;
  /** Items with two or more annotations that this annotator annotated. */
  items: number;
  /** Mean similarity of their answers to the consensus on those items. */
  agreementWithConsensus: number;
  /** Dawid–Skene's estimate of their accuracy (mean over the choice controls that used it). */
  reliability?: number;
}

export interface ControlReport {
  fromName: string;
  type: string;
  kind: ControlKind;
  alpha: {
    value: number | null;
    metric: Metric | 'distance';
    observedDisagreement: number;
    expectedDisagreement: number;
    pairableValues: number;
    pairableUnits: number;
    sampled?: boolean;
  };
  /** Multi-choice: alpha of each label as a binary variable. */
  labels?: { label: string; alpha: number | null; chosen: number }[];
  /**
   * Single choice: Krippendorff's coincidences, how often label c met label k from another
   * annotator on the same item (each item weighs 1 per answer: pairs / (m − 1)).
   */
  coincidences?: { label: string; with: Record<string, number> }[];
  /** How choices were merged. */
  method?: ConsensusMethod;
  pairs: PairAgreement[];
  annotators: AnnotatorAgreement[];
}

export interface AgreementAnalysis {
  items: ItemOutcome[];
  /** Items with two or more annotations. */
  itemsScored: number;
  /** Mean item agreement over the scored items (null when none). */
  meanAgreement: number | null;
  controls: ControlReport[];
  /** Per annotator over all controls. */
  annotators: AnnotatorAgreement[];
}

/** Symmetric similarity of two answers (only `number` compares asymmetrically: averaged both ways). */
export function pairSimilarity(spec: ControlSpec, a: Obj[], b: Obj[]): number {
  return spec.type === 'number' ? (similarity(spec, a, b) + similarity(spec, b, a)) / 2 : similarity(spec, a, b);
}

/**
 * The similarities of every pair of one item's answers to a control, row-major m × m (symmetric,
 * 1 on the diagonal). Computed once per item and control: item agreement, pairs and alpha's
 * observed disagreement all read it.
 */
export function similarityMatrix(spec: ControlSpec, answers: readonly Obj[][]): Float64Array {
  const m = answers.length;
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    out[i * m + i] = 1;
    for (let j = i + 1; j < m; j++) out[i * m + j] = out[j * m + i] = pairSimilarity(spec, answers[i]!, answers[j]!);
  }
  return out;
}

/** Mean pairwise similarity of one item's answers to a control; null with fewer than two. */
export function controlAgreement(spec: ControlSpec, answers: readonly Obj[][], sims = similarityMatrix(spec, answers)): number | null {
  const m = answers.length;
  if (m < 2) return null;
  let s = 0;
  for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) s += sims[i * m + j]!;
  return s / ((m * (m - 1)) / 2);
}

/** At least one of the item's annotations answered the control. */
const answered = (itemAnswers: readonly Obj[][]) => itemAnswers.some((a) => a.length > 0);

const choiceKey = (spec: ControlSpec) => (spec.type === 'taxonomy' ? 'taxonomy' : 'choices');

/** The categories of a multi-choice answer: key (as compared) → value (as Label Studio stores it). */
function chosen(spec: ControlSpec, values: Obj[]): Map<string, unknown> {
  const key = choiceKey(spec);
  const out = new Map<string, unknown>();
  for (const v of values) {
    const raw = v[key];
    const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
    const keys = strings(list);
    keys.forEach((k, i) => out.set(k, list[i]));
  }
  return out;
}

const singleLabel = (values: Obj[]) => strings(values[0]?.choices)[0] ?? NO_LABEL;

interface ControlWork {
  merged: Merged[];
  report: Omit<ControlReport, 'pairs' | 'annotators'>;
  /** Categorical controls: Cohen's kappa per pair. */
  kappas?: PairKappa[];
  reliability?: Map<Id, number>;
}

/**
 * Analyses a workflow's annotations. `specs` are its controls (controlsFromConfig, or
 * controlsFromResults when no config is at hand); results answering other controls are ignored.
 */
export function analyzeAgreement(
  items: readonly ItemAnnotations[],
  specs: readonly ControlSpec[],
  opts: AnalysisOptions = {},
): AgreementAnalysis {
  // answers[s][i][a]: control s, item i, annotation a.
  const grouped = items.map((it) => it.annotations.map((a) => resultsByControl(a.skipped ? [] : a.result)));
  const answers = specs.map((spec) => grouped.map((annotations) => annotations.map((byControl) => controlValues(byControl, spec))));

  // sims[s][i]: pairwise similarities of item i's answers to control s (null: nobody answered).
  const sims = specs.map((spec, s) => answers[s]!.map((a) => (answered(a) ? similarityMatrix(spec, a) : null)));
  const works = specs.map((spec, s) => controlWork(spec, items, answers[s]!, sims[s]!, opts));

  const outcomes: ItemOutcome[] = items.map((it, i) => {
    const controls: ItemOutcome['controls'] = [];
    const result: LsResultEntry[] = [];
    specs.forEach((spec, s) => {
      const itemAnswers = answers[s]![i]!;
      const merged = works[s]!.merged[i]!;
      for (const value of merged.values) {
        result.push({ from_name: spec.fromName, ...(spec.toName ? { to_name: spec.toName } : {}), type: spec.type, value });
      }
      if (!answered(itemAnswers)) return;
      controls.push({ fromName: spec.fromName, agreement: controlAgreement(spec, itemAnswers, sims[s]![i]!), confidence: merged.confidence });
    });
    const m = it.annotations.length;
    const agreement = m < 2 ? null : controls.length ? mean(controls.map((c) => c.agreement!)) : 1;
    const confidence = controls.length ? mean(controls.map((c) => c.confidence)) : 1;
    return { item: it.item, annotators: it.annotations.map((a) => a.annotator), agreement, confidence, result, controls };
  });

  const controls: ControlReport[] = specs.map((spec, s) => {
    return {
      ...works[s]!.report,
      pairs: withKappa(pairAgreements(items, sims[s]!), works[s]!.kappas),
      annotators: annotatorAgreements(items, [{ spec, answers: answers[s]!, merged: works[s]!.merged }], [works[s]!.reliability]),
    };
  });

  const scored = outcomes.filter((o) => o.agreement !== null);
  return {
    items: outcomes,
    itemsScored: scored.length,
    meanAgreement: scored.length ? mean(scored.map((o) => o.agreement!)) : null,
    controls,
    annotators: annotatorAgreements(
      items,
      specs.map((spec, s) => ({ spec, answers: answers[s]!, merged: works[s]!.merged })),
      works.map((w) => w.reliability),
    ),
  };
}

function controlWork(
  spec: ControlSpec,
  items: readonly ItemAnnotations[],
  answers: Obj[][][],
  sims: (Float64Array | null)[],
  opts: AnalysisOptions,
): ControlWork {
  const base = { fromName: spec.fromName, type: spec.type, kind: spec.kind };
  switch (spec.kind) {
    case 'single-choice': {
      const labels: Answer<string>[] = [];
      items.forEach((it, i) =>
        it.annotations.forEach((a, j) => labels.push({ item: i, annotator: a.annotator, label: singleLabel(answers[i]![j]!) })),
      );
      const consensus = choiceConsensus(labels, { goldAccuracy: opts.goldAccuracy, noLabel: NO_LABEL });
      const fit = opts.choiceFits?.get(spec.fromName);
      const onFit = new Map<number, LabelDecision>();
      if (fit) {
        items.forEach((it, i) => {
          const d = choiceOnFit(fit, it.annotations.map((a, j) => ({ annotator: a.annotator, label: singleLabel(answers[i]![j]!) })), NO_LABEL);
          if (d) onFit.set(i, d);
        });
      }
      const merged = items.map((_, i) => {
        const d = onFit.get(i) ?? consensus.items.get(i);
        return { values: d && d.label !== NO_LABEL ? [{ choices: [d.label] }] : [], confidence: d?.confidence ?? 0 };
      });
      const cm = new CoincidenceMatrix();
      answers.forEach((itemAnswers) => {
        if (answered(itemAnswers)) cm.addUnit(itemAnswers.map(singleLabel));
      });
      const rows = new Map<string, Record<string, number>>();
      for (const [c, k, o] of cm.entries()) rows.set(String(c), { ...rows.get(String(c)), [String(k)]: o });
      return {
        merged,
        reliability: consensus.reliability,
        kappas: pairwiseKappa(labels.filter((l) => answered(answers[l.item as number]!))),
        report: {
          ...base,
          alpha: alphaReport(alphaFromCoincidences(cm, 'nominal')),
          coincidences: [...rows].sort(([a], [b]) => (a < b ? -1 : 1)).map(([label, w]) => ({ label, with: w })),
          method: onFit.size ? 'dawid-skene' : consensus.method,
        },
      };
    }
    case 'multi-choice':
      return multiChoiceWork(spec, items, answers, opts, base);
    case 'rating':
    case 'number': {
      const key = spec.kind;
      const units: Unit[] = answers.filter(answered).map((itemAnswers) =>
        itemAnswers.map((a) => {
          const x = Number(a[0]?.[key]);
          return a.length && Number.isFinite(x) ? x : null;
        }),
      );
      return {
        merged: answers.map((itemAnswers) => mergeNumbers(spec, itemAnswers)),
        report: { ...base, alpha: alphaReport(alphaFromCoincidences(units.reduce((cm, u) => cm.addUnit(u), new CoincidenceMatrix()), 'interval')) },
      };
    }
    default: {
      const merged = answers.map((itemAnswers, i) =>
        spec.kind === 'boxes' || spec.kind === 'spans'
          ? mergeRegions(spec, itemAnswers, { threshold: opts.regionThreshold, text: items[i]!.text })
          : mergeMedoid(spec, itemAnswers),
      );
      // Values carry where they come from, so pairs within an item read the similarity matrix.
      type Placed = { item: number; at: number; values: Obj[] };
      const units = answers.flatMap((itemAnswers, item) =>
        sims[item] ? [itemAnswers.map((values, at): Placed => ({ item, at, values }))] : [],
      );
      const distance = (a: Placed, b: Placed) =>
        1 - (a.item === b.item ? sims[a.item]![a.at * answers[a.item]!.length + b.at]! : pairSimilarity(spec, a.values, b.values));
      const alpha = alphaWithDistance(units, distance, { samplePairs: opts.alphaSamplePairs });
      return { merged, report: { ...base, alpha: { ...alphaReport(alpha), sampled: alpha.sampled } } };
    }
  }
}

function multiChoiceWork(
  spec: ControlSpec,
  items: readonly ItemAnnotations[],
  answers: Obj[][][],
  opts: AnalysisOptions,
  base: Pick<ControlReport, 'fromName' | 'type' | 'kind'>,
): ControlWork {
  const sets = answers.map((itemAnswers) => itemAnswers.map((a) => chosen(spec, a)));
  const original = new Map<string, unknown>();
  for (const itemSets of sets) for (const set of itemSets) for (const [k, v] of set) if (!original.has(k)) original.set(k, v);
  const labels = [...original.keys()].sort();
  const pooled = new CoincidenceMatrix();
  const perLabel: NonNullable<ControlReport['labels']> = [];
  const decisions = labels.map((label) => {
    const binary: Answer<string>[] = [];
    const cm = new CoincidenceMatrix();
    let count = 0;
    sets.forEach((itemSets, i) => {
      if (!answered(answers[i]!)) return;
      const unit = itemSets.map((set) => (set.has(label) ? '1' : '0'));
      unit.forEach((v, j) => {
        binary.push({ item: i, annotator: items[i]!.annotations[j]!.annotator, label: v });
        if (v === '1') count++;
      });
      cm.addUnit(unit);
      pooled.addUnit(unit);
    });
    perLabel.push({ label, alpha: alphaFromCoincidences(cm, 'nominal').alpha, chosen: count });
    return { label, consensus: choiceConsensus(binary, { goldAccuracy: opts.goldAccuracy, classes: ['0', '1'] }), binary };
  });
  const key = choiceKey(spec);
  const merged: Merged[] = sets.map((itemSets, i) => {
    const considered = new Set(itemSets.flatMap((set) => [...set.keys()]));
    const chosenLabels: unknown[] = [];
    let confidence = 1;
    for (const d of decisions) {
      if (!considered.has(d.label)) continue;
      const decision = d.consensus.items.get(i)!;
      if (decision.label === '1') chosenLabels.push(original.get(d.label));
      confidence = Math.min(confidence, decision.confidence);
    }
    return { values: chosenLabels.length ? [{ [key]: chosenLabels }] : [], confidence };
  });
  // Pairwise kappa over all (item, label) binary decisions together.
  const kappas = pairwiseKappa(
    decisions.flatMap((d) => d.binary.map((b) => ({ item: `${b.item}\u0000${d.label}`, annotator: b.annotator, label: b.label }))),
  );
  const reliability = meanMaps(decisions.map((d) => d.consensus.reliability));
  return {
    merged,
    reliability,
    kappas,
    report: {
      ...base,
      alpha: alphaReport(alphaFromCoincidences(pooled, 'nominal')),
      labels: perLabel,
      method: decisions.some((d) => d.consensus.method === 'dawid-skene') ? 'dawid-skene' : 'majority',
    },
  };
}

function alphaReport(r: {
  alpha: number | null;
  metric: Metric | 'distance';
  observedDisagreement: number;
  expectedDisagreement: number;
  pairableValues: number;
  pairableUnits: number;
}): ControlReport['alpha'] {
  return {
    value: r.alpha,
    metric: r.metric,
    observedDisagreement: r.observedDisagreement,
    expectedDisagreement: r.expectedDisagreement,
    pairableValues: r.pairableValues,
    pairableUnits: r.pairableUnits,
  };
}

/** Mean similarity of every pair of annotators over the items they shared (where answered). */
function pairAgreements(items: readonly ItemAnnotations[], sims: (Float64Array | null)[]): PairAgreement[] {
  const pairs = new Map<string, PairAgreement>();
  items.forEach((it, i) => {
    const matrix = sims[i];
    if (!matrix) return;
    const m = it.annotations.length;
    const order = it.annotations.map((a, j) => ({ id: a.annotator, j })).sort((x, y) => compareIds(x.id, y.id));
    for (let x = 0; x < order.length; x++) {
      for (let y = x + 1; y < order.length; y++) {
        const a = order[x]!;
        const b = order[y]!;
        if (a.id === b.id) continue;
        const key = JSON.stringify([a.id, b.id]);
        const p = pairs.get(key) ?? { a: a.id, b: b.id, items: 0, agreement: 0 };
        p.agreement += matrix[a.j * m + b.j]!;
        p.items++;
        pairs.set(key, p);
      }
    }
  });
  return [...pairs.values()]
    .map((p) => ({ ...p, agreement: p.agreement / p.items }))
    .sort((p, q) => compareIds(p.a, q.a) || compareIds(p.b, q.b));
}

function withKappa(pairs: PairAgreement[], kappas?: PairKappa[]): PairAgreement[] {
  if (!kappas) return pairs;
  const byKey = new Map(kappas.map((k) => [JSON.stringify([k.a, k.b]), k.kappa]));
  return pairs.map((p) => ({ ...p, kappa: byKey.get(JSON.stringify([p.a, p.b])) ?? null }));
}

function annotatorAgreements(
  items: readonly ItemAnnotations[],
  controls: { spec: ControlSpec; answers: Obj[][][]; merged: Merged[] }[],
  reliabilities: (Map<Id, number> | undefined)[],
): AnnotatorAgreement[] {
  const acc = new Map<Id, { items: Set<number>; sum: number; n: number }>();
  items.forEach((it, i) => {
    if (it.annotations.length < 2) return;
    it.annotations.forEach((a, j) => {
      const e = acc.get(a.annotator) ?? { items: new Set<number>(), sum: 0, n: 0 };
      e.items.add(i);
      for (const c of controls) {
        const answer = c.answers[i]![j]!;
        const merged = c.merged[i]!.values;
        if (!answered(c.answers[i]!)) continue;
        e.sum += similarity(c.spec, merged, answer);
        e.n++;
      }
      acc.set(a.annotator, e);
    });
  });
  const reliability = meanMaps(reliabilities);
  return [...acc]
    .sort(([x], [y]) => compareIds(x, y))
    .map(([annotator, e]) => ({
      annotator,
      items: e.items.size,
      agreementWithConsensus: e.n ? e.sum / e.n : 1,
      ...(reliability?.has(annotator) ? { reliability: reliability.get(annotator)! } : {}),
    }));
}

function meanMaps(maps: (Map<Id, number> | undefined)[]): Map<Id, number> | undefined {
  const present = maps.filter((m): m is Map<Id, number> => m !== undefined);
  if (!present.length) return undefined;
  const sums = new Map<Id, { s: number; n: number }>();
  for (const m of present) {
    for (const [k, v] of m) {
      const e = sums.get(k) ?? { s: 0, n: 0 };
      e.s += v;
      e.n++;
      sums.set(k, e);
    }
  }
  return new Map([...sums].map(([k, e]) => [k, e.s / e.n]));
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
