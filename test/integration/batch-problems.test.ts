/**
 * Nothing waits silently (issue 11): a batch's `problem` appears, changes and clears with an event
 * each; expired batches are reclaimed; Label Studio actions that change tasks make a batch due.
 * Label Studio is down here (an address where nothing listens): the e2e test ls-truth.test.ts
 * covers the cases that need it answering.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBatchesPass } from '../../orchestrator/batches-step.ts';
import { freePort } from '../helpers/process.ts';
import { seedAnnotator, seedConfig, seedItems, seedRole, seedWorkflow, webhookHeaders } from '../helpers/batches.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let s3: Awaited<ReturnType<typeof createTestBucket>>;

beforeAll(async () => {
  s3 = await createTestBucket('lf-problems');
  t = await startTestService({ env: s3.env });
});
afterAll(async () => t?.close());

async function setup(opts: { expiryHours?: number } = {}) {
  const role = await seedRole(t);
  const config = await seedConfig(t);
  const prefix = `p-${randomBytes(4).toString('hex')}/`;
  const wf = await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id, imagesPerProject: 2, shuffleImages: false, s3SourcePath: prefix, expiryHours: opts.expiryHours ?? null });
  // The catalog finds these keys in S3 (items it cannot find would be marked gone).
  for (let i = 0; i < 6; i++) await s3.storage.put(s3.bucket, `${prefix}img-${String(i).padStart(6, '0')}.png`, PNG_1PX);
  await seedItems(t, wf.id, 6, prefix);
  const annotator = await seedAnnotator(t, { roleId: role.id, port: await freePort(), token: 'unreachable-token' });
  return { wf, annotator };
}

const events = (assignmentId: number) =>
  t.db
    .selectFrom('containerEvents')
    .select(['eventType', 'fromStatus', 'toStatus', 'message', 'details'])
    .where(sql<string>`details->>'assignmentId'`, '=', String(assignmentId))
    .orderBy('id')
    .execute();

/** A batch in progress in a Label Studio that no longer answers. */
async function inProgress(annotatorId: number, workflowId: number, startedAt: Date) {
  await runBatchesPass(t.ctx);
  const [a] = await t.db.selectFrom('assignments').selectAll().where('annotatorId', '=', annotatorId).where('workflowId', '=', workflowId).execute();
  await t.db.deleteFrom('containerEvents').where(sql<string>`details->>'assignmentId'`, '=', String(a!.id)).execute();
  await t.db
    .updateTable('assignments')
    .set({ status: 'in_progress', lsProjectId: 4242, startedAt, error: null, lsCheckedAt: null, problemCode: null, problemMessage: null, problemSince: null })
    .where('id', '=', a!.id)
    .execute();
  const tasks = await t.db.selectFrom('assignmentTasks').select('id').where('assignmentId', '=', a!.id).orderBy('id').execute();
  for (const [i, task] of tasks.entries()) await t.db.updateTable('assignmentTasks').set({ lsTaskId: 9000 + a!.id * 10 + i }).where('id', '=', task.id).execute();
  return a!.id;
}

describe('problem: appears, changes, clears — each with an event', () => {
  it('provisioning failing → annotator not running → cleared when the batch is cancelled', async () => {
    const { annotator } = await setup();
    await runBatchesPass(t.ctx);
    const [a] = await t.db.selectFrom('assignments').selectAll().where('annotatorId', '=', annotator.id).execute();
    let shown = (await t.json('GET', `/api/assignments/${a!.id}`)).body;
    expect(shown.status).toBe('pending');
    expect(shown.problem).toEqual({ code: 'provisioning_failing', message: expect.stringMatching(/^setting up the batch in Label Studio failed \(retried\): Label Studio/), since: expect.any(String) });
    const since = shown.problem.since;

    // Another failed attempt: same problem, same since, no second event.
    await runBatchesPass(t.ctx);
    shown = (await t.json('GET', `/api/assignments/${a!.id}`)).body;
    expect(shown.problem.since).toBe(since);
    expect((await events(a!.id)).map((e) => e.eventType)).toEqual(['batch_problem']);

    await t.db.updateTable('annotators').set({ status: 'stopped' }).where('id', '=', annotator.id).execute();
    await runBatchesPass(t.ctx);
    shown = (await t.json('GET', `/api/assignments/${a!.id}`)).body;
    expect(shown.problem).toMatchObject({ code: 'annotator_not_running', message: expect.stringContaining('stopped') });
    const list = (await t.json('GET', `/api/assignments?annotatorId=${annotator.id}`)).body.data;
    expect(list[0].problem.code).toBe('annotator_not_running');

    expect((await t.json('DELETE', `/api/assignments/${a!.id}`)).status).toBe(200);
    await runBatchesPass(t.ctx);
    shown = (await t.json('GET', `/api/assignments/${a!.id}`)).body;
    expect(shown).toMatchObject({ status: 'cancelled', problem: null });
    const evs = await events(a!.id);
    expect(evs.map((e) => [e.eventType, (e.details as { code: string | null }).code, (e.details as { previousCode: string | null }).previousCode])).toEqual([
      ['batch_problem', 'provisioning_failing', null],
      ['batch_problem', 'annotator_not_running', 'provisioning_failing'],
      ['batch_problem_cleared', null, 'annotator_not_running'],
    ]);
    // In the annotator's event log, as the API shows it.
    const log = (await t.json('GET', `/api/events?annotatorId=${annotator.id}&type=container`)).body.data;
    expect(log.filter((e: { eventType: string }) => e.eventType.startsWith('batch_problem'))).toHaveLength(3);
  });

  it('Label Studio unreachable while in progress → ls_unreachable, reported, nothing else changes', async () => {
    const { wf, annotator } = await setup();
    const id = await inProgress(annotator.id, wf.id, new Date());
    const report = await runBatchesPass(t.ctx, { force: true });
    expect(report.errors.some((e) => e.startsWith(`assignment ${id}: compare with Label Studio failed`))).toBe(true);
    const a = await t.db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(a).toMatchObject({ status: 'in_progress', problemCode: 'ls_unreachable', lsCheckedAt: null, completedCount: 0 });
    expect(a.problemMessage).toMatch(/^Label Studio did not answer: .*; retried on the next passes$/);
  });
});

describe('expiryHours', () => {
  it('reclaims a batch untouched that long: cancelled, images queued, an event; the annotator gets the next batch', async () => {
    const { wf, annotator } = await setup({ expiryHours: 2 });
    const id = await inProgress(annotator.id, wf.id, new Date(Date.now() - 3 * 3_600_000));
    const reserved = await t.db.selectFrom('workItems').select('id').where('assignmentId', '=', id).execute();
    expect(reserved).toHaveLength(2);

    const report = await runBatchesPass(t.ctx);
    expect(report.counts.reclaimed).toBe(1);
    const a = await t.db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(a).toMatchObject({ status: 'cancelled', problemCode: null });
    expect(a.error).toBe("reclaimed: untouched by its annotator for 2 h (the workflow's expiryHours)");
    const items = await t.db.selectFrom('workItems').select(['status', 'assignmentId']).where('id', 'in', reserved.map((r) => r.id)).execute();
    // Back in the queue, then (same pass) taken by the annotator's next batch.
    const next = await t.db.selectFrom('assignments').selectAll().where('annotatorId', '=', annotator.id).where('status', '=', 'pending').execute();
    expect(next).toHaveLength(1);
    for (const item of items) expect(item).toEqual({ status: 'reserved', assignmentId: next[0]!.id });
    expect((await events(id)).map((e) => [e.eventType, e.fromStatus, e.toStatus])).toEqual([['batch_expired', 'in_progress', 'cancelled']]);
  });

  it('keeps a batch touched recently, and one without an expiry however old', async () => {
    const recent = await setup({ expiryHours: 2 });
    const recentId = await inProgress(recent.annotator.id, recent.wf.id, new Date(Date.now() - 3 * 3_600_000));
    // The annotator annotated an hour ago.
    await t.db
      .updateTable('assignmentTasks')
      .set({ lsAnnotationUpdatedAt: new Date(Date.now() - 3_600_000).toISOString() })
      .where('assignmentId', '=', recentId)
      .execute();
    const never = await setup();
    const neverId = await inProgress(never.annotator.id, never.wf.id, new Date(Date.now() - 10_000 * 3_600_000));
    await runBatchesPass(t.ctx);
    for (const id of [recentId, neverId]) {
      expect((await t.db.selectFrom('assignments').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status).toBe('in_progress');
    }
  });
});

describe('Label Studio actions that change tasks make the batch due for comparison', () => {
  it('TASKS_DELETED, TASKS_CREATED and ANNOTATIONS_CREATED (an array of annotations) → 200, compared at once', async () => {
    const { wf, annotator } = await setup();
    const id = await inProgress(annotator.id, wf.id, new Date());
    const fresh = await t.db.selectFrom('annotators').selectAll().where('id', '=', annotator.id).executeTakeFirstOrThrow();
    const bodies = [
      { action: 'TASKS_DELETED', tasks: [{ id: 1 }], project: { id: 4242 } },
      { action: 'TASKS_CREATED', tasks: [{ id: 2, data: {} }], project: { id: 4242 } },
      { action: 'ANNOTATIONS_CREATED', annotation: [{ id: 7, result: [] }], task: [{ id: 3 }], project: { id: 4242 } },
      // "Delete all tasks" names no project: every batch of the annotator is due.
      { action: 'TASKS_DELETED', tasks: [{ id: 4 }] },
    ];
    for (const body of bodies) {
      await t.db.updateTable('assignments').set({ lsCheckedAt: new Date() }).where('id', '=', id).execute();
      const res = await t.anonymous.json('POST', '/api/webhook', body, webhookHeaders(t, fresh));
      expect(res.status, body.action).toBe(200);
      expect(res.body).toEqual({ ok: true });
      const a = await t.db.selectFrom('assignments').select('lsCheckedAt').where('id', '=', id).executeTakeFirstOrThrow();
      expect(a.lsCheckedAt, JSON.stringify(body)).toBeNull();
    }
    // Another project's action leaves this batch alone.
    await t.db.updateTable('assignments').set({ lsCheckedAt: new Date() }).where('id', '=', id).execute();
    await t.anonymous.json('POST', '/api/webhook', { action: 'TASKS_DELETED', tasks: [{ id: 1 }], project: { id: 1 } }, webhookHeaders(t, fresh));
    expect((await t.db.selectFrom('assignments').select('lsCheckedAt').where('id', '=', id).executeTakeFirstOrThrow()).lsCheckedAt).not.toBeNull();
    // A malformed project id is a 400 naming it.
    const bad = await t.anonymous.json('POST', '/api/webhook', { action: 'TASKS_DELETED', project: { id: 'x' } }, webhookHeaders(t, fresh));
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].path).toEqual(['project', 'id']);
  });
});

describe('OpenAPI', () => {
  it('documents problem, removedTaskCount, removed tasks and expiryHours (additive)', async () => {
    const { schemas } = (await t.json('GET', '/api/openapi.json')).body.components;
    expect(schemas.BatchProblem.properties.code.enum).toEqual([
      'annotator_not_running',
      'ls_unreachable',
      'provisioning_failing',
      'ls_tasks_deleted',
      'ls_unknown_tasks',
    ]);
    expect(Object.keys(schemas.Assignment.properties)).toEqual(expect.arrayContaining(['problem', 'removedTaskCount', 'status', 'taskCount']));
    expect(schemas.AssignmentTask.properties.status.enum).toEqual(['open', 'annotated', 'removed']);
    expect(schemas.Workflow.properties).toHaveProperty('expiryHours');
    expect(schemas.CreateWorkflow.properties.expiryHours).toMatchObject({ minimum: 1, maximum: 8760 });
  });
});
