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
 * generated truth (Dawid–Skene vs the majority vote). Phase 2 (perItem): the cost of each item's
 * consensus and rollup contribution as it finishes (by majority, and by one E-step on the stored
 * Dawid–Skene fit the reconciler's consensus-fit step makes, with that fit's time), and the report read back from the summed
 * rollups (p50/p99 of 200 reads). HTTP: the summed rollups written to a fresh database (the rows
 * consensus.ts's upserts would hold after these 100,000 items, with the items' work_items and
 * item_consensus rows beside them) behind a real `fleet serve` process, and the p99 of
 * GET /api/workflows/:id/agreement over loopback (target < 200 ms) against GET /api/health in the
 * same run: with the rollups unchanged between reads (the kept report is served), and with an item
 * finishing before every read (every read goes to the rollups); the report over HTTP is checked
 * against the in-memory one. Figures only: nothing here
 * asserts a time.
 */
import { resultsByControl, strings } from '../../src/domain/gold-scoring.ts';
import { choiceConsensus, fitChoices } from '../../src/domain/agreement/consensus.ts';
import type { ControlSpec } from '../../src/domain/agreement/controls.ts';
import { krippendorffAlpha, mulberry32 } from '../../src/domain/agreement/krippendorff.ts';
import { analyzeAgreement, type ItemAnnotations } from '../../src/domain/agreement/workflow.ts';
import { kindOf } from '../../src/domain/agreement/controls.ts';
import { agreementReport, itemContribution, pairKappaTotals, type ItemContribution, type WorkflowSums } from '../../src/domain/agreement/rollup.ts';
import { sql } from 'kysely';
import type { Db } from '../../src/db/index.ts';
import { load, processMemoryMb, ratio, rssMb, stats } from './lib.ts';
import { startFleetProcess } from './support/fleet-process.ts';

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
        // Numeric ids, as annotators' ids are (the rollups key pairs by them).
        return { annotator: w + 1, result, skipped: random() < 0.01 };
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
  // Phase 2: each item as it finishes (consensus + what it adds to the rollups), then the report
  // read back from the sums (the pure part of GET /api/workflows/:id/agreement).
  const perItem = time(() => items.map((it) => itemContribution(it, SPECS)));
  const sums = sumContributions(perItem.value);
  // The service's Dawid–Skene: the reconciler's fit (consensus-fit.ts, pure part), then each item
  // as it finishes with one E-step on the stored fit (baseline: the same per item by majority).
  const storedFitRun = time(() => fitChoices(labels, { noLabel: '' }));
  const choiceFits = new Map(storedFitRun.value ? [['label', storedFitRun.value.fit]] : []);
  const perItemOnFit = time(() => items.map((it) => itemContribution(it, SPECS, { choiceFits })));
  const reads: number[] = [];
  for (let i = 0; i < 200; i++) reads.push(time(() => agreementReport(sums, SPECS, (t) => kindOf(t))).ms);
  reads.sort((a, b) => a - b);

  const http = await agreementOverHttp(sums, agreementReport(sums, SPECS, (t) => kindOf(t)));

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
    perItem: {
      totalMs: perItem.ms,
      perItemMs: Math.round((perItem.ms * 1000) / items.length) / 1000,
      ratioToWholeAnalysis: ratio(perItem.ms, full.ms),
      rollupRows: sums.coincidences.length + sums.pairs.length + sums.pairLabels.length + sums.annotators.length + sums.controls.length,
      onStoredFitTotalMs: perItemOnFit.ms,
      onStoredFitRatioToMajority: ratio(perItemOnFit.ms, perItem.ms),
      onStoredFitMethod: perItemOnFit.value[0]?.method,
      storedFitMs: storedFitRun.ms,
      storedFitIterations: storedFitRun.value?.iterations,
      storedFitJsonBytes: JSON.stringify(storedFitRun.value?.fit ?? null).length,
      reportFromSumsP50Ms: reads[99],
      reportFromSumsP99Ms: reads[197],
    },
    parts: {
      alphaNominalMs: alphaNominal.ms,
      dawidSkeneMs: dawidSkene.ms,
      majorityVoteMs: majority.ms,
      dawidSkeneRatioToMajority: ratio(dawidSkene.ms, majority.ms),
      alphaNominalRatioToBaseline: ratio(alphaNominal.ms, baseline.ms),
    },
    http,
    consensusAccuracy: {
      dawidSkene: accuracyOf((i) => dsDecisions.get(i)?.label),
      majority: accuracyOf((i) => majority.value.get(i)),
      perItemOnStoredFit: accuracyOf((i) => strings((perItemOnFit.value[i]!.outcome.result[0]?.value as { choices?: unknown } | undefined)?.choices)[0]),
    },
    rssMb: rssMb(),
  };
  return report;
}

const CONFIG_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single">${CLASSES.map((c) => `<Choice value="${c}"/>`).join('')}</Choices>
  <RectangleLabels name="box" toName="image"><Label value="Object"/></RectangleLabels>
</View>`;

/** Inserts `rows` in chunks through unnest (one statement per chunk). */
async function insertRows(db: Db, table: string, columns: [string, string][], rows: unknown[][]) {
  for (let at = 0; at < rows.length; at += 5_000) {
    const chunk = rows.slice(at, at + 5_000);
    const arrays = columns.map(([, type], c) => sql`${chunk.map((r) => r[c])}::${sql.raw(type)}[]`);
    await sql`INSERT INTO ${sql.table(table)} (${sql.join(columns.map(([name]) => sql.ref(name)))})
      SELECT * FROM unnest(${sql.join(arrays)})`.execute(db);
  }
}

/**
 * The workflow's rollups at 100,000 finished items in PostgreSQL, read through the HTTP API of a
 * real `fleet serve` process: p50/p99 of GET /api/workflows/:id/agreement, sequential and with 4
 * concurrent clients, against GET /api/health in the same run.
 */
async function agreementOverHttp(sums: WorkflowSums & { pairLabels: PairLabelRow[] }, inMemory: ReturnType<typeof agreementReport>) {
  const seedStarted = performance.now();
  const fleet = await startFleetProcess({}, async ({ handle: { db } }) => {
    await sql`INSERT INTO labeling_configs (name, config_xml) VALUES ('bench', ${CONFIG_XML})`.execute(db);
    await sql`INSERT INTO workflows (name, labeling_config_id, s3_source_path, s3_export_path, overlap)
      VALUES ('bench', 1, 'in/', 'out/', ${OVERLAP})`.execute(db);
    await sql`INSERT INTO annotators (name, email, subdomain)
      SELECT 'Annotator ' || g, 'a' || g || '@bench.local', 'a-' || g FROM generate_series(1, ${POOL}) g`.execute(db);
    // The finished items beside the rollups (the route reads neither; they make the tables real).
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority, status)
      SELECT 1, 'img/' || g || '.png', 'catalog', 2, 'done' FROM generate_series(1, ${ITEMS}) g`.execute(db);
    await sql`INSERT INTO item_consensus (work_item_id, workflow_id, image_key, agreement, confidence, method, result, answers, controls, outcome)
      SELECT id, 1, image_key, 1, 1, 'majority', '[]', '[]', '[]', 'accepted' FROM work_items`.execute(db);
    await insertRows(db, 'agreement_controls', [['workflow_id', 'int'], ['from_name', 'text'], ['type', 'text'], ['items', 'int'], ['agreement_sum', 'float8']],
      sums.controls.map((r) => [1, r.fromName, r.type, r.items, r.agreementSum]));
    await insertRows(db, 'agreement_coincidences', [['workflow_id', 'int'], ['from_name', 'text'], ['value_a', 'text'], ['value_b', 'text'], ['o', 'float8']],
      sums.coincidences.map((r) => [1, r.fromName, r.a, r.b, r.o]));
    await insertRows(db, 'agreement_pairs', [['workflow_id', 'int'], ['from_name', 'text'], ['annotator_a', 'int'], ['annotator_b', 'int'], ['items', 'int'], ['similarity_sum', 'float8']],
      sums.pairs.map((r) => [1, r.fromName, r.a, r.b, r.items, r.similaritySum]));
    await insertRows(db, 'agreement_pair_labels', [['workflow_id', 'int'], ['from_name', 'text'], ['annotator_a', 'int'], ['annotator_b', 'int'], ['label_a', 'text'], ['label_b', 'text'], ['n', 'int']],
      sums.pairLabels.map((r) => [1, r.fromName, r.a, r.b, r.labelA, r.labelB, r.n]));
    await insertRows(db, 'agreement_annotators', [['workflow_id', 'int'], ['annotator_id', 'int'], ['items', 'int'], ['answers', 'int'], ['similarity_sum', 'float8']],
      sums.annotators.map((r) => [1, r.annotator, r.items, r.answers, r.similaritySum]));
    await sql`VACUUM ANALYZE`.execute(db);
  });
  const seedSeconds = Math.round((performance.now() - seedStarted) / 100) / 10;
  try {
    let body = '';
    const get = (path: string) => async () => {
      const res = await fetch(`${fleet.base}${path}`, { headers: { cookie: fleet.cookie } });
      body = await res.text();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${body}`);
    };
    await get('/api/workflows/1/agreement')();
    const served = JSON.parse(body) as ReturnType<typeof agreementReport>;
    const close = (x: number | null | undefined, y: number | null | undefined) => (x == null || y == null ? x === y : Math.abs(x - y) < 1e-9);
    const matches =
      served.itemsScored === inMemory.itemsScored &&
      close(served.meanAgreement, inMemory.meanAgreement) &&
      served.controls.every((c, i) => close(c.alpha.value, inMemory.controls[i]!.alpha.value) && c.pairs.length === inMemory.controls[i]!.pairs.length) &&
      served.annotators.every((a, i) => close(a.agreementWithConsensus, inMemory.annotators[i]!.agreementWithConsensus));
    await get('/api/health')();
    const run = async (concurrency: number) => {
      const health = await load(get('/api/health'), { count: 2_000, concurrency, maxMs: 30_000 });
      const agreement = await load(get('/api/workflows/1/agreement'), { count: 500, concurrency, maxMs: 60_000 });
      return { health, agreement, p99RatioToHealth: ratio(agreement.p99, health.p99) };
    };
    const concurrency1 = await run(1);
    const concurrency4 = await run(4);
    // An item finished before every read (the rollups' whole-item counter moved, as a finishing
    // item moves it): no kept report can be served, every read goes to the rollups. The counter
    // is moved up and down again outside the timed read.
    const db = fleet.database.handle.db;
    const samples: number[] = [];
    const started = performance.now();
    for (let i = 0; i < 300 && performance.now() - started < 60_000; i++) {
      await sql`UPDATE agreement_controls SET items = items + ${i % 2 ? -1 : 1} WHERE workflow_id = 1 AND from_name = ''`.execute(db);
      const t0 = performance.now();
      await get('/api/workflows/1/agreement')();
      samples.push(performance.now() - t0);
    }
    const changedEveryRead = stats(samples, performance.now() - started);
    return {
      seedSeconds,
      rollupRows: {
        controls: sums.controls.length,
        coincidences: sums.coincidences.length,
        pairs: sums.pairs.length,
        pairLabels: sums.pairLabels.length,
        annotators: sums.annotators.length,
      },
      responseBytes: Buffer.byteLength(body),
      itemsScored: served.itemsScored,
      alphaLabel: served.controls.find((c) => c.fromName === 'label')?.alpha.value,
      matchesInMemoryReport: matches,
      concurrency1,
      concurrency4,
      changedEveryRead: { agreement: changedEveryRead, p99RatioToHealth: ratio(changedEveryRead.p99, concurrency1.health.p99) },
      serviceMemoryMb: processMemoryMb(fleet.pid),
    };
  } finally {
    await fleet.stop();
  }
}

/** The rollup tables' rows, summed in memory as consensus.ts's upserts sum them. */
type PairLabelRow = { fromName: string; a: number; b: number; labelA: string; labelB: string; n: number };

function sumContributions(contributions: ItemContribution[]): WorkflowSums & { pairLabels: PairLabelRow[] } {
  const add = <T>(m: Map<string, T>, key: unknown[], make: () => T, bump: (e: T) => void) => {
    const k = JSON.stringify(key);
    let e = m.get(k);
    if (!e) m.set(k, (e = make()));
    bump(e);
  };
  const controls = new Map<string, WorkflowSums['controls'][number]>();
  const co = new Map<string, WorkflowSums['coincidences'][number]>();
  const pairs = new Map<string, WorkflowSums['pairs'][number]>();
  const labels = new Map<string, { fromName: string; a: number; b: number; labelA: string; labelB: string; n: number }>();
  const people = new Map<string, WorkflowSums['annotators'][number]>();
  for (const c of contributions) {
    for (const x of c.controls) add(controls, [x.fromName], () => ({ fromName: x.fromName, type: x.type, items: 0, agreementSum: 0 }), (e) => ((e.items += 1), (e.agreementSum += x.agreement)));
    for (const x of c.coincidences) add(co, [x.fromName, x.a, x.b], () => ({ ...x, o: 0 }), (e) => (e.o += x.o));
    for (const x of c.pairs) {
      add(pairs, [x.fromName, x.a, x.b], () => ({ fromName: x.fromName, a: x.a, b: x.b, items: 0, similaritySum: 0 }), (e) => ((e.items += 1), (e.similaritySum += x.similarity)));
      if (x.labels) add(labels, [x.fromName, x.a, x.b, ...x.labels], () => ({ fromName: x.fromName, a: x.a, b: x.b, labelA: x.labels![0], labelB: x.labels![1], n: 0 }), (e) => (e.n += 1));
    }
    for (const x of c.annotators) add(people, [x.annotator], () => ({ annotator: x.annotator, items: 0, answers: 0, similaritySum: 0 }), (e) => ((e.items += 1), (e.answers += x.answers), (e.similaritySum += x.similaritySum)));
  }
  return { controls: [...controls.values()], coincidences: [...co.values()], pairs: [...pairs.values()], pairKappa: pairKappaTotals([...labels.values()]), pairLabels: [...labels.values()], annotators: [...people.values()] };
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
