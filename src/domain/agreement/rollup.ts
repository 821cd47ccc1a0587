/**
 * Agreement kept as items finish: what one finished item adds to a workflow's agreement sums, and
 * the workflow report read back from those sums. Pure (no I/O); src/workflows/consensus.ts stores
 * the sums (migrations/0020_overlap.sql) and GET /api/workflows/:id/agreement reads them.
 *
 * The sums are exact for what they serve, so a read costs the number of controls, labels and
 * annotator pairs, never the number of items:
 *  - Krippendorff's alpha (nominal for choices, interval for ratings and numbers) depends on the
 *    data only through the coincidence matrix o_ck, a sum over units (Krippendorff, "Computing
 *    Krippendorff's Alpha-Reliability", 2011, section C): each item adds its unit's coincidences.
 *    Multi-choice controls add one binary unit per label (chosen / not), as workflow.ts pools them.
 *    Regions and free text have no finite value set: their alpha needs every pair of answers
 *    across items, so the report gives their mean item agreement and pairwise agreement instead
 *    (alpha null, metric 'distance').
 *  - Cohen's kappa of a pair depends only on their joint label counts, and through them only on
 *    three totals (kappa.ts KappaTotals), which the read sums in SQL: one row per pair leaves the
 *    database, not one per pair and label combination.
 *  - Pairwise and per-annotator agreement are means: a count and a sum.
 */
import { resultsByControl, strings } from '../gold-scoring.ts';
import { controlValues, type ControlKind, type ControlSpec } from './controls.ts';
import { cohenKappaFromTotals, kappaTotals, type KappaTotals } from './kappa.ts';
import { alphaFromCoincidences, CoincidenceMatrix, SCALE, type Metric, type Value } from './krippendorff.ts';
import { similarity } from './merge.ts';
import type { ConsensusMethod } from './consensus.ts';
import { analyzeAgreement, NO_LABEL, similarityMatrix, type AnalysisOptions, type ItemAnnotations, type ItemOutcome } from './workflow.ts';

/**
 * The agreement_controls row (from_name '') that sums whole items: items scored (two or more
 * answers) and their item agreement (the mean over the controls anyone answered).
 */
export const ITEM_ROW = '';

/** What one finished item adds to its workflow's sums. */
export interface ItemContribution {
  outcome: ItemOutcome;
  /** How its choices were merged: 'dawid-skene' when a control was decided on a stored fit. */
  method: ConsensusMethod;
  controls: { fromName: string; type: string; agreement: number }[];
  /** o_ck increments (unscaled), per control; multi-choice labels as `<fromName>\u0000<label>`. */
  coincidences: { fromName: string; a: string; b: string; o: number }[];
  /** One per pair of the item's annotators (a < b) and answered control. */
  pairs: { fromName: string; a: number; b: number; similarity: number; labels?: [string, string] }[];
  /** One per annotator: answered controls and summed similarity to the consensus. */
  annotators: { annotator: number; answers: number; similaritySum: number }[];
}

/** The alpha metric a control kind is measured with (null: no finite value set, see above). */
export function metricFor(kind: ControlKind): Metric | null {
  if (kind === 'single-choice' || kind === 'multi-choice') return 'nominal';
  if (kind === 'rating' || kind === 'number') return 'interval';
  return null;
}

const singleLabel = (values: { choices?: unknown }[]) => strings(values[0]?.choices)[0] ?? NO_LABEL;
const LABEL_SEP = '\u0000';
/** Multi-choice: the row (value_a = value_b = '*') counting the control's pairable values. */
const ALL = '*';

function numberOf(spec: ControlSpec, values: Record<string, unknown>[]): string | null {
  const x = Number(values[0]?.[spec.kind]);
  return values.length && Number.isFinite(x) ? String(x) : null;
}

/** One unit's coincidences (unscaled), as CoincidenceMatrix.addUnit counts them. */
function unitCoincidences(values: (string | null)[]): [string, string, number][] {
  const cm = new CoincidenceMatrix().addUnit(values);
  return cm.entries().map(([c, k, o]) => [String(c), String(k), o]);
}

/**
 * The consensus of one item whose answers are complete (workflow.ts's analysis of this item alone:
 * choices by majority, or by one E-step on the control's stored Dawid–Skene fit in
 * `opts.choiceFits`; numbers by median, regions by majority clusters, text by medoid) and what
 * it adds to the workflow's sums. Annotator ids must be numbers.
 */
export function itemContribution(item: ItemAnnotations, specs: readonly ControlSpec[], opts: Pick<AnalysisOptions, 'choiceFits'> = {}): ItemContribution {
  const analysis = analyzeAgreement([item], specs, opts);
  const outcome = analysis.items[0]!;
  const method: ConsensusMethod = analysis.controls.some((c) => c.method === 'dawid-skene') ? 'dawid-skene' : 'majority';
  const grouped = item.annotations.map((a) => resultsByControl(a.skipped ? [] : a.result));
  const ids = item.annotations.map((a) => Number(a.annotator));
  const out: ItemContribution = { outcome, method, controls: [], coincidences: [], pairs: [], annotators: [] };
  const m = item.annotations.length;

  for (const spec of specs) {
    const answers = grouped.map((g) => controlValues(g, spec));
    if (!answers.some((a) => a.length)) continue;
    const control = outcome.controls.find((c) => c.fromName === spec.fromName);
    if (m >= 2 && control?.agreement != null) out.controls.push({ fromName: spec.fromName, type: spec.type, agreement: control.agreement });
    if (m < 2) continue;

    if (spec.kind === 'single-choice') {
      for (const [a, b, o] of unitCoincidences(answers.map(singleLabel))) out.coincidences.push({ fromName: spec.fromName, a, b, o });
    } else if (spec.kind === 'rating' || spec.kind === 'number') {
      for (const [a, b, o] of unitCoincidences(answers.map((v) => numberOf(spec, v)))) out.coincidences.push({ fromName: spec.fromName, a, b, o });
    } else if (spec.kind === 'multi-choice') {
      const key = spec.type === 'taxonomy' ? 'taxonomy' : 'choices';
      const sets = answers.map((values) => new Set(values.flatMap((v) => strings(v[key]))));
      // The control's pairable values: a label nobody chose here still had a unit of m "not chosen".
      out.coincidences.push({ fromName: spec.fromName, a: ALL, b: ALL, o: m });
      for (const label of new Set(sets.flatMap((s) => [...s]))) {
        for (const [a, b, o] of unitCoincidences(sets.map((s) => (s.has(label) ? '1' : '0')))) {
          out.coincidences.push({ fromName: `${spec.fromName}${LABEL_SEP}${label}`, a, b, o });
        }
      }
    }

    const sims = similarityMatrix(spec, answers);
    for (let i = 0; i < m; i++) {
      for (let j = i + 1; j < m; j++) {
        if (ids[i] === ids[j]) continue;
        const [x, y] = ids[i]! < ids[j]! ? [i, j] : [j, i];
        const pair: ItemContribution['pairs'][number] = { fromName: spec.fromName, a: ids[x]!, b: ids[y]!, similarity: sims[i * m + j]! };
        if (spec.kind === 'single-choice') pair.labels = [singleLabel(answers[x]!), singleLabel(answers[y]!)];
        out.pairs.push(pair);
      }
    }
  }
  if (m >= 2 && outcome.agreement !== null) out.controls.push({ fromName: ITEM_ROW, type: 'item', agreement: outcome.agreement });
  if (m >= 2) {
    const withMerged = agreementWithMerged(item.annotations, specs, outcome.result);
    ids.forEach((annotator, i) => out.annotators.push({ annotator, ...withMerged[i]! }));
  }
  return out;
}

/**
 * Each annotation's agreement with an item's merged result, the figure "agreement with the
 * consensus" sums: per annotation, the controls it is compared on (those that at least one of the
 * item's annotations answered; a skip answers each with "no label") and its summed similarity
 * (0..1 each, the gold scorer's rule) to the merged values of those controls. Its agreement with
 * the consensus is similaritySum ÷ answers (none when answers is 0). Same order as `annotations`.
 */
export function agreementWithMerged(
  annotations: ItemAnnotations['annotations'],
  specs: readonly ControlSpec[],
  merged: readonly { from_name: string; value: unknown }[],
): { answers: number; similaritySum: number }[] {
  const grouped = annotations.map((a) => resultsByControl(a.skipped ? [] : a.result));
  const out = annotations.map(() => ({ answers: 0, similaritySum: 0 }));
  for (const spec of specs) {
    const answers = grouped.map((g) => controlValues(g, spec));
    if (!answers.some((a) => a.length)) continue;
    const values = merged.filter((r) => r.from_name === spec.fromName).map((r) => r.value as Record<string, unknown>);
    answers.forEach((answer, i) => {
      out[i]!.answers++;
      out[i]!.similaritySum += similarity(spec, values, answer);
    });
  }
  return out;
}

/**
 * Kappa totals per pair from the joint label counts (agreement_pair_labels rows): the same sums
 * consensus.ts's SQL reads, for sums kept in memory.
 */
export function pairKappaTotals(rows: readonly { fromName: string; a: number; b: number; labelA: string; labelB: string; n: number }[]): WorkflowSums['pairKappa'] {
  const byPair = new Map<string, { fromName: string; a: number; b: number; counts: [string, string, number][] }>();
  for (const r of rows) {
    const key = JSON.stringify([r.fromName, r.a, r.b]);
    let e = byPair.get(key);
    if (!e) byPair.set(key, (e = { fromName: r.fromName, a: r.a, b: r.b, counts: [] }));
    e.counts.push([r.labelA, r.labelB, r.n]);
  }
  return [...byPair.values()].map((e) => ({ fromName: e.fromName, a: e.a, b: e.b, ...kappaTotals(e.counts) }));
}

/** The stored sums of one workflow, as read from the rollup tables. */
export interface WorkflowSums {
  controls: { fromName: string; type: string; items: number; agreementSum: number }[];
  coincidences: { fromName: string; a: string; b: string; o: number }[];
  pairs: { fromName: string; a: number; b: number; items: number; similaritySum: number }[];
  /**
   * Per pair and single-choice control, the totals Cohen's kappa needs (kappa.ts KappaTotals), as
   * summed from agreement_pair_labels (pairKappaTotals; consensus.ts sums them in SQL).
   */
  pairKappa: ({ fromName: string; a: number; b: number } & KappaTotals)[];
  annotators: { annotator: number; items: number; answers: number; similaritySum: number }[];
}

export interface AgreementReport {
  itemsScored: number;
  meanAgreement: number | null;
  controls: {
    fromName: string;
    type: string;
    kind: ControlKind;
    itemsScored: number;
    meanAgreement: number | null;
    alpha: { value: number | null; metric: Metric | 'distance'; observedDisagreement: number; expectedDisagreement: number; pairableValues: number };
    /** Per label: coincidences with each other label (single choice); alpha and times chosen (multi-choice). */
    labels: { label: string; with?: Record<string, number>; alpha?: number | null }[];
    pairs: { a: number; b: number; items: number; agreement: number; kappa: number | null }[];
  }[];
  annotators: { annotatorId: number; items: number; agreementWithConsensus: number | null }[];
}

function matrixOf(rows: { a: string; b: string; o: number }[], numeric: boolean): CoincidenceMatrix {
  const cm = new CoincidenceMatrix();
  for (const r of rows) {
    const c: Value = numeric ? Number(r.a) : r.a;
    const k: Value = numeric ? Number(r.b) : r.b;
    let row = cm.o.get(c);
    if (!row) cm.o.set(c, (row = new Map()));
    row.set(k, (row.get(k) ?? 0) + r.o * SCALE);
  }
  return cm;
}

/**
 * The workflow report from its sums. `specs` give each control's kind (from the labeling config);
 * a control with sums but no spec (a changed config) is reported with the kind its type implies.
 */
export function agreementReport(sums: WorkflowSums, specs: readonly ControlSpec[], kindOf: (type: string) => ControlKind): AgreementReport {
  const specByName = new Map(specs.map((s) => [s.fromName, s]));
  // Linear in the rows given (a quadratic copy here once cost more than the whole read).
  const group = <T extends { fromName: string }>(rows: T[]) => {
    const m = new Map<string, T[]>();
    for (const r of rows) {
      const list = m.get(r.fromName);
      if (list) list.push(r);
      else m.set(r.fromName, [r]);
    }
    return m;
  };
  const coincidences = group(sums.coincidences);
  const pairs = group(sums.pairs);
  const pairKappa = group(sums.pairKappa);
  const whole = sums.controls.find((c) => c.fromName === ITEM_ROW);
  const controls = [...sums.controls].filter((c) => c.fromName !== ITEM_ROW).sort((x, y) => (x.fromName < y.fromName ? -1 : 1)).map((c) => {
    const kind = specByName.get(c.fromName)?.kind ?? kindOf(c.type);
    const metric = metricFor(kind);
    const labels: AgreementReport['controls'][number]['labels'] = [];
    let alpha: AgreementReport['controls'][number]['alpha'] = { value: null, metric: 'distance', observedDisagreement: 0, expectedDisagreement: 0, pairableValues: 0 };
    if (metric && kind !== 'multi-choice') {
      const cm = matrixOf(coincidences.get(c.fromName) ?? [], metric === 'interval');
      const r = alphaFromCoincidences(cm, metric);
      alpha = { value: r.alpha, metric, observedDisagreement: r.observedDisagreement, expectedDisagreement: r.expectedDisagreement, pairableValues: r.pairableValues };
      if (kind === 'single-choice') {
        for (const [label, row] of [...cm.o].sort(([x], [y]) => (String(x) < String(y) ? -1 : 1))) {
          labels.push({ label: String(label), with: Object.fromEntries([...row].map(([k, o]) => [String(k), o / SCALE])) });
        }
      }
    } else if (kind === 'multi-choice') {
      const pooled: { a: string; b: string; o: number }[] = [];
      const prefix = `${c.fromName}${LABEL_SEP}`;
      const total = (coincidences.get(c.fromName) ?? []).reduce((t, r) => t + (r.a === ALL ? r.o : 0), 0);
      for (const [name, seen] of [...coincidences].filter(([n]) => n.startsWith(prefix)).sort(([x], [y]) => (x < y ? -1 : 1))) {
        // Units where nobody chose the label are all "not chosen": m coincidences of (0, 0) each.
        const rows = [...seen, { a: '0', b: '0', o: total - seen.reduce((t, r) => t + r.o, 0) }];
        pooled.push(...rows);
        labels.push({ label: name.slice(prefix.length), alpha: alphaFromCoincidences(matrixOf(rows, false), 'nominal').alpha });
      }
      const r = alphaFromCoincidences(matrixOf(pooled, false), 'nominal');
      alpha = { value: r.alpha, metric: 'nominal', observedDisagreement: r.observedDisagreement, expectedDisagreement: r.expectedDisagreement, pairableValues: r.pairableValues };
    }
    const kappaOf = new Map((pairKappa.get(c.fromName) ?? []).map((k) => [`${k.a},${k.b}`, k]));
    return {
      fromName: c.fromName,
      type: c.type,
      kind,
      itemsScored: c.items,
      meanAgreement: c.items ? c.agreementSum / c.items : null,
      alpha,
      labels,
      pairs: (pairs.get(c.fromName) ?? [])
        .sort((p, q) => p.a - q.a || p.b - q.b)
        .map((p) => ({
          a: p.a,
          b: p.b,
          items: p.items,
          agreement: p.items ? p.similaritySum / p.items : 0,
          kappa: kind === 'single-choice' ? cohenKappaFromTotals(kappaOf.get(`${p.a},${p.b}`) ?? { items: 0, same: 0, cross: 0 }).kappa : null,
        })),
    };
  });
  return {
    itemsScored: whole?.items ?? 0,
    meanAgreement: whole?.items ? whole.agreementSum / whole.items : null,
    controls,
    annotators: [...sums.annotators]
      .sort((x, y) => x.annotator - y.annotator)
      .map((a) => ({ annotatorId: a.annotator, items: a.items, agreementWithConsensus: a.answers ? a.similaritySum / a.answers : null })),
  };
}
