/**
 * Overlap 2 through real Label Studios to an adjudicated export (issue 13): two annotators, each
 * with their own Label Studio (label-studio==1.23.2 on 127.0.0.1, as in ls-truth.test.ts), moto S3,
 * PostgreSQL, and LabelFleet listening on a real port for Label Studio's webhooks.
 *
 * Admin API: a workflow with overlap 2 and consensusThreshold 0.5 over four images in S3, naming
 * an adjudication workflow. Both annotators get the same four items (auto-assignment) and annotate
 * them through their Label Studio's REST API as its labeling UI does: two items alike, two not.
 * The agreeing items are accepted with the consensus; the disagreeing ones are queued in the
 * adjudication workflow, whose batch carries each annotator's result as a Label Studio prediction
 * named by annotator — read back from the adjudicator's Label Studio project. The adjudicator's
 * annotations become those items' results: the overlap batches' JSONL exports in S3 end with the
 * adjudicated result for them and the consensus for the others.
 *
 * The adjudicator is annotator A, one of the two, to keep to two Label Studio instances: the
 * adjudication workflow has no role and is assigned by hand (POST /api/workflows/:id/assign), and
 * nothing in LabelFleet ties an adjudication batch to who annotated the item, so what is tested —
 * predictions imported into the adjudicator's own project, their answer replacing the consensus,
 * the exports rewritten — is the same path a third person's batch takes. (A team would normally
 * give adjudication to someone else; LabelFleet leaves that to whoever assigns it.)
 *
 * Reconciler passes run when the test asks (POST /api/reconcile; the overlap-exports step by its
 * function), so each stage is observable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import type { Annotator, Assignment } from '../../src/db/types.ts';
import { LabelStudioClient } from '../../src/labelstudio/client.ts';
import { createLogger } from '../../src/logger.ts';
import { createService, type Service } from '../../src/service.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { refreshOverlapExports } from '../../src/workflows/overlap-exports.ts';
import { seedAnnotator } from '../helpers/batches.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startLabelStudio, type TestLabelStudio } from '../helpers/label-studio.ts';
import { freePort } from '../helpers/process.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { signIn, TEST_SECRET_KEY, testConfig, type TestService } from '../helpers/service.ts';
import { sessionApi } from '../helpers/session-api.ts';

const CONFIG_XML = `<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single" required="true">
    <Choice value="cat"/><Choice value="dog"/>
  </Choices>
</View>`;
const IMAGES = [0, 1, 2, 3].map((i) => `ov/src/img-${i}.png`);
const EXPORT_PATH = 'ov/exports/';
const choice = (value: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [value] } }];

// A and B answer the four images: items 0 and 1 alike, 2 and 3 not. The tie cat–dog goes to the
// first label in code-unit order: the consensus of items 2 and 3 is cat; the adjudicator says dog.
const ANSWERS = { a: ['cat', 'dog', 'cat', 'dog'], b: ['cat', 'dog', 'dog', 'cat'] };
const ADJUDICATED = ['dog', 'dog'];

let lsA: TestLabelStudio;
let lsB: TestLabelStudio;
let database: TestDatabase;
let service: Service;
let cookie: string;
let base: string;
let bucket: string;
let storage: Storage;
let a: Annotator;
let b: Annotator;
let overlapId = 0;
let adjudicationId = 0;

const db = () => service.ctx.database.db;
const client = (ls: TestLabelStudio) => new LabelStudioClient({ baseUrl: ls.url, token: ls.token });

const { api, reconcile } = sessionApi(() => ({ base, cookie }));

const batchesOf = (annotatorId: number, workflowId: number): Promise<Assignment[]> =>
  db().selectFrom('assignments').selectAll().where('annotatorId', '=', annotatorId).where('workflowId', '=', workflowId).orderBy('id').execute();
const tasksOf = (assignmentId: number) =>
  db().selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();

/** The JSONL beside a batch's JSON export, one record per line. */
async function jsonlOf(batch: Assignment) {
  const body = await storage.get(bucket, `${EXPORT_PATH}assignment-${batch.id}.jsonl`);
  expect(body, `no JSONL export of batch ${batch.id}`).toBeTruthy();
  return body!
    .toString()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { imageKey: string; result: unknown; annotator: { id: number }; consensus?: Record<string, any> });
}

beforeAll(async () => {
  const s3 = await createTestBucket('lf-overlap');
  ({ bucket, storage } = s3);
  for (const key of IMAGES) await storage.put(bucket, key, PNG_1PX, { contentType: 'image/png' });

  [lsA, lsB] = await Promise.all([startLabelStudio(), startLabelStudio()]);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  database = await createTestDatabase();
  await database.handle.close();
  const handle = await openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 10 });
  const config = testConfig({ ...s3.env, PORT: String(port), HOST: '127.0.0.1', FLEET_CALLBACK_URL: base });
  service = await createService(config, { database: handle, logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  await service.start({ reconcile: false });
  cookie = await signIn(service.app);

  const role = await api('POST', '/api/roles', { name: 'labeler' });
  expect(role.status).toBe(201);
  const cfg = await api('POST', '/api/labeling-configs', { name: 'Cat or dog', configXml: CONFIG_XML });
  expect(cfg.status).toBe(201);
  const adjudication = await api('POST', '/api/workflows', {
    name: 'Adjudicate',
    labelingConfigId: cfg.body.id,
    s3SourcePath: 'ov/adjudication-src/',
    s3ExportPath: 'ov/adjudicated/',
    imagesPerProject: 10,
    autoAssign: false,
    shuffleImages: false,
  });
  expect(adjudication.status).toBe(201);
  adjudicationId = adjudication.body.id;
  const overlap = await api('POST', '/api/workflows', {
    name: 'Classify twice',
    roleId: role.body.id,
    labelingConfigId: cfg.body.id,
    s3SourcePath: 'ov/src/',
    s3ExportPath: EXPORT_PATH,
    imagesPerProject: 4,
    autoAssign: true,
    shuffleImages: false,
    overlap: 2,
    consensusThreshold: 0.5,
    adjudicationWorkflowId: adjudicationId,
  });
  expect(overlap.status).toBe(201);
  expect(overlap.body).toMatchObject({ overlap: 2, consensusThreshold: 0.5, adjudicationWorkflowId: adjudicationId });
  overlapId = overlap.body.id;

  const t = { db: db(), ctx: service.ctx } as unknown as TestService;
  a = await seedAnnotator(t, { roleId: role.body.id, port: lsA.port, token: lsA.token, name: 'Ada' });
  b = await seedAnnotator(t, { roleId: role.body.id, port: lsB.port, token: lsB.token, name: 'Bo' });
}, 600_000);

afterAll(async () => {
  await service?.stop().catch(() => {});
  await database?.drop();
  await Promise.all([lsA?.stop(), lsB?.stop()]);
});

describe('overlap 2 with real Label Studios, to an adjudicated export', () => {
  it('gives both annotators the same four items, each in their own Label Studio', async () => {
    await reconcile();
    for (const [who, ls] of [
      [a, lsA],
      [b, lsB],
    ] as const) {
      const [batch, ...more] = await batchesOf(who.id, overlapId);
      expect(more).toEqual([]);
      expect(batch).toMatchObject({ status: 'in_progress', taskCount: 4, goldTaskCount: 0 });
      const tasks = await tasksOf(batch!.id);
      expect(tasks.map((x) => x.s3ImageKey)).toEqual(IMAGES);
      const lsTasks = await client(ls).exportTasks(batch!.lsProjectId!, { all: true });
      expect(lsTasks.map((x) => x.id).sort()).toEqual(tasks.map((x) => x.lsTaskId).sort());
    }
  });

  it('accepts the items they agree on and sends the others to adjudication with both answers as predictions', async () => {
    const [batchA] = await batchesOf(a.id, overlapId);
    const [batchB] = await batchesOf(b.id, overlapId);
    for (const [batch, ls, answers] of [
      [batchA!, lsA, ANSWERS.a],
      [batchB!, lsB, ANSWERS.b],
    ] as const) {
      for (const [i, task] of (await tasksOf(batch.id)).entries()) {
        await client(ls).createAnnotation(task.lsTaskId!, { result: choice(answers[i]!), lead_time: 2 });
      }
    }
    // Both batches complete: the items are finished (the second completion settles them all).
    expect((await reconcile()).completed).toBe(2);
    const consensus = await db().selectFrom('itemConsensus').select(['imageKey', 'outcome', 'agreement', 'result']).where('workflowId', '=', overlapId).orderBy('imageKey').execute();
    expect(consensus).toEqual([
      { imageKey: IMAGES[0], outcome: 'accepted', agreement: 1, result: choice('cat') },
      { imageKey: IMAGES[1], outcome: 'accepted', agreement: 1, result: choice('dog') },
      { imageKey: IMAGES[2], outcome: 'adjudication', agreement: 0, result: choice('cat') },
      { imageKey: IMAGES[3], outcome: 'adjudication', agreement: 0, result: choice('cat') },
    ]);

    // The adjudicator's batch, set up in their own Label Studio: both answers side by side.
    const assigned = await api('POST', `/api/workflows/${adjudicationId}/assign`, { annotatorId: a.id });
    expect(assigned.status).toBe(200);
    expect(assigned.body.assignment).toMatchObject({ workflowId: adjudicationId, annotatorId: a.id, taskCount: 2 });
    await reconcile();
    const [judged] = await batchesOf(a.id, adjudicationId);
    expect(judged).toMatchObject({ status: 'in_progress', taskCount: 2 });
    const tasks = await tasksOf(judged!.id);
    expect(tasks.map((x) => x.s3ImageKey)).toEqual([IMAGES[2], IMAGES[3]]);
    for (const [i, task] of tasks.entries()) {
      // As the labeling UI lists them: the task's predictions in the adjudicator's Label Studio.
      const inLs = await client(lsA).request<{ task: number; model_version: string; result: { value: unknown }[] }[]>('list_predictions', 'GET', '/api/predictions/', {
        query: { task: task.lsTaskId! },
      });
      expect(inLs.every((p) => p.task === task.lsTaskId)).toBe(true);
      const predictions = inLs
        .map((p) => [p.model_version, p.result.map((r) => r.value)])
        .sort(([x], [y]) => String(x).localeCompare(String(y)));
      expect(predictions).toEqual(
        [
          [`annotator ${a.id}: Ada`, [{ choices: [ANSWERS.a[2 + i]] }]],
          [`annotator ${b.id}: Bo`, [{ choices: [ANSWERS.b[2 + i]] }]],
          ['labelfleet-consensus', [{ choices: ['cat'] }]],
        ].sort(([x], [y]) => String(x).localeCompare(String(y))),
      );
    }

    // Meanwhile the overlap batches' exports carry the consensus, the disagreements marked as such.
    const refreshed = await refreshOverlapExports(service.ctx);
    expect(refreshed.errors).toEqual([]);
    const records = await jsonlOf(batchB!);
    expect(records.map((r) => [r.imageKey, r.result, r.consensus?.outcome, r.consensus?.result])).toEqual([
      [IMAGES[0], choice('cat'), 'accepted', choice('cat')],
      [IMAGES[1], choice('dog'), 'accepted', choice('dog')],
      [IMAGES[2], choice('dog'), 'adjudication', choice('cat')],
      [IMAGES[3], choice('cat'), 'adjudication', choice('cat')],
    ]);
  });

  it("puts the adjudicator's answers into both overlap batches' exports in S3, the consensus for the rest", async () => {
    const [judged] = await batchesOf(a.id, adjudicationId);
    expect(judged, 'no adjudication batch').toBeDefined();
    for (const [i, task] of (await tasksOf(judged!.id)).entries()) {
      await client(lsA).createAnnotation(task.lsTaskId!, { result: choice(ADJUDICATED[i]!), lead_time: 5 });
    }
    expect((await reconcile()).completed).toBe(1);
    const refreshed = await refreshOverlapExports(service.ctx);
    expect(refreshed.errors).toEqual([]);
    expect(refreshed.counts.exportsRefreshed).toBe(2);
    // Nothing left to write.
    expect(await db().selectFrom('batchExportRefresh').select('assignmentId').execute()).toEqual([]);

    for (const [who, answers] of [
      [a, ANSWERS.a],
      [b, ANSWERS.b],
    ] as const) {
      const [batch] = await batchesOf(who.id, overlapId);
      const records = await jsonlOf(batch!);
      // Each record: the annotator's own answer, and the item's final result with how it was reached.
      expect(records.map((r) => [r.imageKey, r.annotator.id, r.result])).toEqual(IMAGES.map((image, i) => [image, who.id, choice(answers[i]!)]));
      expect(records.map((r) => [r.consensus?.outcome, r.consensus?.result, r.consensus?.agreement, r.consensus?.adjudicatorId ?? null])).toEqual([
        ['accepted', choice('cat'), 1, null],
        ['accepted', choice('dog'), 1, null],
        ['adjudicated', choice(ADJUDICATED[0]!), 0, a.id],
        ['adjudicated', choice(ADJUDICATED[1]!), 0, a.id],
      ]);
      // Every annotator's answer, with their id (in seat order: sorted here).
      const given = records[2]!.consensus!.answers.map((x: { annotatorId: number; result: unknown }) => [x.annotatorId, x.result]);
      expect(given.sort((x: [number], y: [number]) => x[0] - y[0])).toEqual([
        [a.id, choice(ANSWERS.a[2]!)],
        [b.id, choice(ANSWERS.b[2]!)],
      ]);
    }

    // The batch detail tells the same per item.
    const detail = await api('GET', `/api/assignments/${(await batchesOf(b.id, overlapId))[0]!.id}`);
    expect(detail.body.tasks.map((x: { consensus: { status: string; agreementWithConsensus: number } }) => [x.consensus.status, x.consensus.agreementWithConsensus])).toEqual([
      ['accepted', 1],
      ['accepted', 1],
      ['adjudicated', 0],
      ['adjudicated', 1],
    ]);
  });
});
