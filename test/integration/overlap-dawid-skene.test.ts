/**
 * Consensus weighted by reliability (issue 13): once an overlap workflow has enough finished items,
 * the reconciler's consensus-fit step stores a Dawid–Skene fit, and an item finishing afterwards
 * gets one E-step on it — a reliable annotator then outvotes two unreliable ones, where the
 * majority vote went the other way. Answers posted as Label Studio's webhooks; each batch completes
 * as completeAssignment's transaction does (status, then finishOverlap).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator } from '../../src/db/types.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { finishOverlap } from '../../src/workflows/consensus.ts';
import { fitConsensus } from '../../src/workflows/consensus-fit.ts';
import { IMAGE_CONFIG, markProvisioned, seedAnnotator, seedConfig, seedItems, seedRole, seedWorkflow, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

const choice = (c: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];
let project = 900;
let annotationId = 90_000;

async function start(assignmentId: number) {
  const lsProjectId = ++project;
  const tasks = await markProvisioned(t, assignmentId, lsProjectId);
  return { lsProjectId, byImage: new Map(tasks.map((task, i) => [task.s3ImageKey, lsProjectId * 100 + i])) };
}

async function annotate(annotator: Annotator, lsProjectId: number, lsTaskId: number, result: unknown[]) {
  const at = new Date().toISOString().replace('Z', '123Z');
  const res = await t.anonymous.json(
    'POST',
    '/api/webhook',
    {
      action: 'ANNOTATION_CREATED',
      annotation: { id: ++annotationId, result, was_cancelled: false, ground_truth: false, created_at: at, updated_at: at, lead_time: 3, task: lsTaskId, project: lsProjectId, completed_by: 1 },
      project: { id: lsProjectId, title: 'x', task_number: 1 },
      task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
    },
    webhookHeaders(t, annotator),
  );
  expect(res.status).toBe(200);
  await webhooksApplied(t);
}

async function complete(assignmentId: number) {
  await t.db.transaction().execute(async (trx) => {
    const a = await trx.updateTable('assignments').set({ status: 'completed', completedAt: new Date() }).where('id', '=', assignmentId).returningAll().executeTakeFirstOrThrow();
    await finishOverlap(trx, a);
  });
}

/** Each annotator takes a batch of the workflow's queued items, answers `label(annotator, image)`, and completes it. */
async function round(workflowId: number, people: Annotator[], label: (who: number, image: string) => string) {
  const ids: number[] = [];
  for (const [who, p] of people.entries()) {
    const r = await assignBatch(t.db, { workflowId, annotatorId: p.id });
    if (!r.ok) throw new Error(r.message);
    const b = await start(r.assignment.id);
    for (const [image, lsTaskId] of b.byImage) await annotate(p, b.lsProjectId, lsTaskId, choice(label(who, image)));
    ids.push(r.assignment.id);
  }
  for (const id of ids) await complete(id);
  return ids;
}

type Consensus = { method: string; confidence: number; result: unknown; status: string };
async function consensusOf(assignmentId: number): Promise<Consensus[]> {
  const res = await t.json('GET', `/api/assignments/${assignmentId}`);
  expect(res.status).toBe(200);
  return (res.body.tasks as { consensus: Consensus }[]).map((x) => x.consensus);
}

describe('overlap 3: Dawid–Skene once there is enough data', () => {
  it('fits at the threshold, then lets the reliable annotator outvote a 2-vs-1 majority', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t, IMAGE_CONFIG);
    const workflow = await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id, imagesPerProject: 30, shuffleImages: false, overlap: 3 });
    const people: Annotator[] = [];
    for (const i of [0, 1, 2]) people.push(await seedAnnotator(t, { roleId: role.id, name: `DS ${i}` }));
    // Gold accuracy, Dawid–Skene's starting point: the first annotator 1.0, the others 0.6.
    await t.db
      .insertInto('annotatorQuality')
      .values(people.map((p, i) => ({ annotatorId: p.id, evaluationCount: 10, scoreSum: i === 0 ? '10' : '6', needsCheck: false })))
      .onConflict((oc) => oc.column('annotatorId').doNothing())
      .execute();

    // 30 items, truth alternating cat / dog. Annotator 0 is always right; 1 and 2 are each wrong on
    // 12 items, never the same one, so every item's majority is still the truth.
    await seedItems(t, workflow.id, 30, 'ds/');
    const index = (image: string) => Number(/img-(\d+)/.exec(image)![1]);
    const truth = (i: number) => (i % 2 ? 'dog' : 'cat');
    const flip = (l: string) => (l === 'cat' ? 'dog' : 'cat');
    const first = await round(workflow.id, people, (who, image) => {
      const i = index(image);
      const wrong = (who === 1 && (i % 5 === 1 || i % 5 === 3)) || (who === 2 && (i % 5 === 2 || i % 5 === 4));
      return wrong ? flip(truth(i)) : truth(i);
    });
    // Before the fit: majority, the 2-vs-1 items at confidence 2/3.
    const before = await consensusOf(first[0]!);
    expect(before).toHaveLength(30);
    expect(before.every((c) => c.method === 'majority')).toBe(true);
    expect(before.filter((c) => c.confidence < 1).map((c) => c.confidence)).toEqual(new Array(24).fill(2 / 3));

    // The reconciler's step: 30 scored items ≥ 10 × 2 → a fit, per-annotator matrices (30 answers each ≥ 20).
    const step = await fitConsensus(t.ctx);
    expect(step.errors).toEqual([]);
    expect(step.actions).toEqual([expect.stringMatching(new RegExp(`^workflow ${workflow.id}, control label: Dawid–Skene fitted on 30 scored items \\(2 labels`))]);
    const stored = await t.db.selectFrom('consensusFits').selectAll().where('workflowId', '=', workflow.id).executeTakeFirstOrThrow();
    expect(stored).toMatchObject({ fromName: 'label', itemsFitted: 30 });
    const fit = stored.fit as { classes: string[]; confusion: Record<string, number[][]> };
    expect(fit.classes).toEqual(['cat', 'dog']);
    expect(Object.keys(fit.confusion).sort()).toEqual(people.map((p) => String(p.id)).sort());
    // Annotator 0's estimated accuracy is near 1, the others' near 0.6.
    expect(fit.confusion[String(people[0]!.id)]![0]![0]).toBeGreaterThan(0.99);
    expect(fit.confusion[String(people[1]!.id)]![0]![0]).toBeCloseTo(0.6, 1);

    // Nothing new: the next pass fits nothing (growth < 10 %).
    expect(await fitConsensus(t.ctx)).toMatchObject({ actions: [], errors: [] });

    // One more item: the reliable annotator says cat, the two unreliable ones dog.
    await seedItems(t, workflow.id, 1, 'ds2/');
    const second = await round(workflow.id, people, (who) => (who === 0 ? 'cat' : 'dog'));
    for (const id of second) {
      const [c] = await consensusOf(id);
      expect(c).toMatchObject({ status: 'accepted', method: 'dawid-skene', result: choice('cat') });
      expect(c!.confidence).toBeGreaterThan(0.99);
    }
    // Still below 10 % growth (31 < 33): no refit.
    expect(await fitConsensus(t.ctx)).toMatchObject({ actions: [], errors: [] });
  });

  it('below the threshold stores no fit, keeps the majority vote and waits for 10 % more items', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t, IMAGE_CONFIG);
    const workflow = await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id, imagesPerProject: 30, shuffleImages: false, overlap: 3 });
    const people: Annotator[] = [];
    for (const i of [0, 1, 2]) people.push(await seedAnnotator(t, { roleId: role.id, name: `Few ${i}` }));
    // 20 items over three labels: 20 ≥ 10 × 2 makes the step look, but K = 3 needs 30.
    await seedItems(t, workflow.id, 20, 'few/');
    const labels = ['cat', 'dog', 'bird'];
    await round(workflow.id, people, (who, image) => labels[(Number(/img-(\d+)/.exec(image)![1]) + (who === 2 ? 1 : 0)) % 3]!);
    const mine = (r: { actions: string[] }) => r.actions.filter((a) => a.startsWith(`workflow ${workflow.id},`));
    expect(mine(await fitConsensus(t.ctx))).toEqual([`workflow ${workflow.id}, control label: 20 scored items, too little overlap for Dawid–Skene: majority vote stays`]);
    expect(await t.db.selectFrom('consensusFits').select(['itemsFitted', 'fit']).where('workflowId', '=', workflow.id).execute()).toEqual([{ itemsFitted: 20, fit: null }]);
    expect(mine(await fitConsensus(t.ctx))).toEqual([]);
    // The next item is merged by majority: 2 vs 1.
    await seedItems(t, workflow.id, 1, 'few2/');
    const [id] = await round(workflow.id, people, (who) => (who === 0 ? 'cat' : 'dog'));
    const [c] = await consensusOf(id!);
    expect(c).toMatchObject({ method: 'majority', result: choice('dog'), confidence: 2 / 3 });
    // 22 ≥ 1.1 × 20: checked again (still too few).
    await seedItems(t, workflow.id, 1, 'few3/');
    await round(workflow.id, people, () => 'cat');
    expect(mine(await fitConsensus(t.ctx))).toEqual([`workflow ${workflow.id}, control label: 22 scored items, too little overlap for Dawid–Skene: majority vote stays`]);
  });
});
