/**
 * Fault suite (issue 10): `kill -9` of `fleet serve` at named points of the BATCH flow —
 * provisioning, between export and completion, during chaining, during review routing
 * (src/fault-point.ts; the points sit in src/workflows/provision.ts, complete.ts, review.ts).
 *
 * One pipeline, Label → Review (a rejection goes back to Label for the original annotator),
 * walked batch by batch; at each step a service armed with one fault point runs until it dies of
 * it, then a clean service on the same fleet database carries on. The end state must be the one a
 * run without the kills reaches: every batch once (one Label Studio project each, its tasks
 * imported once), every export written once (S3 object versions, the bucket is versioned), every
 * item chained once, the rejection applied once, no item lost, one batch.completed per batch.
 *
 * One real Label Studio (label-studio 1.23.2 from the venv, test/helpers/label-studio.ts) serves
 * both annotators, registered the way the fleet registers an instance (as test/e2e/batches.test.ts
 * does): no Label Studio boot per kill. Real PostgreSQL and moto S3; the services are real
 * `fleet serve` processes on one port (FLEET_CALLBACK_URL: Label Studio's webhooks reach whichever
 * runs). Run under `flock /tmp/lf-docker.lock` (npm run chaos).
 */
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ListObjectVersionsCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator, Workflow } from '../../src/db/types.ts';
import { LabelStudioClient } from '../../src/labelstudio/client.ts';
import type { Storage } from '../../src/storage/s3.ts';
import { exportKeyFor } from '../../src/workflows/complete.ts';
import { jsonlExportKeyFor } from '../../src/workflows/export.ts';
import { fleetTaskId } from '../../src/workflows/provision.ts';
import { IMAGE_CONFIG, REVIEW_CONFIG, seedAnnotator, seedConfig, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { startLabelStudio, type TestLabelStudio } from '../helpers/label-studio.ts';
import { freePort, sleep, startFleet } from '../helpers/process.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';
import './meta.ts';

const NS = `kb${randomBytes(3).toString('hex')}`;
const IMAGES = ['kb/src/img-0.png', 'kb/src/img-1.png', 'kb/src/img-2.png'];
let t: TestService;
let ls: TestLabelStudio;
let lsApi: LabelStudioClient;
let bucket: string;
let storage: Storage;
let env: Record<string, string> = {};
let serviceChild: ChildProcess | undefined;
/** A pipeline subscribed to batch.completed (deliveries may go to loopback here). */
let receiver: Receiver;
/** The services reach S3 (moto) through this proxy, so S3 can be taken away without touching moto. */
let s3proxy: TcpProxy;
let labeler: Annotator;
let reviewer: Annotator;
let label: Workflow;
let review: Workflow;
/** Every kill and recovery, for the summary row. */
const totals = { kills: 0, convergeMs: 0 };

const choice = (name: string, value: string) => ({ from_name: name, to_name: 'image', type: 'choices', value: { choices: [value] } });
const reason = (text: string) => ({ from_name: 'review_reason', to_name: 'image', type: 'textarea', value: { text: [text] } });

const batchesOf = (annotatorId: number) => t.db.selectFrom('assignments').selectAll().where('annotatorId', '=', annotatorId).orderBy('id').execute();
const tasksOf = (assignmentId: number) => t.db.selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', assignmentId).orderBy('position').execute();
const batch = (id: number) => t.db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

/** `fleet serve` on the shared fleet database and the one callback port, armed with `point` when given. */
function serve(point?: string) {
  const f = startFleet(['serve'], { ...env, ...(point ? { FLEET_FAULT_POINT: point } : {}) });
  serviceChild = f.child;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => f.child.on('exit', (code, signal) => resolve({ code, signal })));
  return { ...f, exited };
}

async function until(what: string, done: () => Promise<boolean>, timeoutMs = 180_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await done()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** A service armed with `point` runs until it dies of SIGKILL there (nothing else here kills it). */
async function killedAt(point: string): Promise<number> {
  const armed = serve(point);
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void armed.exited.then((r) => (result = r));
  const ms = await until(`the service killed at ${point}`, async () => result !== undefined).catch((err) => {
    armed.child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; output: ${armed.output.text.slice(-2000)}`);
  });
  expect(result, armed.output.text.slice(-2000)).toEqual({ code: null, signal: 'SIGKILL' });
  totals.kills++;
  return ms;
}

/** A clean service until `done`, then stopped (SIGTERM). Returns the time to converge. */
async function recover(what: string, done: () => Promise<boolean>): Promise<number> {
  const clean = serve();
  try {
    const ms = await until(what, done).catch((err) => {
      throw new Error(`${(err as Error).message}; output: ${clean.output.text.slice(-2000)}`);
    });
    totals.convergeMs = Math.max(totals.convergeMs, ms);
    return ms;
  } finally {
    clean.child.kill('SIGTERM');
    await clean.exited;
  }
}

/** How many times an object was written (the bucket is versioned). */
async function versions(key: string): Promise<number> {
  const res = await storage.client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
  return (res.Versions ?? []).filter((v) => v.Key === key).length;
}

/** Label Studio's projects for a batch (title `#<id> · …`) and, per project, its tasks by our task id. */
async function lsProjectsOf(assignmentId: number) {
  const projects = (await lsApi.findProjects(`#${assignmentId} ·`)).filter((p) => p.title.startsWith(`#${assignmentId} ·`));
  const tasks = projects.length === 1 ? await lsApi.exportTasks(projects[0]!.id, { all: true }) : [];
  return { projects: projects.length, tasks: tasks.map((x) => fleetTaskId(x)) };
}

/** One batch in Label Studio: one project, each of its tasks imported once, every DB task linked. */
async function expectProvisionedOnce(assignmentId: number) {
  const ours = await tasksOf(assignmentId);
  const { projects, tasks } = await lsProjectsOf(assignmentId);
  expect(projects).toBe(1);
  expect([...tasks].sort()).toEqual(ours.map((x) => x.id).sort());
  expect(ours.every((x) => x.lsTaskId !== null)).toBe(true);
  expect(await lsApi.listWebhooks((await batch(assignmentId)).lsProjectId!)).toHaveLength(1);
  return { projects, lsTasks: tasks.length };
}

const completedEvents = async (assignmentId: number) =>
  (await t.db.selectFrom('webhookEvents').select('id').where('dedupeKey', '=', `batch.completed:${assignmentId}`).execute()).length;

function setCounts(task: { meta: object }, counts: Record<string, number>) {
  (task.meta as { counts?: Record<string, number> }).counts = counts;
}

beforeAll(async () => {
  const s3 = await createTestBucket('lf-chaos');
  ({ bucket, storage } = s3);
  await storage.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  for (const key of IMAGES) await storage.put(bucket, key, PNG_1PX, { contentType: 'image/png' });
  ls = await startLabelStudio();
  lsApi = new LabelStudioClient({ baseUrl: ls.url, token: ls.token });

  s3proxy = await startTcpProxy(Number(new URL(s3.env.S3_ENDPOINT!).port));
  const port = await freePort();
  const shared = { ...s3.env, S3_ENDPOINT: s3proxy.via(s3.env.S3_ENDPOINT!), FLEET_NAMESPACE: NS, FLEET_CALLBACK_URL: `http://127.0.0.1:${port}` };
  t = await startTestService({ env: shared });
  env = {
    ...shared,
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    DATABASE_URL: t.database.url,
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    ADMIN_EMAIL: 'admin@fleet.local',
    ADMIN_PASSWORD: 'admin',
    RECONCILE_INTERVAL_MS: '300',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  expect((await t.json('PUT', '/api/settings/batches.compareIntervalSeconds', { value: 1 })).status).toBe(200);
  receiver = await startReceiver();
  expect((await t.json('PUT', '/api/settings/webhooks.allowedNetworks', { value: ['127.0.0.0/8'] })).status).toBe(200);
  expect((await t.json('POST', '/api/webhook-subscriptions', { url: receiver.url, eventTypes: ['batch.completed'] })).status).toBe(201);

  const labelers = await seedRole(t, 'labeler');
  const reviewers = await seedRole(t, 'reviewer');
  const labelConfig = await seedConfig(t, IMAGE_CONFIG);
  const reviewConfig = await seedConfig(t, REVIEW_CONFIG);
  label = await seedWorkflow(t, {
    name: 'Label',
    labelingConfigId: labelConfig.id,
    roleId: labelers.id,
    s3SourcePath: 'kb/src/',
    s3ExportPath: 'kb/exports/label/',
    imagesPerProject: 3,
    shuffleImages: false,
  });
  review = await seedWorkflow(t, {
    name: 'Review',
    labelingConfigId: reviewConfig.id,
    roleId: reviewers.id,
    previousWorkflowId: label.id,
    s3SourcePath: 'kb/src/',
    s3ExportPath: 'kb/exports/review/',
    imagesPerProject: 3,
    shuffleImages: false,
    rejectionMode: 'route_to_workflow',
    rejectionRouteWorkflowId: label.id,
    rejectionReturnToOriginal: true,
    rejectionFlagAnnotator: true,
    maxReworkIterations: 2,
  });
  labeler = await seedAnnotator(t, { roleId: labelers.id, port: ls.port, token: ls.token, name: 'Lena' });
  reviewer = await seedAnnotator(t, { roleId: reviewers.id, port: ls.port, token: ls.token, name: 'Rolf' });
  // The reviewer waits until the labeler's batch is through (each stage is killed on its own).
  await t.db.updateTable('annotators').set({ autoAssignPaused: true }).where('id', '=', reviewer.id).execute();
}, 600_000);

afterAll(async () => {
  serviceChild?.kill('SIGKILL');
  await t?.close();
  await ls?.stop();
  await receiver?.stop();
  await s3proxy?.close();
});

let l1: number;
let r1: number;

describe('kill -9 of fleet serve at provision:project-created (project made in Label Studio, its id not recorded)', () => {
  it('after a restart: the batch in progress with one project, each task imported once', async ({ task }) => {
    const killMs = await killedAt('provision:project-created');
    const [a] = await batchesOf(labeler.id);
    expect(a).toMatchObject({ status: 'pending', lsProjectId: null });
    l1 = a!.id;
    const convergeMs = await recover('the batch in progress', async () => (await batch(l1)).status === 'in_progress');
    const counts = await expectProvisionedOnce(l1);
    expect(await batchesOf(labeler.id)).toHaveLength(1);
    setCounts(task, { ...counts, batches: 1, killMs, convergeMs });
  }, 600_000);
});

describe('kill -9 of fleet serve at complete:json-exported, complete:exported, complete:chained (one batch, three kills)', () => {
  it('after a restart: completed once, each export written once, each item chained once', async ({ task }) => {
    for (const x of await tasksOf(l1)) await lsApi.createAnnotation(x.lsTaskId!, { result: [choice('label', 'dog')], lead_time: 3 });
    const jsonKey = exportKeyFor(label.s3ExportPath, l1);
    const jsonlKey = jsonlExportKeyFor(label.s3ExportPath, l1);

    let killMs = await killedAt('complete:json-exported');
    expect({ json: await versions(jsonKey), jsonl: await versions(jsonlKey), status: (await batch(l1)).status }).toEqual({ json: 1, jsonl: 0, status: 'in_progress' });
    killMs += await killedAt('complete:exported');
    expect({ json: await versions(jsonKey), jsonl: await versions(jsonlKey), status: (await batch(l1)).status }).toEqual({ json: 1, jsonl: 1, status: 'in_progress' });
    killMs += await killedAt('complete:chained');
    // The completing transaction died with the process: nothing of it was committed.
    const chainedMid = await t.db.selectFrom('workItems').select('id').where('workflowId', '=', review.id).execute();
    expect({ status: (await batch(l1)).status, chained: chainedMid.length }).toEqual({ status: 'in_progress', chained: 0 });

    const convergeMs = await recover('the batch completed', async () => (await batch(l1)).status === 'completed');
    const counts = { jsonVersions: await versions(jsonKey), jsonlVersions: await versions(jsonlKey), completedEvents: await completedEvents(l1) };
    expect(counts).toEqual({ jsonVersions: 1, jsonlVersions: 1, completedEvents: 1 });
    const exported = JSON.parse((await storage.get(bucket, jsonKey))!.toString('utf8')) as unknown[];
    expect(exported).toHaveLength(3);
    const chained = await t.db.selectFrom('workItems').selectAll().where('workflowId', '=', review.id).execute();
    expect(chained.map((i) => i.imageKey).sort()).toEqual(IMAGES);
    const items = await t.db.selectFrom('workItems').select(['imageKey', 'status']).where('workflowId', '=', label.id).orderBy('imageKey').execute();
    expect(items).toEqual(IMAGES.map((imageKey) => ({ imageKey, status: 'done' })));
    setCounts(task, { ...counts, chained: chained.length, kills: 3, killMs, convergeMs });
  }, 600_000);
});

describe('kill -9 of fleet serve at provision:tasks-imported (tasks in Label Studio, batch still pending)', () => {
  it('after a restart: the batch in progress, no task imported twice', async ({ task }) => {
    await t.db.updateTable('annotators').set({ autoAssignPaused: false }).where('id', '=', reviewer.id).execute();
    const killMs = await killedAt('provision:tasks-imported');
    const [a] = await batchesOf(reviewer.id);
    expect(a).toMatchObject({ status: 'pending' });
    r1 = a!.id;
    const convergeMs = await recover('the review batch in progress', async () => (await batch(r1)).status === 'in_progress');
    const counts = await expectProvisionedOnce(r1);
    expect(counts.lsTasks).toBe(3);
    expect(await batchesOf(reviewer.id)).toHaveLength(1);
    setCounts(task, { ...counts, batches: 1, killMs, convergeMs });
  }, 600_000);
});

describe('kill -9 of fleet serve at review:routed, then complete:exported (a rejection routed back to the labeler)', () => {
  it('after a restart: the rejection applied once, one rework item, the review batch completed and exported once', async ({ task }) => {
    const tasks = await tasksOf(r1);
    // No service runs: Label Studio's webhooks fail, the comparison finds the decisions.
    await lsApi.createAnnotation(tasks[0]!.lsTaskId!, { result: [choice('review_decision', 'accept')] });
    await lsApi.createAnnotation(tasks[1]!.lsTaskId!, { result: [choice('review_decision', 'reject'), reason('Wrong label')] });
    await lsApi.createAnnotation(tasks[2]!.lsTaskId!, { result: [choice('review_decision', 'accept')] });

    let killMs = await killedAt('review:routed');
    // The applying transaction died: no rejection, no rework item yet.
    expect(await t.db.selectFrom('rejections').select('id').execute()).toHaveLength(0);
    killMs += await killedAt('complete:exported');
    const jsonKey = exportKeyFor(review.s3ExportPath, r1);
    const jsonlKey = jsonlExportKeyFor(review.s3ExportPath, r1);
    expect((await batch(r1)).status).toBe('in_progress');

    // Done: the review batch completed and the labeler's rework batch set up.
    const convergeMs = await recover('review completed, rework batch in progress', async () => {
      const mine = await batchesOf(labeler.id);
      return (await batch(r1)).status === 'completed' && mine.length === 2 && mine[1]!.status === 'in_progress';
    });
    const rejections = await t.db.selectFrom('rejections').selectAll().execute();
    expect(rejections).toHaveLength(1);
    expect(rejections[0]).toMatchObject({ originalAnnotatorId: labeler.id, reviewerAnnotatorId: reviewer.id, actionTaken: 'route_to_workflow', reason: 'Wrong label' });
    const rework = await t.db.selectFrom('workItems').selectAll().where('workflowId', '=', label.id).where('source', '=', 'rework').execute();
    expect(rework).toHaveLength(1);
    expect(rework[0]).toMatchObject({ targetAnnotatorId: labeler.id, imageKey: tasks[1]!.s3ImageKey, status: 'reserved' });
    const who = await t.db.selectFrom('annotators').select(['reviewedCount', 'rejectionCount']).where('id', '=', labeler.id).executeTakeFirstOrThrow();
    expect(who).toEqual({ reviewedCount: 3, rejectionCount: 1 });
    const counts = { jsonVersions: await versions(jsonKey), jsonlVersions: await versions(jsonlKey), completedEvents: await completedEvents(r1) };
    expect(counts).toEqual({ jsonVersions: 1, jsonlVersions: 1, completedEvents: 1 });
    setCounts(task, { ...counts, rejections: rejections.length, reworkItems: rework.length, kills: 2, killMs, convergeMs });
  }, 600_000);
});

describe('the batch flow after 7 kills', () => {
  it('the end state of a run without kills: each batch once, each export once, no item lost or doubled', async ({ task }) => {
    const l2 = (await batchesOf(labeler.id))[1]!;
    await expectProvisionedOnce(l2.id);
    const all = await t.db.selectFrom('assignments').select(['id', 'status', 'annotatorId']).orderBy('id').execute();
    expect(all.map((a) => [a.id, a.status])).toEqual([
      [l1, 'completed'],
      [r1, 'completed'],
      [l2.id, 'in_progress'],
    ]);
    // Every item is in exactly one batch; none is left reserved without one.
    const seats = await t.db
      .selectFrom('assignmentTasks')
      .select(['workItemId', (eb) => eb.fn.countAll<number>().as('n')])
      .where('workItemId', 'is not', null)
      .groupBy('workItemId')
      .execute();
    const doubled = seats.filter((s) => Number(s.n) > 1).length;
    const items = await t.db.selectFrom('workItems').select(['id', 'workflowId', 'status', 'assignmentId']).execute();
    const lost = items.filter((i) => (i.status === 'reserved' || i.status === 'done') && i.assignmentId === null).length;
    expect({ items: items.length, doubled, lost }).toEqual({ items: 7, doubled: 0, lost: 0 });
    expect(items.filter((i) => i.workflowId === review.id).map((i) => i.status).sort()).toEqual(['done', 'done', 'rejected']);
    // The pipeline hears of each completed batch once (one event id each, whatever the retries).
    const heard = new Map<number, Set<string>>();
    await recover('batch.completed delivered for both batches', async () => {
      for (const r of receiver.received) {
        const body = JSON.parse(r.body) as { type: string; data: { batchId: number } };
        if (body.type !== 'batch.completed') continue;
        heard.set(body.data.batchId, (heard.get(body.data.batchId) ?? new Set()).add(r.headers['webhook-id']!));
      }
      return heard.size === 2;
    });
    expect([...heard].map(([id, ids]) => [id, ids.size]).sort()).toEqual([
      [l1, 1],
      [r1, 1],
    ]);
    setCounts(task, { batches: all.length, items: items.length, lost, duplicates: doubled, batchCompletedEvents: heard.size, kills: totals.kills, maxConvergeMs: totals.convergeMs });
  }, 300_000);
});

let l2: number;
let r2: number;

describe('S3 (moto) unavailable during export', () => {
  it('the batch waits in progress, nothing half-written; when S3 is back it exports once and completes', async ({ task }) => {
    l2 = (await batchesOf(labeler.id))[1]!.id;
    const [rework] = await tasksOf(l2);
    await lsApi.createAnnotation(rework!.lsTaskId!, { result: [choice('label', 'cat')], lead_time: 2 });
    const jsonKey = exportKeyFor(label.s3ExportPath, l2);
    const jsonlKey = jsonlExportKeyFor(label.s3ExportPath, l2);
    await s3proxy.down();
    const svc = serve();
    try {
      // Completion is tried and fails while S3 is away (logged, retried by the next passes).
      await until('a completion attempt failing on S3', async () => svc.output.text.includes(`assignment ${l2}: completion failed`), 120_000);
      const outageStarted = Date.now();
      await sleep(3000);
      expect({ status: (await batch(l2)).status, json: await versions(jsonKey), jsonl: await versions(jsonlKey) }).toEqual({ status: 'in_progress', json: 0, jsonl: 0 });
      const failedAttempts = svc.output.text.split(`assignment ${l2}: completion failed`).length - 1;
      expect(svc.child.exitCode).toBeNull();
      await s3proxy.up();
      const back = Date.now();
      await until('the batch completed once S3 is back', async () => (await batch(l2)).status === 'completed');
      const convergeMs = Date.now() - back;
      // The reworked item goes on to review: the reviewer's second batch.
      await until('the reviewer has the reworked item', async () => (await batchesOf(reviewer.id))[1]?.status === 'in_progress');
      r2 = (await batchesOf(reviewer.id))[1]!.id;
      const counts = { jsonVersions: await versions(jsonKey), jsonlVersions: await versions(jsonlKey), completedEvents: await completedEvents(l2) };
      expect(counts).toEqual({ jsonVersions: 1, jsonlVersions: 1, completedEvents: 1 });
      setCounts(task, { ...counts, failedAttempts, outageMs: back - outageStarted, convergeMs });
    } finally {
      await s3proxy.up();
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 600_000);
});

describe('Label Studio killed mid-batch (SIGKILL of its process group), started again later', () => {
  it('the batch shows Label Studio unreachable, then resumes, exports once and completes', async ({ task }) => {
    const [item] = await tasksOf(r2);
    await lsApi.createAnnotation(item!.lsTaskId!, { result: [choice('review_decision', 'accept')] });
    await ls.kill();
    expect(await lsApi.health(2000)).toBe(false);
    const svc = serve();
    try {
      await until('the batch shows Label Studio unreachable', async () => (await batch(r2)).problemCode === 'ls_unreachable', 120_000);
      expect((await batch(r2)).status).toBe('in_progress');
      const lsBoot = Date.now();
      await ls.restart();
      const back = Date.now();
      await until('the batch completed once Label Studio is back', async () => (await batch(r2)).status === 'completed');
      // From the restart command: Label Studio's boot, then the fleet's next comparison.
      const convergeMs = Date.now() - lsBoot;
      const b = await batch(r2);
      expect(b.problemCode).toBeNull();
      const counts = {
        jsonVersions: await versions(exportKeyFor(review.s3ExportPath, r2)),
        jsonlVersions: await versions(jsonlExportKeyFor(review.s3ExportPath, r2)),
        completedEvents: await completedEvents(r2),
      };
      expect(counts).toEqual({ jsonVersions: 1, jsonlVersions: 1, completedEvents: 1 });
      expect(await t.db.selectFrom('rejections').select('id').execute()).toHaveLength(1);
      setCounts(task, { ...counts, lsBootMs: back - lsBoot, convergeMs });
    } finally {
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
  }, 600_000);
});
