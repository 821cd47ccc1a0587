/**
 * `npm run bench -- consensus`: agreement and consensus for a workflow of 100,000 items × 3
 * annotators (issue 13), pure computation (src/domain/agreement/): a single-choice control with 5
 * classes and a rectangle control with 1–3 boxes per image, answered by 3 distinct annotators of a
 * pool of 30 with accuracies 0.6–0.95 (boxes jittered by ±2 % and sometimes missed or added).
 *
 * Reported: wall time of the whole analysis (item agreement, consensus with confidence, alpha,
 * coincidences, pairwise kappa, agreement with consensus) and of its parts, each as a ratio to the
 * baseline measured in the same run: one pass that groups every annotation's results by control,
 * the least any analysis of these annotations costs. Also the consensus accuracy against the
 * generated truth (Dawid–Skene vs the majority vote). Phase 2 adds the p99 of
 * GET /api/workflows/:id/agreement. Figures only: nothing here asserts a time.
 */
import { resultsByControl } from '../../src/domain/gold-scoring.ts';
import { choiceConsensus } from '../../src/domain/agreement/consensus.ts';
import type { ControlSpec } from '../../src/domain/agreement/controls.ts';
import { krippendorffAlpha, mulberry32 } from '../../src/domain/agreement/krippendorff.ts';
import { analyzeAgreement, type ItemAnnotations } from '../../src/domain/agreement/workflow.ts';
import { ratio, rssMb } from './lib.ts';

const ITEMS = Number(process.env.BENCH_CONSENSUS_ITEMS ?? 100_000);
const OVERLAP = 3;
const POOL = 30;
const CLASSES = ['cat', 'dog', 'bird', 'fish', 'other'];
const PRIORS = [0.4, 0.25, 0.15, 0.12, 0.08];

const SPECS: ControlSpec[] = [
  { fromName: 'label', toName: 'image', type: 'choices', kind: 'single-choice' },
  { fromName: 'box', toName: 'image', type: 'rectanglelabels', kind: 'boxes' },
];

function generate() {
  const random = mulberry32(13);
  const accuracy = Array.from({ length: POOL }, (_, w) => 0.6 + (0.35 * w) / (POOL - 1));
  const truth: string[] = [];
  const items: ItemAnnotations[] = [];
  for (let i = 0; i < ITEMS; i++) {
    let r = random();
    let t = 0;
    while (t < PRIORS.length - 1 && r >= PRIORS[t]!) r -= PRIORS[t++]!;
    truth.push(CLASSES[t]!);
    const boxes = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({
      x: random() * 70,
      y: random() * 70,
      size: 10 + random() * 20,
    }));
    const annotators = new Set<number>();
    while (annotators.size < OVERLAP) annotators.add(Math.floor(random() * POOL));
    items.push({
      item: i,
      annotations: [...annotators].map((w) => {
        const label = random() < accuracy[w]! ? t : (t + 1 + Math.floor(random() * (CLASSES.length - 1))) % CLASSES.length;
        const result: object[] = [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [CLASSES[label]] } }];
        for (const b of boxes) {
          if (random() < 0.08) continue;
          const j = () => (random() - 0.5) * 4;
          result.push({
            from_name: 'box',
            to_name: 'image',
            type: 'rectanglelabels',
            value: { x: b.x + j(), y: b.y + j(), width: b.size + j(), height: b.size + j(), rotation: 0, rectanglelabels: ['Object'] },
          });
        }
        if (random() < 0.05) {
          result.push({
            from_name: 'box',
            to_name: 'image',
            type: 'rectanglelabels',
            value: { x: random() * 80, y: random() * 80, width: 10, height: 10, rotation: 0, rectanglelabels: ['Object'] },
          });
        }
        return { annotator: `annotator-${w}`, result, skipped: random() < 0.01 };
      }),
    });
  }
  return { items, truth };
}

function time<T>(fn: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = fn();
  return { ms: Math.round((performance.now() - t0) * 10) / 10, value };
}

export default async function bench() {
  const { items, truth } = generate();
  const answers = items.length * OVERLAP;

  // Baseline: one pass grouping every annotation by control (run twice; the second is reported).
  const group = () => {
    let n = 0;
    for (const it of items) for (const a of it.annotations) n += resultsByControl(a.result).size;
    return n;
  };
  group();
  const baseline = time(group);

  const labels = items.flatMap((it, i) =>
    it.annotations.map((a) => ({
      item: i,
      annotator: a.annotator,
      label: String(resultsByControl(a.result).get('label')?.values[0]?.choices ?? ''),
    })),
  );
  const alphaNominal = time(() => krippendorffAlpha(items.map((_, i) => labels.slice(i * OVERLAP, i * OVERLAP + OVERLAP).map((l) => l.label)), 'nominal'));
  const dawidSkene = time(() => choiceConsensus(labels, { noLabel: '' }));
  const majority = time(() => majorityOnly(labels));
  const full = time(() => analyzeAgreement(items, SPECS));

  const accuracyOf = (decide: (i: number) => string | undefined) => truth.filter((t, i) => decide(i) === t).length / truth.length;
  const dsDecisions = dawidSkene.value.items;
  const report = {
    items: items.length,
    annotators: POOL,
    overlap: OVERLAP,
    answers,
    baselineGroupResultsMs: baseline.ms,
    analysis: {
      totalMs: full.ms,
      perItemUs: Math.round((full.ms * 1000) / items.length) / 1000,
      ratioToBaseline: ratio(full.ms, baseline.ms),
      alphaLabel: full.value.controls[0]!.alpha.value,
      alphaBoxes: full.value.controls[1]!.alpha.value,
      alphaBoxesSampled: full.value.controls[1]!.alpha.sampled,
      consensusMethod: full.value.controls[0]!.method,
      meanItemAgreement: full.value.meanAgreement,
    },
    parts: {
      alphaNominalMs: alphaNominal.ms,
      dawidSkeneMs: dawidSkene.ms,
      majorityVoteMs: majority.ms,
      dawidSkeneRatioToMajority: ratio(dawidSkene.ms, majority.ms),
      alphaNominalRatioToBaseline: ratio(alphaNominal.ms, baseline.ms),
    },
    consensusAccuracy: {
      dawidSkene: accuracyOf((i) => dsDecisions.get(i)?.label),
      majority: accuracyOf((i) => majority.value.get(i)),
    },
    rssMb: rssMb(),
  };
  return report;
}

/** Plain majority vote (ties to the first label in order): the baseline Dawid–Skene is compared with. */
function majorityOnly(labels: { item: number; label: string }[]): Map<number, string> {
  const votes = new Map<number, Map<string, number>>();
  for (const { item, label } of labels) {
    const m = votes.get(item) ?? new Map<string, number>();
    m.set(label, (m.get(label) ?? 0) + 1);
    votes.set(item, m);
  }
  const out = new Map<number, string>();
  for (const [item, m] of votes) out.set(item, [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0]);
  return out;
}
