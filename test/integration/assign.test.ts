/**
 * POST /api/workflows/:id/assign and the reservation underneath it, against real PostgreSQL:
 * the documented errors, gold mixing, maxProjects, priorities, releases, and 50 concurrent
 * assignments that never share an image.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBatchesPass } from '../../orchestrator/batches-step.ts';
import type { Annotator, Role } from '../../src/db/types.ts';
import { assignBatch, autoAssign } from '../../src/workflows/assign.ts';
import { seedAnnotator, seedConfig, seedGold, seedItems, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let role: Role;
let configId: number;
let alice: Annotator;
let bucket: string;
let storage: Awaited<ReturnType<typeof createTestBucket>>['storage'];
const wakes: string[] = [];

beforeAll(async () => {
  const s3 = await createTestBucket('lf-assign');
  ({ bucket, storage } = s3);
  t = await startTestService({ env: s3.env, overrides: { wake: (r: string) => void wakes.push(r) } });
  role = await seedRole(t);
  configId = (await seedConfig(t)).id;
  alice = await seedAnnotator(t, { roleId: role.id });
});
afterAll(async () => t?.close());

const assign = (workflowId: number | string, body: unknown) => t.json('POST', `/api/workflows/${workflowId}/assign`, body);

async function openImages(workflowId: number) {
  const rows = await t.db
    .selectFrom('assignmentTasks as t')
    .innerJoin('assignments as a', 'a.id', 't.assignmentId')
    .select(['t.s3ImageKey'])
    .where('a.workflowId', '=', workflowId)
    .where('a.status', 'in', ['pending', 'in_progress'])
    .where('t.isGold', '=', false)
    .execute();
  return rows.map((r) => r.s3ImageKey);
}

describe('assign: happy path', () => {
  it('reserves imagesPerProject tasks with gold mixed in and answers the documented shape', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 10, goldStandardRate: 0.1, shuffleImages: true });
    await seedItems(t, wf.id, 30);
    await seedGold(t, configId, 3);
    wakes.length = 0;
    const res = await assign(wf.id, { annotatorId: alice.id });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      assignment: {
        id: expect.any(Number),
        workflowId: wf.id,
        annotatorId: alice.id,
        lsProjectId: null,
        taskCount: 10,
        goldTaskCount: 1,
        status: 'pending',
      },
    });
    expect(wakes).toEqual([`assignment ${res.body.assignment.id} created`]);
    const tasks = await t.db.selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', res.body.assignment.id).orderBy('position').execute();
    expect(tasks.map((x) => x.position)).toEqual([...Array(10).keys()]);
    expect(tasks.filter((x) => x.isGold)).toHaveLength(1);
    expect(tasks.filter((x) => !x.isGold).every((x) => x.workItemId !== null && x.s3ImageKey.startsWith('img/'))).toBe(true);
    const reserved = await t.db.selectFrom('workItems').select('id').where('assignmentId', '=', res.body.assignment.id).where('status', '=', 'reserved').execute();
    expect(reserved).toHaveLength(9);
  });

  it('keeps key order when shuffleImages is false', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 5, shuffleImages: false });
    await seedItems(t, wf.id, 8);
    const res = await assign(wf.id, { annotatorId: alice.id });
    const keys = (await t.db.selectFrom('assignmentTasks').select('s3ImageKey').where('assignmentId', '=', res.body.assignment.id).orderBy('position').execute()).map((r) => r.s3ImageKey);
    expect(keys).toEqual(['img/img-000000.png', 'img/img-000001.png', 'img/img-000002.png', 'img/img-000003.png', 'img/img-000004.png']);
    // The next batch continues where the first stopped, and the last one is smaller.
    const next = await assign(wf.id, { annotatorId: alice.id });
    expect(next.body.assignment.taskCount).toBe(3);
    expect((await assign(wf.id, { annotatorId: alice.id })).status).toBe(409);
  });

  it('takes rework first, and work reserved for an annotator only for them', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 2, shuffleImages: false });
    const bob = await seedAnnotator(t, { roleId: role.id });
    await seedItems(t, wf.id, 5);
    await t.db
      .insertInto('workItems')
      .values([
        { workflowId: wf.id, imageKey: 'rework/for-bob.png', source: 'rework', priority: 0, targetAnnotatorId: bob.id },
        { workflowId: wf.id, imageKey: 'rework/anyone.png', source: 'rework', priority: 0 },
      ])
      .execute();
    const forAlice = await assign(wf.id, { annotatorId: alice.id });
    const aliceKeys = (await t.db.selectFrom('assignmentTasks').select('s3ImageKey').where('assignmentId', '=', forAlice.body.assignment.id).orderBy('position').execute()).map((r) => r.s3ImageKey);
    expect(aliceKeys).toEqual(['img/img-000000.png', 'rework/anyone.png']);
    const forBob = await assign(wf.id, { annotatorId: bob.id });
    const bobKeys = (await t.db.selectFrom('assignmentTasks').select('s3ImageKey').where('assignmentId', '=', forBob.body.assignment.id).execute()).map((r) => r.s3ImageKey);
    expect(bobKeys).toContain('rework/for-bob.png');
  });

  it('syncs a root workflow from S3 when its queue is empty', async () => {
    for (const k of ['a.png', 'b.png', 'c.png']) await storage.put(bucket, `fresh/${k}`, PNG_1PX);
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 2, s3SourcePath: 'fresh/' });
    const res = await assign(wf.id, { annotatorId: alice.id });
    expect(res.status).toBe(200);
    expect(res.body.assignment.taskCount).toBe(2);
    expect((await t.db.selectFrom('workItems').select('id').where('workflowId', '=', wf.id).execute()).length).toBe(3);
  });
});

describe('assign: errors', () => {
  it('answers 404 for a missing workflow and 400 for bad input', async () => {
    expect((await assign(424242, { annotatorId: alice.id })).status).toBe(404);
    expect((await assign(424242, { annotatorId: alice.id })).body).toEqual({ error: 'Workflow not found' });
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id });
    for (const body of [{}, { annotatorId: 'x' }, { annotatorId: 0 }, { annotatorId: 1.5 }, { annotatorId: alice.id, extra: true }]) {
      const res = await assign(wf.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
    for (const id of ['abc', '0', '-1']) expect((await assign(id, { annotatorId: alice.id })).status).toBe(400);
    expect((await t.json('POST', `/api/workflows/${wf.id}/assign`, '{"annotatorId":')).status).toBe(400);
  });

  it('answers 400 when the annotator is unknown, not active or of another role', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id });
    await seedItems(t, wf.id, 5);
    const stopped = await seedAnnotator(t, { roleId: role.id, status: 'stopped' });
    const other = await seedAnnotator(t, { roleId: (await seedRole(t)).id });
    const none = await seedAnnotator(t, { roleId: null });
    for (const [id, pattern] of [
      [424242, /not found/],
      [stopped.id, /not active/],
      [other.id, /role/],
      [none.id, /role/],
    ] as const) {
      const res = await assign(wf.id, { annotatorId: id });
      expect(res.status, String(id)).toBe(400);
      expect(res.body.error).toMatch(pattern);
    }
    // A workflow without a role takes anyone active.
    const open = await seedWorkflow(t, { labelingConfigId: configId, roleId: null });
    await seedItems(t, open.id, 1);
    expect((await assign(open.id, { annotatorId: other.id })).status).toBe(200);
  });

  it('answers 409 when no images are available, the workflow is paused or has no config', async () => {
    const empty = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, s3SourcePath: 'nothing-here/' });
    const res = await assign(empty.id, { annotatorId: alice.id });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: 'No images available for assignment' });
    const paused = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, isActive: false });
    await seedItems(t, paused.id, 3);
    expect((await assign(paused.id, { annotatorId: alice.id })).status).toBe(409);
    const noConfig = await t.db.insertInto('workflows').values({ name: 'nc', s3SourcePath: 'x/', s3ExportPath: 'y/', roleId: role.id }).returning('id').executeTakeFirstOrThrow();
    expect((await assign(noConfig.id, { annotatorId: alice.id })).status).toBe(409);
    // Nothing was reserved by the failed attempts.
    expect(await t.db.selectFrom('workItems').select('id').where('workflowId', '=', paused.id).where('status', '<>', 'queued').execute()).toEqual([]);
  });

  it('enforces maxProjects per annotator and workflow, not counting failed or cancelled batches', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 1, maxProjects: 2 });
    await seedItems(t, wf.id, 10);
    const first = await assign(wf.id, { annotatorId: alice.id });
    expect((await assign(wf.id, { annotatorId: alice.id })).status).toBe(200);
    const third = await assign(wf.id, { annotatorId: alice.id });
    expect(third.status).toBe(409);
    expect(third.body.error).toMatch(/maxProjects 2/);
    await t.db.updateTable('assignments').set({ status: 'cancelled' }).where('id', '=', first.body.assignment.id).execute();
    expect((await assign(wf.id, { annotatorId: alice.id })).status).toBe(200);
    // Another annotator has their own allowance.
    const carol = await seedAnnotator(t, { roleId: role.id });
    expect((await assign(wf.id, { annotatorId: carol.id })).status).toBe(200);
  });

  it('answers 401 without a session', async () => {
    expect((await t.anonymous.json('POST', '/api/workflows/1/assign', { annotatorId: 1 })).status).toBe(401);
  });
});

describe('assign: concurrency', () => {
  it('50 concurrent assignments never put an image in two open batches', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 20, goldStandardRate: 0.1 });
    await seedItems(t, wf.id, 900);
    await seedGold(t, configId, 2);
    const annotators = await Promise.all(Array.from({ length: 50 }, () => seedAnnotator(t, { roleId: role.id })));
    const results = await Promise.all(annotators.map((a) => assign(wf.id, { annotatorId: a.id })));
    const ok = results.filter((r) => r.status === 200);
    // 900 images, 18 real per batch: exactly 50 batches fit.
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(ok.map((r) => [r.body.assignment.taskCount, r.body.assignment.goldTaskCount])).toEqual(Array(50).fill([20, 2]));
    const images = await openImages(wf.id);
    expect(images).toHaveLength(900);
    expect(new Set(images).size).toBe(900);
    // The pool is exhausted now.
    expect((await assign(wf.id, { annotatorId: alice.id })).status).toBe(409);
  });

  it('never reserves one image twice even when it is queued twice', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 3, shuffleImages: false });
    // The same three images queued as rework and as chained copies (two paths into one workflow).
    for (const key of ['dup/a.png', 'dup/b.png', 'dup/c.png']) {
      await t.db
        .insertInto('workItems')
        .values([
          { workflowId: wf.id, imageKey: key, source: 'rework', priority: 0 },
          { workflowId: wf.id, imageKey: key, source: 'chain', priority: 1 },
        ])
        .execute();
    }
    const annotators = await Promise.all(Array.from({ length: 6 }, () => seedAnnotator(t, { roleId: role.id })));
    const results = await Promise.all(annotators.map((a) => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
    expect(results.every((r) => r.ok || r.reason === 'no_items')).toBe(true);
    const images = await openImages(wf.id);
    expect(new Set(images).size).toBe(images.length);
    expect(images.length).toBeGreaterThanOrEqual(3);
    expect(images.length).toBeLessThanOrEqual(6);
  });
});

describe('assign: auto-assignment and releases', () => {
  it('auto-assigns one open batch at a time from role workflows with autoAssign, not when paused', async () => {
    const r = await seedRole(t);
    const cfg = (await seedConfig(t)).id;
    const manualOnly = await seedWorkflow(t, { labelingConfigId: cfg, roleId: r.id, autoAssign: false });
    const auto = await seedWorkflow(t, { labelingConfigId: cfg, roleId: r.id, imagesPerProject: 2 });
    await seedItems(t, manualOnly.id, 5);
    await seedItems(t, auto.id, 5);
    const dave = await seedAnnotator(t, { roleId: r.id });
    const a = await autoAssign(t.db, dave);
    expect(a).toMatchObject({ workflowId: auto.id, annotatorId: dave.id, taskCount: 2, status: 'pending' });
    expect(await autoAssign(t.db, dave)).toBeNull();
    const paused = { ...(await seedAnnotator(t, { roleId: r.id })), autoAssignPaused: true };
    expect(await autoAssign(t.db, paused)).toBeNull();
  });

  it('releases the images of failed and cancelled batches and counts images per workflow', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 4, autoAssign: false, s3SourcePath: 'rel/' });
    // The images exist in S3 (the pass syncs the catalog, which would mark missing ones gone).
    for (let i = 0; i < 6; i++) await storage.put(bucket, `rel/img-${String(i).padStart(6, '0')}.png`, PNG_1PX);
    await seedItems(t, wf.id, 6, 'rel/');
    const a1 = await assignBatch(t.db, { workflowId: wf.id, annotatorId: alice.id });
    const a2 = await assignBatch(t.db, { workflowId: wf.id, annotatorId: alice.id });
    if (!a1.ok || !a2.ok) throw new Error('assign failed');
    await t.db.updateTable('assignments').set({ status: 'cancelled' }).where('id', '=', a1.assignment.id).execute();
    await t.db.updateTable('assignments').set({ status: 'failed' }).where('id', '=', a2.assignment.id).execute();
    await runBatchesPass(t.ctx);
    const statuses = await t.db.selectFrom('workItems').select(['status', 'assignmentId']).where('workflowId', '=', wf.id).execute();
    expect(statuses.filter((s) => s.status !== 'queued' || s.assignmentId !== null)).toEqual([]);
    const counts = await t.db.selectFrom('workflows').select(['totalImagesAvailable', 'totalImagesAssigned']).where('id', '=', wf.id).executeTakeFirstOrThrow();
    expect(counts).toEqual({ totalImagesAvailable: 6, totalImagesAssigned: 0 });
    // Released images are assignable again.
    const again = await assignBatch(t.db, { workflowId: wf.id, annotatorId: alice.id });
    expect(again.ok && again.assignment.taskCount).toBe(4);
    const n = await sql<{ n: number }>`SELECT count(*)::int AS n FROM work_items WHERE workflow_id = ${wf.id} AND status = 'reserved'`.execute(t.db);
    expect(n.rows[0]!.n).toBe(4);
  });
});
