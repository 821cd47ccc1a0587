/**
 * Rollups (issue 13 phase 2): summing what each finished item adds gives the same workflow
 * figures as analysing every annotation at once (workflow.ts, checked against the PyPI packages).
 */
import { describe, expect, it } from 'vitest';
import { controlsFromConfig, kindOf } from '../../src/domain/agreement/controls.ts';
import { cohenKappa, cohenKappaFromCounts } from '../../src/domain/agreement/kappa.ts';
import { mulberry32 } from '../../src/domain/agreement/krippendorff.ts';
import { agreementReport, itemContribution, ITEM_ROW, pairKappaTotals, type WorkflowSums } from '../../src/domain/agreement/rollup.ts';
import { analyzeAgreement, type ItemAnnotations } from '../../src/domain/agreement/workflow.ts';
import { checkLabelingConfig } from '../../src/domain/labeling-config.ts';

const CONFIG = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="cat"/><Choice value="dog"/><Choice value="bird"/></Choices>
  <Choices name="tags" toName="image" choice="multiple"><Choice value="a"/><Choice value="b"/></Choices>
  <Rating name="score" toName="image" maxRating="5"/>
</View>`;

function specs() {
  const r = checkLabelingConfig(CONFIG);
  if (!r.ok) throw new Error(r.error.message);
  return controlsFromConfig(r.config);
}

/** Random items: 3 of 6 annotators each, skewed labels, occasional skips and missing controls. */
function randomItems(n: number, seed: number): ItemAnnotations[] {
  const rnd = mulberry32(seed);
  const labels = ['cat', 'dog', 'bird'];
  return Array.from({ length: n }, (_, item) => {
    const truth = labels[Math.floor(rnd() * 3)]!;
    const people = [1, 2, 3, 4, 5, 6].sort(() => rnd() - 0.5).slice(0, 3);
    return {
      item,
      annotations: people.map((annotator) => {
        if (rnd() < 0.05) return { annotator, result: [], skipped: true };
        const result: unknown[] = [
          { from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [rnd() < 0.75 ? truth : labels[Math.floor(rnd() * 3)]!] } },
          { from_name: 'score', to_name: 'image', type: 'rating', value: { rating: 1 + Math.floor(rnd() * 5) } },
        ];
        if (rnd() < 0.7) result.push({ from_name: 'tags', to_name: 'image', type: 'choices', value: { choices: ['a', 'b'].filter(() => rnd() < 0.5) } });
        return { annotator, result };
      }),
    };
  });
}

/** The sums as the database keeps them, built from each item's contribution. */
function sumsOf(items: ItemAnnotations[]): WorkflowSums {
  const s = specs();
  const controls = new Map<string, WorkflowSums['controls'][number]>();
  const co = new Map<string, WorkflowSums['coincidences'][number]>();
  const pairs = new Map<string, WorkflowSums['pairs'][number]>();
  const labels = new Map<string, { fromName: string; a: number; b: number; labelA: string; labelB: string; n: number }>();
  const annotators = new Map<number, WorkflowSums['annotators'][number]>();
  for (const item of items) {
    const c = itemContribution(item, s);
    for (const x of c.controls) {
      const e = controls.get(x.fromName) ?? { fromName: x.fromName, type: x.type, items: 0, agreementSum: 0 };
      e.items++;
      e.agreementSum += x.agreement;
      controls.set(x.fromName, e);
    }
    for (const x of c.coincidences) {
      const k = JSON.stringify([x.fromName, x.a, x.b]);
      const e = co.get(k) ?? { ...x, o: 0 };
      e.o += x.o;
      co.set(k, e);
    }
    for (const x of c.pairs) {
      const k = JSON.stringify([x.fromName, x.a, x.b]);
      const e = pairs.get(k) ?? { fromName: x.fromName, a: x.a, b: x.b, items: 0, similaritySum: 0 };
      e.items++;
      e.similaritySum += x.similarity;
      pairs.set(k, e);
      if (x.labels) {
        const lk = JSON.stringify([x.fromName, x.a, x.b, ...x.labels]);
        const l = labels.get(lk) ?? { fromName: x.fromName, a: x.a, b: x.b, labelA: x.labels[0], labelB: x.labels[1], n: 0 };
        l.n++;
        labels.set(lk, l);
      }
    }
    for (const x of c.annotators) {
      const e = annotators.get(x.annotator) ?? { annotator: x.annotator, items: 0, answers: 0, similaritySum: 0 };
      e.items++;
      e.answers += x.answers;
      e.similaritySum += x.similaritySum;
      annotators.set(x.annotator, e);
    }
  }
  return { controls: [...controls.values()], coincidences: [...co.values()], pairs: [...pairs.values()], pairKappa: pairKappaTotals([...labels.values()]), annotators: [...annotators.values()] };
}

describe('agreement rollups', () => {
  it('Cohen kappa from counts equals kappa from pairs', () => {
    const pairs: [string, string][] = [['a', 'a'], ['a', 'b'], ['b', 'b'], ['b', 'b'], ['c', 'a'], ['a', 'a']];
    expect(cohenKappaFromCounts([['a', 'a', 2], ['a', 'b', 1], ['b', 'b', 2], ['c', 'a', 1]])).toEqual(cohenKappa(pairs));
  });

  it('summed item contributions give the whole-workflow alpha, pairs, kappa and item agreement', () => {
    for (const seed of [1, 2, 3]) {
      const items = randomItems(150, seed);
      const whole = analyzeAgreement(items, specs());
      const sums = sumsOf(items);
      const report = agreementReport(sums, specs(), (t) => kindOf(t));
      expect(report.itemsScored).toBe(whole.itemsScored);
      expect(report.meanAgreement!).toBeCloseTo(whole.meanAgreement!, 10);
      for (const name of ['label', 'score', 'tags']) {
        const w = whole.controls.find((c) => c.fromName === name)!;
        const r = report.controls.find((c) => c.fromName === name)!;
        expect(r.alpha.metric, name).toBe(w.alpha.metric);
        expect(r.alpha.value!, name).toBeCloseTo(w.alpha.value!, 10);
        expect(r.pairs.map((p) => [p.a, p.b, p.items])).toEqual(w.pairs.map((p) => [p.a, p.b, p.items]));
        r.pairs.forEach((p, i) => {
          expect(p.agreement).toBeCloseTo(w.pairs[i]!.agreement, 10);
          if (name === 'label') expect(p.kappa!).toBeCloseTo(w.pairs[i]!.kappa!, 10);
        });
      }
      // Per-label coincidences of the single-choice control, and multi-choice per-label alpha.
      const label = whole.controls.find((c) => c.fromName === 'label')!;
      const rl = report.controls.find((c) => c.fromName === 'label')!;
      for (const row of label.coincidences!) {
        const mine = rl.labels.find((l) => l.label === row.label)!;
        for (const [k, o] of Object.entries(row.with)) expect(mine.with![k]!).toBeCloseTo(o, 10);
      }
      const tags = whole.controls.find((c) => c.fromName === 'tags')!;
      const rt = report.controls.find((c) => c.fromName === 'tags')!;
      expect(rt.labels.map((l) => l.label)).toEqual(tags.labels!.map((l) => l.label));
      rt.labels.forEach((l, i) => expect(l.alpha!).toBeCloseTo(tags.labels![i]!.alpha!, 10));
      expect(sums.controls.some((c) => c.fromName === ITEM_ROW)).toBe(true);
    }
  }, 60_000);

  it('each annotator: agreement with their items’ consensus (majority per item)', () => {
    const items = randomItems(50, 9);
    const report = agreementReport(sumsOf(items), specs(), (t) => kindOf(t));
    const counted = new Map<number, number>();
    for (const it of items) for (const a of it.annotations) counted.set(a.annotator as number, (counted.get(a.annotator as number) ?? 0) + 1);
    expect(report.annotators.map((a) => [a.annotatorId, a.items])).toEqual([...counted].sort(([x], [y]) => x - y));
    for (const a of report.annotators) expect(a.agreementWithConsensus!).toBeGreaterThan(0.3);
  });
});
