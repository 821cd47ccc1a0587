/**
 * Batches end to end: real Label Studio (label-studio==1.23.2 from the project venv), moto S3 and
 * PostgreSQL, and LabelFleet listening on a real port for Label Studio's webhooks.
 *
 * Label Studio runs directly on the host (test/helpers/label-studio.ts), not through the Docker
 * fleet: this file tests batches, not containers. It is registered as the annotators' instance
 * the way the fleet registers one (status active, address, sealed API token). One instance serves
 * both annotators (the machine has 2 cores); each annotator's projects, webhooks (with their own
 * X-Annotator-Id and secret) and tasks are their own.
 *
 * The graph: "Label" (root, S3 catalog, gold at 25 %) → "Review" (previousWorkflowId Label,
 * review_decision accept/reject, rejections routed back to Label for the original annotator,
 * maxReworkIterations 1, archive under e2e/archive/). The labeler and the reviewer annotate through
 * Label Studio's API as their browsers would (POST /api/tasks/{id}/annotations/ with a token);
 * reconciler passes are run explicitly (POST /api/reconcile), so every step is observable.
 */
import { ListObjectVersionsCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import type { Annotator, Workflow } from '../../src/db/types.ts';
import { LabelStudioClient } from '../../src/labelstudio/client.ts';
import { createService, type Service } from '../../src/service.ts';
import { WEBHOOK_ACTIONS } from '../../src/workflows/provision.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { IMAGE_CONFIG, REVIEW_CONFIG, seedAnnotator, seedConfig, seedGold, seedRole, seedWorkflow, webhooksApplied } from '../helpers/batches.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startLabelStudio, type TestLabelStudio } from '../helpers/label-studio.ts';
import { freePort } from '../helpers/process.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { signIn, TEST_SECRET_KEY, testConfig, type TestService } from '../helpers/service.ts';
import { sessionApi } from '../helpers/session-api.ts';

let ls: TestLabelStudio;
let lsApi: LabelStudioClient;
let database: TestDatabase;
let service: Service;
let cookie: string;
let base: string;
let bucket: string;
let storage: Storage;
let env: Record<string, string>;
let labeler: Annotator;
let reviewer: Annotator;
let label: Workflow;
let review: Workflow;

const db = () => service.ctx.database.db;

async function startFleet() {
  const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 10 });
  const config = testConfig(env);
  service = await createService(config, { database: handle, logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  // The loop stays off: passes run when the test asks (POST /api/reconcile), so each step is visible.
  await service.start({ reconcile: false });
  cookie = await signIn(service.app);
}

const { api, reconcile } = sessionApi(() => ({ base, cookie }));

async function assignmentsOf(annotatorId: number) {
  return db().selectFrom('assignments').selectAll().where('annotatorId', '=', annotatorId).orderBy('id').execute();
}

async function tasksOf(assignmentId: number) {
  return db().selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();
}

const choice = (name: string, value: string) => ({ from_name: name, to_name: 'image', type: 'choices', value: { choices: [value] } });
const box = (x: number) => ({
  from_name: 'box',
  to_name: 'image',
  type: 'rectanglelabels',
  original_width: 1,
  original_height: 1,
  image_rotation: 0,
  value: { x, y: 10, width: 20, height: 20, rotation: 0, rectanglelabels: ['car'] },
});
const reason = (text: string) => ({ from_name: 'review_reason', to_name: 'image', type: 'textarea', value: { text: [text] } });
/** The labeler's answer: gold tasks get `goldAnswer`; image N gets "dog" and a box at x = 10 + N. */
const labelResult = (task: { isGold: boolean; s3ImageKey: string }, goldAnswer = 'cat') =>
  task.isGold ? [choice('label', goldAnswer)] : [choice('label', 'dog'), box(10 + Number(/img-(\d+)/.exec(task.s3ImageKey)![1]))];

/** Annotates every task of a batch in Label Studio, as the annotator's browser would. */
async function annotateBatch(assignmentId: number, resultFor: (task: { isGold: boolean; s3ImageKey: string }) => unknown[]) {
  const created = [];
  for (const task of await tasksOf(assignmentId)) {
    created.push(await lsApi.createAnnotation(task.lsTaskId!, { result: resultFor(task), lead_time: 7.5 }));
  }
  // Acknowledged webhooks are applied by the inbox's drainer moments later.
  await webhooksApplied(service);
  return created;
}

async function eventsFor(lsAnnotationId: number) {
  return db().selectFrom('annotationEvents').selectAll().where('lsAnnotationId', '=', lsAnnotationId).orderBy('id').execute();
}

beforeAll(async () => {
  const s3 = await createTestBucket('lf-e2e');
  ({ bucket, storage } = s3);
  // Versioning shows how many times an export was written.
  await storage.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  for (let i = 0; i < 6; i++) await storage.put(bucket, `e2e/src/img-${i}.png`, PNG_1PX, { contentType: 'image/png' });

  ls = await startLabelStudio();
  lsApi = new LabelStudioClient({ baseUrl: ls.url, token: ls.token });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  env = { ...s3.env, PORT: String(port), HOST: '127.0.0.1', FLEET_CALLBACK_URL: base };
  database = await createTestDatabase();
  await database.handle.close();
  await startFleet();

  const t = { db: db(), ctx: service.ctx } as unknown as TestService;
  const labelers = await seedRole(t, 'labeler');
  const reviewers = await seedRole(t, 'reviewer');
  const labelConfig = await seedConfig(t, IMAGE_CONFIG);
  const reviewConfig = await seedConfig(t, REVIEW_CONFIG);
  const gold = await seedGold(t, labelConfig.id, 2, [choice('label', 'cat')]);
  for (const g of gold) await storage.put(bucket, g.s3ImageKey, PNG_1PX, { contentType: 'image/png' });
  label = await seedWorkflow(t, {
    name: 'Label',
    labelingConfigId: labelConfig.id,
    roleId: labelers.id,
    s3SourcePath: 'e2e/src/',
    s3ExportPath: 'e2e/exports/label/',
    imagesPerProject: 4,
    goldStandardRate: 0.25,
    shuffleImages: false,
  });
  review = await seedWorkflow(t, {
    name: 'Review',
    labelingConfigId: reviewConfig.id,
    roleId: reviewers.id,
    previousWorkflowId: label.id,
    s3SourcePath: 'e2e/src/',
    s3ExportPath: 'e2e/exports/review/',
    imagesPerProject: 3,
    shuffleImages: false,
    rejectionMode: 'route_to_workflow',
    rejectionRouteWorkflowId: label.id,
    rejectionReturnToOriginal: true,
    rejectionFlagAnnotator: true,
    maxReworkIterations: 1,
    rejectionArchiveBucket: 'e2e/archive/',
  });
  labeler = await seedAnnotator(t, { roleId: labelers.id, port: ls.port, token: ls.token, name: 'Alice' });
  reviewer = await seedAnnotator(t, { roleId: reviewers.id, port: ls.port, token: ls.token, name: 'Victor' });
}, 600_000);

afterAll(async () => {
  await service?.stop().catch(() => {});
  await database?.drop();
  await ls?.stop();
});

describe('batches through Label Studio', () => {
  let l1: number;

  it('assigns the labeler a batch and sets it up in Label Studio', async () => {
    const pass = await reconcile();
    expect(pass.completed).toBe(0);
    const [a] = await assignmentsOf(labeler.id);
    expect(a).toMatchObject({ workflowId: label.id, status: 'in_progress', taskCount: 4, goldTaskCount: 1, completedCount: 0 });
    l1 = a!.id;
    expect(await assignmentsOf(reviewer.id)).toEqual([]);

    const project = await lsApi.getProject(a!.lsProjectId!);
    expect(project.title).toBe(`#${l1} · Label`);
    expect(project.description).toContain(`[labelfleet:assignment=${l1}]`);
    expect(project.label_config).toBe(IMAGE_CONFIG);

    const hooks = await lsApi.listWebhooks(a!.lsProjectId!);
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({
      url: `${base}/api/webhook`,
      send_payload: true,
      send_for_all_actions: false,
      is_active: true,
      headers: { 'X-Annotator-Id': String(labeler.id), 'X-Webhook-Secret': expect.any(String) },
    });
    expect([...hooks[0]!.actions].sort()).toEqual([...WEBHOOK_ACTIONS].sort());

    // Every task has the same shape, gold or not; its image loads from S3.
    const lsTasks = await lsApi.exportTasks(a!.lsProjectId!, { all: true });
    const ours = await tasksOf(l1);
    expect(lsTasks.map((x) => x.id).sort()).toEqual(ours.map((x) => x.lsTaskId).sort());
    expect(ours.map((x) => x.s3ImageKey).filter((k) => k.startsWith('e2e/src/'))).toEqual(['e2e/src/img-0.png', 'e2e/src/img-1.png', 'e2e/src/img-2.png']);
    for (const task of lsTasks) {
      expect(Object.keys(task.data)).toEqual(['image']);
      expect(Object.keys(task.meta ?? {})).toEqual(['labelfleet']);
      expect(Object.keys((task.meta as { labelfleet: object }).labelfleet)).toEqual(['task']);
      const image = await fetch(task.data.image as string);
      expect(image.status).toBe(200);
      expect(Buffer.from(await image.arrayBuffer()).equals(PNG_1PX)).toBe(true);
    }
  });

  it('records annotations from webhooks, and reconcile finds the one whose webhook never arrived', async () => {
    const tasks = await tasksOf(l1);
    const [first, second, ...rest] = tasks;
    const a1 = await lsApi.createAnnotation(first!.lsTaskId!, { result: labelResult(first!), lead_time: 7.5 });
    // The webhook arrived while Label Studio answered the submit (and its drain applied it).
    await webhooksApplied(service);
    expect((await eventsFor(a1.id)).map((e) => [e.eventType, e.source])).toEqual([['annotation_created', 'webhook']]);
    expect(await db().selectFrom('assignmentTasks').select(['status', 'result']).where('id', '=', first!.id).executeTakeFirstOrThrow()).toMatchObject({
      status: 'annotated',
    });

    // The next webhook goes to a dead address (the fleet was unreachable for a moment).
    const project = (await assignmentsOf(labeler.id))[0]!.lsProjectId!;
    const [hook] = await lsApi.listWebhooks(project);
    // (A PATCH without `actions` clears the webhook's actions in Label Studio 1.23: always send them.)
    await lsApi.updateWebhook(hook!.id, { url: `http://127.0.0.1:${await freePort()}/api/webhook`, actions: hook!.actions });
    const a2 = await lsApi.createAnnotation(second!.lsTaskId!, { result: labelResult(second!), lead_time: 3 });
    await lsApi.updateWebhook(hook!.id, { url: hook!.url, actions: hook!.actions });
    await webhooksApplied(service);
    expect(await eventsFor(a2.id)).toEqual([]);
    expect((await db().selectFrom('assignmentTasks').select('status').where('id', '=', second!.id).executeTakeFirstOrThrow()).status).toBe('open');

    const pass = await reconcile();
    expect(pass.reconciled).toBeGreaterThanOrEqual(1);
    expect((await eventsFor(a2.id)).map((e) => [e.eventType, e.source, e.timeSpentMs])).toEqual([['annotation_created', 'reconcile', 3000]]);
    expect((await db().selectFrom('assignmentTasks').select('status').where('id', '=', second!.id).executeTakeFirstOrThrow()).status).toBe('annotated');

    // A duplicate of a real delivery changes nothing.
    const before = await db().selectFrom('assignments').selectAll().where('id', '=', l1).executeTakeFirstOrThrow();
    const replay = await fetch(`${base}/api/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...hook!.headers },
      body: JSON.stringify({ action: 'ANNOTATION_CREATED', annotation: { ...a1, task: first!.lsTaskId, project }, project: { id: project }, task: { id: first!.lsTaskId } }),
    });
    expect(await replay.json()).toEqual({ ok: true });
    await webhooksApplied(service);
    expect(await db().selectFrom('assignments').selectAll().where('id', '=', l1).executeTakeFirstOrThrow()).toEqual(before);
    expect(await eventsFor(a1.id)).toHaveLength(1);

    for (const task of rest) {
      await lsApi.createAnnotation(task.lsTaskId!, { result: labelResult(task), lead_time: 5 });
    }
    await webhooksApplied(service);
    const annotated = await db().selectFrom('assignments').selectAll().where('id', '=', l1).executeTakeFirstOrThrow();
    expect(annotated).toMatchObject({ status: 'in_progress', completedCount: 4, exportKey: null });
  });

  it('exports exactly once after a crash between "all annotated" and "exported"', async () => {
    // The state a crash leaves: every task annotated, nothing exported. The service goes down here
    // (no pass ran since the last webhook) and comes back.
    await service.stop();
    await startFleet();

    const pass = await reconcile();
    expect(pass.completed).toBe(1);
    const done = await db().selectFrom('assignments').selectAll().where('id', '=', l1).executeTakeFirstOrThrow();
    expect(done).toMatchObject({ status: 'completed', exportKey: `e2e/exports/label/assignment-${l1}.json` });

    // The export: Label Studio's JSON of the three real tasks (no gold), with our meta.
    const exported = JSON.parse((await storage.get(bucket, done.exportKey!))!.toString()) as any[];
    expect(exported.map((x) => x.meta.labelfleet.imageKey)).toEqual(['e2e/src/img-0.png', 'e2e/src/img-1.png', 'e2e/src/img-2.png']);
    for (const task of exported) {
      expect(task.meta.labelfleet).toMatchObject({ assignmentId: l1, workflowId: label.id, annotatorId: labeler.id });
      expect(task.annotations).toHaveLength(1);
      expect(task.annotations[0].result.find((r: any) => r.from_name === 'label').value.choices).toEqual(['dog']);
      expect(task.annotations[0].result.find((r: any) => r.from_name === 'box').value.rectanglelabels).toEqual(['car']);
    }

    // A crash after the S3 write but before the database commit: the batch is in progress again,
    // its items not chained. The next pass completes it without writing the export a second time.
    const chained = await db().selectFrom('workItems').select('id').where('workflowId', '=', review.id).execute();
    expect(chained).toHaveLength(3);
    await db().deleteFrom('assignments').where('workflowId', '=', review.id).execute();
    await db().deleteFrom('workItems').where('workflowId', '=', review.id).execute();
    await db().updateTable('assignments').set({ status: 'in_progress', exportKey: null, completedAt: null }).where('id', '=', l1).execute();
    await db().updateTable('workItems').set({ status: 'reserved' }).where('assignmentId', '=', l1).execute();
    await db().deleteFrom('assignments').where('annotatorId', '=', labeler.id).where('id', '<>', l1).execute();
    await db().updateTable('workItems').set({ status: 'queued', assignmentId: null }).where('workflowId', '=', label.id).where('assignmentId', 'is', null).execute();

    expect((await reconcile()).completed).toBe(1);
    const versions = await storage.client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'e2e/exports/label/' }));
    // The JSON export and the JSONL beside it, each written once.
    expect((versions.Versions ?? []).map((v) => v.Key).sort()).toEqual([`e2e/exports/label/assignment-${l1}.json`, `e2e/exports/label/assignment-${l1}.jsonl`]);
    expect(await db().selectFrom('workItems').select('id').where('workflowId', '=', review.id).execute()).toHaveLength(3);
    // More passes change nothing.
    await reconcile();
    const again = await storage.client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'e2e/exports/label/' }));
    expect((again.Versions ?? []).map((v) => v.Key).sort()).toEqual([`e2e/exports/label/assignment-${l1}.json`, `e2e/exports/label/assignment-${l1}.jsonl`]);
  });

  it('scores the gold task, assigns the next batch and sends the items to review with their labels', async () => {
    const gold = await db().selectFrom('goldResults').selectAll().where('assignmentId', '=', l1).execute();
    expect(gold).toHaveLength(1);
    expect(gold[0]).toMatchObject({ annotatorId: labeler.id, score: 1 });

    const mine = await assignmentsOf(labeler.id);
    expect(mine.map((a) => [a.workflowId, a.status, a.taskCount, a.goldTaskCount])).toEqual([
      [label.id, 'completed', 4, 1],
      [label.id, 'in_progress', 4, 1],
    ]);
    const l2Tasks = await tasksOf(mine[1]!.id);
    expect(l2Tasks.filter((x) => !x.isGold).map((x) => x.s3ImageKey)).toEqual(['e2e/src/img-3.png', 'e2e/src/img-4.png', 'e2e/src/img-5.png']);
    // The labeler sees the gold task they have not seen yet.
    const l1Gold = (await tasksOf(l1)).find((x) => x.isGold)!.goldTaskId;
    expect(l2Tasks.find((x) => x.isGold)!.goldTaskId).not.toBe(l1Gold);

    const [r1] = await assignmentsOf(reviewer.id);
    expect(r1).toMatchObject({ workflowId: review.id, status: 'in_progress', taskCount: 3, goldTaskCount: 0 });
    const lsReviewTasks = await lsApi.exportTasks(r1!.lsProjectId!, { all: true });
    expect(lsReviewTasks).toHaveLength(3);
    for (const { id } of lsReviewTasks) {
      // The export lists prediction ids; the task itself has them whole.
      const prediction = ((await lsApi.getTask(id)).predictions as any[])[0];
      expect(prediction.model_version).toBe('labelfleet-upstream');
      expect(prediction.result.map((r: any) => r.from_name).sort()).toEqual(['box', 'label']);
    }
  });

  it('records review decisions: accept counts, reject routes the image back to its labeler', async () => {
    const [r1] = await assignmentsOf(reviewer.id);
    const tasks = await tasksOf(r1!.id);
    expect(tasks.map((x) => x.s3ImageKey)).toEqual(['e2e/src/img-0.png', 'e2e/src/img-1.png', 'e2e/src/img-2.png']);
    await lsApi.createAnnotation(tasks[0]!.lsTaskId!, { result: [choice('review_decision', 'accept')] });
    await lsApi.createAnnotation(tasks[1]!.lsTaskId!, { result: [choice('review_decision', 'reject'), reason('Box too loose')] });
    await lsApi.createAnnotation(tasks[2]!.lsTaskId!, { result: [choice('review_decision', 'accept')] });

    const pass = await reconcile();
    expect(pass.completed).toBe(1);
    const rows = await db().selectFrom('rejections').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      workflowId: review.id,
      originalAnnotatorId: labeler.id,
      reviewerAnnotatorId: reviewer.id,
      originalAssignmentId: l1,
      reviewerAssignmentId: r1!.id,
      imageKey: 'e2e/src/img-1.png',
      reason: 'Box too loose',
      actionTaken: 'route_to_workflow',
      reworkIteration: 1,
    });
    const alice = await db().selectFrom('annotators').select(['reviewedCount', 'rejectionCount']).where('id', '=', labeler.id).executeTakeFirstOrThrow();
    expect(alice).toEqual({ reviewedCount: 3, rejectionCount: 1 });
    const rework = await db().selectFrom('workItems').selectAll().where('workflowId', '=', label.id).where('source', '=', 'rework').execute();
    expect(rework).toHaveLength(1);
    expect(rework[0]).toMatchObject({ imageKey: 'e2e/src/img-1.png', status: 'queued', targetAnnotatorId: labeler.id, reworkIteration: 1 });
    expect((rework[0]!.prediction as any[]).map((r) => r.from_name).sort()).toEqual(['box', 'label']);

    // The review batch was exported too; the reviewer has nothing left to review for now.
    const reviewExport = JSON.parse((await storage.get(bucket, `e2e/exports/review/assignment-${r1!.id}.json`))!.toString()) as any[];
    expect(reviewExport.map((x) => x.annotations[0].result.find((r: any) => r.from_name === 'review_decision').value.choices[0])).toEqual([
      'accept',
      'reject',
      'accept',
    ]);
    expect((await assignmentsOf(reviewer.id)).map((a) => a.status)).toEqual(['completed']);
  });

  it('loops the rejected image once, then escalates past maxReworkIterations', async () => {
    // The labeler finishes batch 2; the rework (reserved for them) is their next batch.
    const l2 = (await assignmentsOf(labeler.id))[1]!;
    await annotateBatch(l2.id, (task) => labelResult(task, 'dog'));
    await reconcile();
    const l3 = (await assignmentsOf(labeler.id))[2]!;
    expect(l3).toMatchObject({ workflowId: label.id, status: 'in_progress', taskCount: 2, goldTaskCount: 1 });
    const l3Tasks = await tasksOf(l3.id);
    expect(l3Tasks.filter((x) => !x.isGold).map((x) => x.s3ImageKey)).toEqual(['e2e/src/img-1.png']);
    const reworkLs = await lsApi.getTask(l3Tasks.find((y) => !y.isGold)!.lsTaskId!);
    // The rejected annotation comes along as a prediction (image 1's box was at x = 11).
    expect((reworkLs.predictions as any[])[0].result.find((r: any) => r.from_name === 'box').value.x).toBe(11);
    const rejection = await db().selectFrom('rejections').selectAll().executeTakeFirstOrThrow();
    expect(rejection.routedToAssignmentId).toBe(l3.id);

    // Review batch 2 (images 3–5) is accepted; the labeler fixes the rework.
    const r2 = (await assignmentsOf(reviewer.id))[1]!;
    await annotateBatch(r2.id, () => [choice('review_decision', 'accept')]);
    await annotateBatch(l3.id, (task) => (task.isGold ? labelResult(task) : [choice('label', 'dog'), box(50)]));
    await reconcile();

    // The fixed image comes back to review and is rejected again: past maxReworkIterations (1).
    const r3 = (await assignmentsOf(reviewer.id))[2]!;
    expect(r3).toMatchObject({ workflowId: review.id, status: 'in_progress', taskCount: 1 });
    await annotateBatch(r3.id, () => [choice('review_decision', 'reject'), reason('Still wrong')]);
    await reconcile();

    const rows = await db().selectFrom('rejections').selectAll().orderBy('id').execute();
    expect(rows.map((r) => [r.imageKey, r.actionTaken, r.reworkIteration, r.reason, r.originalAssignmentId])).toEqual([
      ['e2e/src/img-1.png', 'route_to_workflow', 1, 'Box too loose', l1],
      ['e2e/src/img-1.png', 'archive', 2, 'Still wrong', l3.id],
    ]);
    // Archived: the image and the record, under the workflow's archive prefix.
    const reviewerTask = (await tasksOf(r3.id))[0]!;
    const folder = `e2e/archive/workflow-${review.id}/task-${reviewerTask.id}/`;
    expect((await storage.get(bucket, `${folder}img-1.png`))!.equals(PNG_1PX)).toBe(true);
    const record = JSON.parse((await storage.get(bucket, `${folder}annotation.json`))!.toString());
    expect(record).toMatchObject({ imageKey: 'e2e/src/img-1.png', escalated: true, reworkIteration: 2, reason: 'Still wrong', originalAnnotatorId: labeler.id });
    expect(record.annotation.find((r: any) => r.from_name === 'box').value.x).toBe(50);
    const escalations = await db().selectFrom('annotationEvents').selectAll().where('eventType', '=', 'review_escalated').execute();
    expect(escalations).toHaveLength(1);
    // Not looped again: no new rework item, and the labeler has nothing left.
    expect(await db().selectFrom('workItems').select('id').where('workflowId', '=', label.id).where('source', '=', 'rework').execute()).toHaveLength(1);
    expect((await assignmentsOf(labeler.id)).map((a) => a.status)).toEqual(['completed', 'completed', 'completed']);
    expect((await assignmentsOf(reviewer.id)).map((a) => a.status)).toEqual(['completed', 'completed', 'completed']);
    const alice = await db().selectFrom('annotators').select(['reviewedCount', 'rejectionCount', 'lastActiveAt']).where('id', '=', labeler.id).executeTakeFirstOrThrow();
    expect(alice).toMatchObject({ reviewedCount: 7, rejectionCount: 2 });
    expect(alice.lastActiveAt).toBeInstanceOf(Date);

    // Gold: one result per labeler batch (right, wrong, right).
    const gold = await db().selectFrom('goldResults').select(['assignmentId', 'score']).orderBy('assignmentId').execute();
    expect(gold.map((g) => g.score)).toEqual([1, 0, 1]);
    // Six exports (JSON, and JSONL beside each), each written once.
    const versions = await storage.client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'e2e/exports/' }));
    const keys = (versions.Versions ?? []).map((v) => v.Key!);
    expect(keys.filter((k) => k.endsWith('.json'))).toHaveLength(6);
    expect(keys.filter((k) => k.endsWith('.jsonl')).sort()).toEqual(keys.filter((k) => k.endsWith('.json')).map((k) => `${k}l`).sort());
    expect(new Set(keys).size).toBe(keys.length);
  });
});
