/**
 * Label Studio is the truth (issue 11): a real Label Studio (label-studio==1.23.2), moto S3,
 * PostgreSQL, and LabelFleet listening on a real port for Label Studio's webhooks. Everything done
 * in Label Studio goes through its own REST API, as its UI does: a second annotation on a task and
 * the deletion of the newer one, "Delete tasks" (DELETE /api/tasks/{id}/), a task imported by hand,
 * and the Data Manager action "Create annotations from predictions" (ANNOTATIONS_CREATED). One
 * Label Studio instance serves every case; reconciler passes run when the test asks, so each step
 * is observable.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBatchesPass } from '../../orchestrator/batches-step.ts';
import { createLogger } from '../../src/logger.ts';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import type { Annotator, Workflow } from '../../src/db/types.ts';
import { LabelStudioClient } from '../../src/labelstudio/client.ts';
import { createService, type Service } from '../../src/service.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { IMAGE_CONFIG, seedAnnotator, seedConfig, seedRole, seedWorkflow, webhooksApplied } from '../helpers/batches.ts';
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
let annotator: Annotator;
let workflow: Workflow;

const db = () => service.ctx.database.db;
const choice = (value: string) => ({ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [value] } });

const { api, reconcile } = sessionApi(() => ({ base, cookie }));

/** The annotator's open batch (after a pass set it up in Label Studio). */
async function openBatch() {
  const [a] = await db().selectFrom('assignments').selectAll().where('annotatorId', '=', annotator.id).where('status', '=', 'in_progress').execute();
  expect(a).toBeDefined();
  return a!;
}

const tasksOf = (assignmentId: number) =>
  db().selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();

const batchEvents = (assignmentId: number) =>
  db()
    .selectFrom('containerEvents')
    .select(['eventType', 'message', 'details'])
    .where('annotatorId', '=', annotator.id)
    .where(sql<string>`details->>'assignmentId'`, '=', String(assignmentId))
    .orderBy('id')
    .execute();

beforeAll(async () => {
  const s3 = await createTestBucket('lf-truth');
  ({ bucket, storage } = s3);
  for (let i = 0; i < 12; i++) await storage.put(bucket, `truth/src/img-${String(i).padStart(2, '0')}.png`, PNG_1PX, { contentType: 'image/png' });

  ls = await startLabelStudio();
  lsApi = new LabelStudioClient({ baseUrl: ls.url, token: ls.token });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  database = await createTestDatabase();
  await database.handle.close();
  const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 10 });
  const config = testConfig({ ...s3.env, PORT: String(port), HOST: '127.0.0.1', FLEET_CALLBACK_URL: base });
  service = await createService(config, { database: handle, logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  await service.start({ reconcile: false });
  cookie = await signIn(service.app);

  const t = { db: db(), ctx: service.ctx } as unknown as TestService;
  const role = await seedRole(t, 'labeler');
  const cfg = await seedConfig(t, IMAGE_CONFIG);
  workflow = await seedWorkflow(t, {
    name: 'Truth',
    labelingConfigId: cfg.id,
    roleId: role.id,
    s3SourcePath: 'truth/src/',
    s3ExportPath: 'truth/exports/',
    imagesPerProject: 3,
    shuffleImages: false,
  });
  annotator = await seedAnnotator(t, { roleId: role.id, port: ls.port, token: ls.token, name: 'Tess' });
}, 600_000);

afterAll(async () => {
  await service?.stop().catch(() => {});
  await database?.drop();
  await ls?.stop();
});

describe('Label Studio is the truth', () => {
  it('subscribes to every action that changes tasks or annotations', async () => {
    await reconcile();
    const a = await openBatch();
    const [hook] = await lsApi.listWebhooks(a.lsProjectId!);
    expect([...hook!.actions].sort()).toEqual([
      'ANNOTATIONS_CREATED',
      'ANNOTATIONS_DELETED',
      'ANNOTATION_CREATED',
      'ANNOTATION_UPDATED',
      'TASKS_CREATED',
      'TASKS_DELETED',
    ]);
  });

  it('item 1: two annotations on a task, the newer deleted → the surviving one counts and the batch completes', async () => {
    const a = await openBatch();
    const [first, ...rest] = await tasksOf(a.id);
    const cat = await lsApi.createAnnotation(first!.lsTaskId!, { result: [choice('cat')], lead_time: 2 });
    const dog = await lsApi.createAnnotation(first!.lsTaskId!, { result: [choice('dog')], lead_time: 3 });
    // Their webhooks were acknowledged during the submits; the inbox's drainer applies them.
    await webhooksApplied(service);
    let task = await db().selectFrom('assignmentTasks').selectAll().where('id', '=', first!.id).executeTakeFirstOrThrow();
    expect(task).toMatchObject({ status: 'annotated', lsAnnotationId: dog.id });

    await lsApi.deleteAnnotation(dog.id);
    for (const t of rest) await lsApi.createAnnotation(t.lsTaskId!, { result: [choice('dog')], lead_time: 1 });
    // Whatever the webhooks did meanwhile, the comparison makes Label Studio's state ours.
    const pass = await reconcile();
    task = await db().selectFrom('assignmentTasks').selectAll().where('id', '=', first!.id).executeTakeFirstOrThrow();
    expect(task).toMatchObject({ status: 'annotated', lsAnnotationId: cat.id, result: [choice('cat')] });
    expect(pass.completed).toBe(1);
    const done = await db().selectFrom('assignments').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(done).toMatchObject({ status: 'completed', completedCount: 3, taskCount: 3, problemCode: null });
    const exported = JSON.parse((await storage.get(bucket, done.exportKey!))!.toString()) as any[];
    const firstExported = exported.find((x) => x.id === first!.lsTaskId);
    expect(firstExported.annotations.map((x: { id: number }) => x.id)).toEqual([cat.id]);
  });

  it('item 2: a task deleted in Label Studio → its image is released, the batch shows it and finishes without it', async () => {
    const a = await openBatch();
    const tasks = await tasksOf(a.id);
    const [gone, ...kept] = tasks;
    await lsApi.request('delete_task', 'DELETE', `/api/tasks/${gone!.lsTaskId}/`, { okStatuses: [204] });
    // TASKS_DELETED made the batch due for comparison at once.
    expect((await db().selectFrom('assignments').select('lsCheckedAt').where('id', '=', a.id).executeTakeFirstOrThrow()).lsCheckedAt).toBeNull();
    await runBatchesPass(service.ctx);

    const shown = (await api('GET', `/api/assignments/${a.id}`)).body;
    expect(shown).toMatchObject({
      status: 'in_progress',
      taskCount: 2,
      removedTaskCount: 1,
      completedCount: 0,
      problem: { code: 'ls_tasks_deleted', message: expect.stringContaining('1 task(s) were deleted in Label Studio'), since: expect.any(String) },
    });
    expect(shown.tasks.find((t: { id: number }) => t.id === gone!.id)).toMatchObject({ status: 'removed', lsTaskId: null });
    const item = await db().selectFrom('workItems').selectAll().where('id', '=', gone!.workItemId!).executeTakeFirstOrThrow();
    expect(item).toMatchObject({ status: 'queued', assignmentId: null, imageKey: gone!.s3ImageKey });
    expect((await batchEvents(a.id)).map((e) => e.eventType)).toEqual(['batch_problem']);
    const listed = (await api('GET', `/api/assignments?annotatorId=${annotator.id}&status=in_progress`)).body.data;
    expect(listed[0].problem.code).toBe('ls_tasks_deleted');

    for (const t of kept) await lsApi.createAnnotation(t.lsTaskId!, { result: [choice('cat')], lead_time: 1 });
    expect((await reconcile()).completed).toBe(1);
    const done = (await api('GET', `/api/assignments/${a.id}`)).body;
    expect(done).toMatchObject({ status: 'completed', taskCount: 2, completedCount: 2, removedTaskCount: 1, problem: null });
    const exported = JSON.parse((await storage.get(bucket, done.exportKey))!.toString()) as any[];
    expect(exported.map((x) => x.meta.labelfleet.imageKey).sort()).toEqual(kept.map((t) => t.s3ImageKey).sort());
    expect((await batchEvents(a.id)).map((e) => e.eventType)).toEqual(['batch_problem', 'batch_problem_cleared']);
  });

  it('item 8 and hand-added tasks: "create annotations from predictions" completes the batch; a task added by hand is flagged and ignored', async () => {
    const a = await openBatch();
    const tasks = await tasksOf(a.id);
    // A task imported by hand in Label Studio: not ours.
    await lsApi.importTasks(a.lsProjectId!, [{ data: { image: 'https://example.invalid/stray.png' } }]);
    await runBatchesPass(service.ctx, { force: true });
    let shown = (await api('GET', `/api/assignments/${a.id}`)).body;
    expect(shown.problem).toMatchObject({ code: 'ls_unknown_tasks', message: expect.stringContaining('1 task(s)') });
    expect(shown.tasks).toHaveLength(3);

    for (const t of tasks) {
      await lsApi.request('create_prediction', 'POST', '/api/predictions/', { body: { task: t.lsTaskId, result: [choice('cat')], model_version: 'm1' }, okStatuses: [201] });
    }
    // Compared a moment ago: only the webhook can make the batch due before the interval.
    await db().updateTable('assignments').set({ lsCheckedAt: new Date() }).where('id', '=', a.id).execute();
    await lsApi.request('dm_action', 'POST', '/api/dm/actions', {
      query: { id: 'predictions_to_annotations', project: a.lsProjectId! },
      body: { selectedItems: { all: true, excluded: [] } },
    });
    // ANNOTATIONS_CREATED arrived: due now.
    expect((await db().selectFrom('assignments').select('lsCheckedAt').where('id', '=', a.id).executeTakeFirstOrThrow()).lsCheckedAt).toBeNull();
    const pass = await runBatchesPass(service.ctx);
    expect(pass.errors).toEqual([]);
    shown = (await api('GET', `/api/assignments/${a.id}`)).body;
    expect(shown).toMatchObject({ status: 'completed', taskCount: 3, completedCount: 3, problem: null });
    expect(shown.tasks.map((t: { result: unknown }) => t.result)).toEqual([[choice('cat')], [choice('cat')], [choice('cat')]]);
  });

  it('a batch untouched for the workflow\'s expiryHours is reclaimed and the annotator gets the next one', async () => {
    const a = await openBatch();
    const images = (await tasksOf(a.id)).map((t) => t.s3ImageKey);
    expect((await api('PUT', `/api/workflows/${workflow.id}`, { expiryHours: 1 })).status).toBe(200);
    await db().updateTable('assignments').set({ startedAt: new Date(Date.now() - 2 * 3_600_000) }).where('id', '=', a.id).execute();
    const pass = await runBatchesPass(service.ctx);
    expect(pass.counts.reclaimed).toBe(1);
    const after = (await api('GET', `/api/assignments/${a.id}`)).body;
    expect(after).toMatchObject({ status: 'cancelled', error: expect.stringContaining('untouched by its annotator for 1 h'), problem: null });
    expect((await batchEvents(a.id)).map((e) => e.eventType)).toEqual(['batch_expired']);
    // Its images went back to the queue; the annotator's next batch follows the normal rules.
    const next = await openBatch();
    expect(next.id).toBeGreaterThan(a.id);
    expect((await tasksOf(next.id)).map((t) => t.s3ImageKey).sort()).toEqual(images.sort());
  });

  it('a project deleted in Label Studio, or an id that now names another project, fails the batch and releases its images — never "every task deleted"', async () => {
    // The id now names another batch's project (an instance whose database was replaced).
    const a = await openBatch();
    const [other] = await db().selectFrom('assignments').select('lsProjectId').where('status', '=', 'completed').orderBy('id').execute();
    await db().updateTable('assignments').set({ lsProjectId: other!.lsProjectId }).where('id', '=', a.id).execute();
    await runBatchesPass(service.ctx, { force: true });
    const failed = await db().selectFrom('assignments').selectAll().where('id', '=', a.id).executeTakeFirstOrThrow();
    expect(failed).toMatchObject({ status: 'failed', removedTaskCount: 0, error: `its Label Studio project ${other!.lsProjectId} no longer exists` });
    expect(await db().selectFrom('workItems').select('id').where('assignmentId', '=', a.id).where('status', '=', 'reserved').execute()).toEqual([]);

    // The project deleted in Label Studio.
    const b = await openBatch();
    await lsApi.deleteProject(b.lsProjectId!);
    await runBatchesPass(service.ctx, { force: true });
    expect(await db().selectFrom('assignments').select(['status', 'removedTaskCount']).where('id', '=', b.id).executeTakeFirstOrThrow()).toEqual({
      status: 'failed',
      removedTaskCount: 0,
    });
  });
});
