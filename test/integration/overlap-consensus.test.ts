/**
 * Overlap 3 with three annotators (issue 13), answers posted as Label Studio's webhooks: no
 * annotator gets an item twice, items wait for all three answers, agreeing items flow downstream
 * with the consensus, disagreeing ones reach the adjudication workflow with every annotator's
 * result as a prediction, and the adjudicator's answer then flows downstream. Batch completion's
 * Label Studio export is the e2e tests' part; here each batch completes as completeAssignment's
 * transaction does (status, then finishOverlap).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator } from '../../src/db/types.ts';
import { cohenKappa } from '../../src/domain/agreement/kappa.ts';
import { configNames } from '../../src/domain/task-data.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { finishOverlap, predictionsFor } from '../../src/workflows/consensus.ts';
import { exportLines } from '../../src/workflows/export.ts';
import { IMAGE_CONFIG, markProvisioned, seedAnnotator, seedConfig, seedItems, seedRole, seedWorkflow, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

const choice = (c: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];
let project = 500;
let annotationId = 70_000;

/** Starts a batch as provisioning would: in progress, with Label Studio ids; returns its tasks by image. */
async function start(assignmentId: number) {
  const lsProjectId = ++project;
  const tasks = await markProvisioned(t, assignmentId, lsProjectId);
  return { lsProjectId, byImage: new Map(tasks.map((task, i) => [task.s3ImageKey, lsProjectId * 100 + i])) };
}

/** ANNOTATION_CREATED as Label Studio posts it. */
async function annotate(annotator: Annotator, lsProjectId: number, lsTaskId: number, result: unknown[] | 'skip') {
  const at = new Date().toISOString().replace('Z', '123Z');
  const res = await t.anonymous.json(
    'POST',
    '/api/webhook',
    {
      action: 'ANNOTATION_CREATED',
      annotation: {
        id: ++annotationId,
        result: result === 'skip' ? [] : result,
        was_cancelled: result === 'skip',
        ground_truth: false,
        created_at: at,
        updated_at: at,
        lead_time: 3,
        task: lsTaskId,
        project: lsProjectId,
        completed_by: 1,
      },
      project: { id: lsProjectId, title: 'x', task_number: 4 },
      task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
    },
    webhookHeaders(t, annotator),
  );
  expect(res.status).toBe(200);
  await webhooksApplied(t);
}

/** The completion transaction's overlap part (src/workflows/complete.ts). */
async function complete(assignmentId: number) {
  const open = await t.db.selectFrom('assignmentTasks').select('id').where('assignmentId', '=', assignmentId).where('status', '<>', 'annotated').execute();
  expect(open).toEqual([]);
  await t.db.transaction().execute(async (trx) => {
    const a = await trx
      .updateTable('assignments')
      .set({ status: 'completed', completedAt: new Date() })
      .where('id', '=', assignmentId)
      .returningAll()
      .executeTakeFirstOrThrow();
    await finishOverlap(trx, a);
  });
}

describe('overlap 3: consensus and adjudication', () => {
  it('waits for all three, passes agreement on, sends disagreement to adjudication and its answer on', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t, IMAGE_CONFIG);
    const adjudication = await seedWorkflow(t, { labelingConfigId: config.id, imagesPerProject: 10, shuffleImages: false });
    const overlap = await seedWorkflow(t, {
      labelingConfigId: config.id,
      roleId: role.id,
      imagesPerProject: 4,
      shuffleImages: false,
      overlap: 3,
      consensusThreshold: 0.9,
      adjudicationWorkflowId: adjudication.id,
    });
    const downstream = await seedWorkflow(t, { labelingConfigId: config.id, previousWorkflowId: overlap.id, imagesPerProject: 10 });
    await seedItems(t, overlap.id, 4, 'ov/');
    const images = ['ov/img-000000.png', 'ov/img-000001.png', 'ov/img-000002.png', 'ov/img-000003.png'];
    // One after another: ids in this order (the pairs below are listed by id).
    const people: Annotator[] = [];
    for (const i of [0, 1, 2]) people.push(await seedAnnotator(t, { roleId: role.id, name: `Annotator ${i}` }));

    // Each of the three gets the four items once; asking again gives nothing.
    const batches: { id: number; annotator: Annotator; lsProjectId: number; byImage: Map<string, number> }[] = [];
    for (const p of people) {
      const r = await assignBatch(t.db, { workflowId: overlap.id, annotatorId: p.id });
      if (!r.ok) throw new Error(r.message);
      expect(r.assignment.taskCount).toBe(4);
      expect(await assignBatch(t.db, { workflowId: overlap.id, annotatorId: p.id })).toMatchObject({ ok: false, reason: 'no_items' });
      batches.push({ id: r.assignment.id, annotator: p, ...(await start(r.assignment.id)) });
    }

    // Items 0 and 1: all say cat. Item 2: cat, cat, dog. Item 3: cat, dog, skipped.
    const answers: (unknown[] | 'skip')[][] = [
      [choice('cat'), choice('cat'), choice('cat'), choice('cat')],
      [choice('cat'), choice('cat'), choice('cat'), choice('dog')],
      [choice('cat'), choice('cat'), choice('dog'), 'skip'],
    ];
    const queuedIn = async (workflowId: number) =>
      t.db.selectFrom('workItems').select(['imageKey', 'prediction', 'upstreamTaskId']).where('workflowId', '=', workflowId).orderBy('imageKey').execute();

    for (const [n, b] of batches.entries()) {
      for (const [i, image] of images.entries()) await annotate(b.annotator, b.lsProjectId, b.byImage.get(image)!, answers[n]![i]!);
      await complete(b.id);
      if (n < 2) {
        // Items wait for all three answers: nothing downstream, nothing adjudicated, not done.
        expect(await queuedIn(downstream.id)).toEqual([]);
        expect(await queuedIn(adjudication.id)).toEqual([]);
        const states = await t.db.selectFrom('workItems').select('status').where('workflowId', '=', overlap.id).execute();
        expect(states.every((s) => s.status !== 'done')).toBe(true);
      }
    }

    // Agreeing items flow downstream once each, with the consensus.
    const down = await queuedIn(downstream.id);
    expect(down.map((d) => [d.imageKey, d.prediction])).toEqual([
      [images[0], choice('cat')],
      [images[1], choice('cat')],
    ]);
    // Disagreeing ones reach adjudication with each annotator's result, named by annotator, and the consensus.
    const adj = await queuedIn(adjudication.id);
    expect(adj.map((a) => a.imageKey)).toEqual([images[2], images[3]]);
    const names = configNames(IMAGE_CONFIG);
    const p2 = predictionsFor(adj[0]!.prediction, names);
    expect(p2.map((p) => [p.model_version, p.result])).toEqual([
      [`annotator ${people[0]!.id}: Annotator 0`, choice('cat')],
      [`annotator ${people[1]!.id}: Annotator 1`, choice('cat')],
      [`annotator ${people[2]!.id}: Annotator 2`, choice('dog')],
      ['labelfleet-consensus', choice('cat')],
    ]);
    // The skipped answer has no result to show: two annotators' predictions and the consensus (dog, cat tie → first label, cat).
    expect(predictionsFor(adj[1]!.prediction, names).map((p) => p.model_version)).toEqual([
      `annotator ${people[0]!.id}: Annotator 0`,
      `annotator ${people[1]!.id}: Annotator 1`,
      'labelfleet-consensus',
    ]);
    const consensus = await t.db.selectFrom('itemConsensus').selectAll().where('workflowId', '=', overlap.id).orderBy('imageKey').execute();
    expect(consensus.map((c) => [c.imageKey, c.outcome, c.agreement, c.confidence])).toEqual([
      [images[0], 'accepted', 1, 1],
      [images[1], 'accepted', 1, 1],
      [images[2], 'adjudication', 1 / 3, 2 / 3],
      [images[3], 'adjudication', 0, 1 / 3],
    ]);
    expect((consensus[2]!.answers as { annotatorId: number }[]).map((a) => a.annotatorId)).toEqual(people.map((p) => p.id));

    // Every batch holding a seat of a finished item has its JSONL export to write again (overlap-exports.ts).
    const refresh = () => t.db.selectFrom('batchExportRefresh').select(['assignmentId', 'version']).orderBy('assignmentId').execute();
    expect(await refresh()).toEqual(batches.map((b) => ({ assignmentId: b.id, version: 1 })));

    // The workflow's agreement, from the rollups.
    const report = await t.json('GET', `/api/workflows/${overlap.id}/agreement`);
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ workflowId: overlap.id, overlap: 3, itemsScored: 4 });
    expect(report.body.meanAgreement).toBeCloseTo((1 + 1 + 1 / 3 + 0) / 4, 10);
    const label = report.body.controls.find((c: { fromName: string }) => c.fromName === 'label');
    expect(label.alpha.metric).toBe('nominal');
    expect(label.pairs.map((p: { a: number; b: number; items: number }) => [p.a, p.b, p.items])).toEqual([
      [people[0]!.id, people[1]!.id, 4],
      [people[0]!.id, people[2]!.id, 4],
      [people[1]!.id, people[2]!.id, 4],
    ]);
    // Cohen's kappa per pair, summed in SQL from the joint label counts, equals kappa of the answers themselves ('' = skipped).
    const labelsOf = [['cat', 'cat', 'cat', 'cat'], ['cat', 'cat', 'cat', 'dog'], ['cat', 'cat', 'dog', '']];
    const kappaOf = (x: number, y: number) => cohenKappa(labelsOf[x]!.map((l, i) => [l, labelsOf[y]![i]!] as const)).kappa;
    expect(label.pairs.map((p: { kappa: number }) => p.kappa)).toEqual([kappaOf(0, 1), kappaOf(0, 2), kappaOf(1, 2)]);
    expect(label.pairs[2].kappa).toBeCloseTo((0.5 - 7 / 16) / (1 - 7 / 16), 12);
    expect(report.body.annotators.map((a: { annotatorId: number; items: number }) => [a.annotatorId, a.items])).toEqual(people.map((p) => [p.id, 4]));
    expect((await t.json('GET', '/api/workflows/999999/agreement')).status).toBe(404);

    // The adjudicator labels both; their answers become the items' results and flow downstream.
    const judge = await seedAnnotator(t, { roleId: null, name: 'Judge' });
    const r = await assignBatch(t.db, { workflowId: adjudication.id, annotatorId: judge.id });
    if (!r.ok) throw new Error(r.message);
    const jb = await start(r.assignment.id);
    await annotate(judge, jb.lsProjectId, jb.byImage.get(images[2]!)!, choice('dog'));
    await annotate(judge, jb.lsProjectId, jb.byImage.get(images[3]!)!, choice('cat'));
    await complete(r.assignment.id);
    expect((await queuedIn(downstream.id)).map((d) => [d.imageKey, d.prediction])).toEqual([
      [images[0], choice('cat')],
      [images[1], choice('cat')],
      [images[2], choice('dog')],
      [images[3], choice('cat')],
    ]);
    // Adjudicated results change those batches' records again; the adjudication batch's own export has none.
    expect(await refresh()).toEqual(batches.map((b) => ({ assignmentId: b.id, version: 2 })));
    const after = await t.db.selectFrom('itemConsensus').select(['imageKey', 'outcome', 'adjudicatorId']).where('workflowId', '=', overlap.id).orderBy('imageKey').execute();
    expect(after.slice(2)).toEqual([
      { imageKey: images[2], outcome: 'adjudicated', adjudicatorId: judge.id },
      { imageKey: images[3], outcome: 'adjudicated', adjudicatorId: judge.id },
    ]);
    // The workflow's export: each annotator's record carries the item's consensus (or adjudicated) result,
    // agreement, confidence and every annotator's answer with their id.
    const lines: string[] = [];
    for await (const page of exportLines(t.db, { workflowId: overlap.id, statuses: ['completed'] })) lines.push(...page);
    const records = lines.map((l) => JSON.parse(l));
    expect(records).toHaveLength(12);
    const of = (image: string) => records.filter((r) => r.imageKey === image);
    expect(of(images[0]!).map((r) => r.annotator.id)).toEqual(people.map((p) => p.id));
    expect(of(images[0]!)[0].consensus).toMatchObject({ result: choice('cat'), outcome: 'accepted', agreement: 1, confidence: 1 });
    expect(of(images[2]!)[2].consensus).toMatchObject({ result: choice('dog'), outcome: 'adjudicated', adjudicatorId: judge.id, agreement: 1 / 3 });
    expect(of(images[2]!)[0].consensus.answers.map((a: { annotatorId: number; result: unknown }) => [a.annotatorId, a.result])).toEqual([
      [people[0]!.id, choice('cat')],
      [people[1]!.id, choice('cat')],
      [people[2]!.id, choice('dog')],
    ]);

    // A repeated completion adds nothing.
    await t.db.transaction().execute(async (trx) => {
      const a = await trx.selectFrom('assignments').selectAll().where('id', '=', batches[2]!.id).executeTakeFirstOrThrow();
      await finishOverlap(trx, a);
    });
    expect(await queuedIn(downstream.id)).toHaveLength(4);
    const n = await sql<{ n: number }>`SELECT items AS n FROM agreement_controls WHERE workflow_id = ${overlap.id} AND from_name = ''`.execute(t.db);
    expect(n.rows[0]!.n).toBe(4);
  });
});

describe('overlap 2: per-item agreement on the batch and agreement in GET /api/quality', () => {
  type Task = { id: number; s3ImageKey: string; consensus: null | Record<string, unknown> };
  const detail = async (assignmentId: number) => {
    const res = await t.json('GET', `/api/assignments/${assignmentId}`);
    expect(res.status).toBe(200);
    return new Map((res.body.tasks as Task[]).map((task) => [task.s3ImageKey, task.consensus]));
  };
  const scoreOf = async (annotatorId: number) => {
    const res = await t.json('GET', '/api/quality');
    expect(res.status).toBe(200);
    return (res.body.annotatorScores as { annotatorId: number }[]).find((s) => s.annotatorId === annotatorId);
  };

  it('shows each item waiting, then its outcome, agreement and each answer against the consensus', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t, IMAGE_CONFIG);
    const adjudication = await seedWorkflow(t, { labelingConfigId: config.id, imagesPerProject: 10, shuffleImages: false });
    const overlap = await seedWorkflow(t, {
      labelingConfigId: config.id,
      roleId: role.id,
      imagesPerProject: 4,
      shuffleImages: false,
      overlap: 2,
      consensusThreshold: 0.9,
      adjudicationWorkflowId: adjudication.id,
    });
    await seedItems(t, overlap.id, 4, 'q2/');
    const images = [0, 1, 2, 3].map((i) => `q2/img-00000${i}.png`);
    const a = await seedAnnotator(t, { roleId: role.id, name: 'Pair 0' });
    const b = await seedAnnotator(t, { roleId: role.id, name: 'Pair 1' });
    const batches = [];
    for (const p of [a, b]) {
      const r = await assignBatch(t.db, { workflowId: overlap.id, annotatorId: p.id });
      if (!r.ok) throw new Error(r.message);
      batches.push({ id: r.assignment.id, annotator: p, ...(await start(r.assignment.id)) });
    }
    // Item 0: cat, cat. Item 1: cat, dog (a tie: the consensus is cat). Item 2: dog, dog. Item 3: cat, skipped.
    const answers: (unknown[] | 'skip')[][] = [
      [choice('cat'), choice('cat'), choice('dog'), choice('cat')],
      [choice('cat'), choice('dog'), choice('dog'), 'skip'],
    ];
    for (const [n, batch] of batches.entries()) {
      for (const [i, image] of images.entries()) await annotate(batch.annotator, batch.lsProjectId, batch.byImage.get(image)!, answers[n]![i]!);
    }
    // Neither batch has completed: no answer is final yet.
    const early = await detail(batches[0]!.id);
    expect(early.get(images[0]!)).toEqual({
      itemId: expect.any(Number),
      role: 'annotator',
      overlap: 2,
      answersIn: 0,
      status: 'waiting',
      agreement: null,
      confidence: null,
      method: null,
      controls: [],
      result: null,
      agreementWithConsensus: null,
    });
    expect(await scoreOf(a.id)).toBeUndefined();

    await complete(batches[0]!.id);
    expect([...(await detail(batches[0]!.id)).values()].map((c) => [c?.status, c?.answersIn])).toEqual(images.map(() => ['waiting', 1]));
    // Nothing finished yet: the workflow's report is empty (and read twice, the same).
    const agreement = async () => (await t.json('GET', `/api/workflows/${overlap.id}/agreement`)).body;
    expect(await agreement()).toMatchObject({ itemsScored: 0, meanAgreement: null, controls: [], annotators: [] });
    expect(await agreement()).toMatchObject({ itemsScored: 0 });
    await complete(batches[1]!.id);
    // The items finished: the next read shows them (a report kept from before is not served).
    expect(await agreement()).toMatchObject({
      itemsScored: 4,
      meanAgreement: 0.5,
      annotators: [
        { annotatorId: a.id, items: 4, agreementWithConsensus: 1 },
        { annotatorId: b.id, items: 4, agreementWithConsensus: 0.5 },
      ],
    });

    const first = await detail(batches[0]!.id);
    const second = await detail(batches[1]!.id);
    const pick = (c: Record<string, unknown> | null | undefined) => [c?.status, c?.answersIn, c?.agreement, c?.confidence, c?.result];
    expect(images.map((image) => pick(first.get(image)))).toEqual([
      ['accepted', 2, 1, 1, choice('cat')],
      ['adjudication', 2, 0, 0.5, choice('cat')],
      ['accepted', 2, 1, 1, choice('dog')],
      ['adjudication', 2, 0, 0.5, choice('cat')],
    ]);
    // The same item seen from the other batch: the same figures, the other answer against the consensus.
    expect(images.map((image) => pick(second.get(image)))).toEqual(images.map((image) => pick(first.get(image))));
    expect(images.map((image) => first.get(image)?.agreementWithConsensus)).toEqual([1, 1, 1, 1]);
    expect(images.map((image) => second.get(image)?.agreementWithConsensus)).toEqual([1, 0, 1, 0]);
    expect(first.get(images[1]!)).toMatchObject({ method: 'majority', controls: [{ fromName: 'label', agreement: 0, confidence: 0.5 }] });

    // GET /api/quality: the same comparison summed over the annotator's overlap items (4 decimals).
    expect(await scoreOf(a.id)).toMatchObject({ annotatorName: 'Pair 0', accuracy: null, evaluationCount: 0, agreementWithConsensus: 1, agreementItemCount: 4 });
    expect(await scoreOf(b.id)).toMatchObject({ annotatorName: 'Pair 1', accuracy: null, evaluationCount: 0, agreementWithConsensus: 0.5, agreementItemCount: 4 });

    // The adjudicator's batch shows what it adjudicates; once done, every batch shows the adjudicated result.
    const judge = await seedAnnotator(t, { roleId: null, name: 'Pair judge' });
    const r = await assignBatch(t.db, { workflowId: adjudication.id, annotatorId: judge.id });
    if (!r.ok) throw new Error(r.message);
    const jb = await start(r.assignment.id);
    const judged = await detail(r.assignment.id);
    expect([...judged.keys()].sort()).toEqual([images[1], images[3]]);
    expect(judged.get(images[1]!)).toMatchObject({
      itemId: first.get(images[1]!)!.itemId,
      role: 'adjudicator',
      status: 'adjudication',
      agreement: 0,
      agreementWithConsensus: null,
    });
    await annotate(judge, jb.lsProjectId, jb.byImage.get(images[1]!)!, choice('dog'));
    await annotate(judge, jb.lsProjectId, jb.byImage.get(images[3]!)!, choice('cat'));
    await complete(r.assignment.id);
    expect(pick((await detail(r.assignment.id)).get(images[1]!))).toEqual(['adjudicated', 2, 0, 0.5, choice('dog')]);
    const after = await detail(batches[1]!.id);
    expect(pick(after.get(images[1]!))).toEqual(['adjudicated', 2, 0, 0.5, choice('dog')]);
    // Agreement with the consensus stays a comparison with the consensus, not with the adjudication.
    expect(after.get(images[1]!)?.agreementWithConsensus).toBe(0);
    // The adjudicator labeled no overlap item: no agreement score of their own.
    expect(await scoreOf(judge.id)).toBeUndefined();
  });
});
