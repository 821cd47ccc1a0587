/**
 * POST /api/webhook against real PostgreSQL: authentication, payload validation, what an event
 * changes, and idempotency (duplicates and out-of-order deliveries change nothing).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileSteps } from '../../orchestrator/steps.ts';
import type { Annotator } from '../../src/db/types.ts';
import { seedAnnotator, seedInProgressBatch, seedRole, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
const wakes: string[] = [];
let annotator: Annotator;
let project = 500;

beforeAll(async () => {
  t = await startTestService({ overrides: { wake: (reason: string) => void wakes.push(reason) } });
  const role = await seedRole(t);
  annotator = await seedAnnotator(t, { roleId: role.id });
});
afterAll(async () => t?.close());

const choice = (c: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];

/** An in-progress batch of `real` images and `gold` gold tasks, with Label Studio ids assigned. */
const batch = (real: number, gold = 0) => seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real, gold, prefix: 'wh' });

let annotationId = 9000;
function payload(
  action: string,
  b: { lsProjectId: number },
  lsTaskId: number,
  over: { id?: number; result?: unknown[]; updated_at?: string; lead_time?: number; was_cancelled?: boolean } = {},
) {
  const id = over.id ?? ++annotationId;
  const updated = over.updated_at ?? new Date().toISOString().replace('Z', '123Z');
  return {
    action,
    annotation: {
      id,
      result: over.result ?? choice('cat'),
      was_cancelled: over.was_cancelled ?? false,
      ground_truth: false,
      created_at: updated,
      updated_at: updated,
      lead_time: over.lead_time ?? 12.5,
      task: lsTaskId,
      project: b.lsProjectId,
      completed_by: 1,
    },
    project: { id: b.lsProjectId, title: 'x', task_number: 3 },
    task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
  };
}

/** Posts a webhook and waits until what it acknowledged is applied (helpers/batches.ts webhooksApplied). */
async function post(body: unknown, headers = webhookHeaders(t, annotator)) {
  const res = await t.anonymous.json('POST', '/api/webhook', body, headers);
  await webhooksApplied(t);
  return res;
}

async function taskState(lsTaskId: number) {
  return t.db.selectFrom('assignmentTasks').selectAll().where('lsTaskId', '=', lsTaskId).executeTakeFirstOrThrow();
}
async function assignmentState(id: number) {
  return t.db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}
async function eventCount() {
  return Number((await t.db.selectFrom('annotationEvents').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
}

describe('webhook: authentication', () => {
  it('answers 401 for a missing, wrong or foreign secret and unknown annotators, before reading the body', async () => {
    const b = await batch(1);
    const body = payload('ANNOTATION_CREATED', b, b.real[0]!);
    const before = await eventCount();
    const other = await seedAnnotator(t, { roleId: null });
    const deleted = await seedAnnotator(t, { roleId: null, status: 'deleted' });
    const good = webhookHeaders(t, annotator);
    const cases: Record<string, string>[] = [
      {},
      { 'x-annotator-id': String(annotator.id) },
      { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': 'wrong' },
      { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': good['x-webhook-secret'].slice(0, -1) },
      // Another annotator's secret does not authenticate this one.
      { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': webhookHeaders(t, other)['x-webhook-secret'] },
      // The secret of an earlier start (a restart rotates it).
      { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': webhookHeaders(t, { id: annotator.id, startGeneration: 7 })['x-webhook-secret'] },
      { 'x-annotator-id': '999999', 'x-webhook-secret': good['x-webhook-secret'] },
      { 'x-annotator-id': 'abc', 'x-webhook-secret': good['x-webhook-secret'] },
      { 'x-annotator-id': '0', 'x-webhook-secret': good['x-webhook-secret'] },
      webhookHeaders(t, deleted),
    ];
    for (const headers of cases) {
      const res = await t.anonymous.json('POST', '/api/webhook', body, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
    // Auth comes first: a bad secret with a malformed body is still a 401.
    expect((await t.anonymous.json('POST', '/api/webhook', '{"action":', { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': 'x' })).status).toBe(401);
    expect(await eventCount()).toBe(before);
    expect((await taskState(b.real[0]!)).status).toBe('open');
  });

  it('needs no session', async () => {
    const b = await batch(1);
    expect((await post(payload('ANNOTATION_CREATED', b, b.real[0]!))).body).toEqual({ ok: true });
  });
});

describe('webhook: malformed payloads', () => {
  it('answers 400 and records nothing', async () => {
    const b = await batch(1);
    const good = payload('ANNOTATION_CREATED', b, b.real[0]!);
    const before = await eventCount();
    const bad: unknown[] = [
      '{"action":',
      'not json',
      {},
      { annotation: good.annotation },
      { action: '' },
      { ...good, annotation: undefined },
      { ...good, annotation: { ...good.annotation, id: 'x' } },
      { ...good, annotation: { ...good.annotation, id: -1 } },
      { ...good, annotation: { ...good.annotation, updated_at: 'yesterday' } },
      { ...good, annotation: { ...good.annotation, result: 'cat' } },
      { ...good, annotation: { ...good.annotation, task: undefined }, task: undefined },
      { ...good, annotation: { ...good.annotation, project: undefined }, project: undefined },
      { action: 'ANNOTATIONS_DELETED', project: { id: b.lsProjectId } },
      { action: 'ANNOTATIONS_DELETED', annotations: [{ id: 'x' }] },
      [good],
    ];
    for (const body of bad) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(typeof res.body.error).toBe('string');
    }
    expect(await eventCount()).toBe(before);
    expect((await taskState(b.real[0]!)).status).toBe('open');
  });

  it('answers 400 naming the field for timestamps, numbers and text the database would refuse', async () => {
    const b = await batch(1);
    const good = payload('ANNOTATION_CREATED', b, b.real[0]!);
    const before = await eventCount();
    const ann = (over: Record<string, unknown>) => ({ ...good, annotation: { ...good.annotation, ...over } });
    const cases: [unknown, (string | number)[]][] = [
      [ann({ updated_at: '2024-06-31T00:00:00Z' }), ['annotation', 'updated_at']],
      [ann({ updated_at: '2026-02-30T00:00:00Z' }), ['annotation', 'updated_at']],
      [ann({ created_at: '10000-01-01T00:00:00Z' }), ['annotation', 'created_at']],
      [ann({ updated_at: 1767323045 }), ['annotation', 'updated_at']],
      [ann({ updated_at: '1767323045' }), ['annotation', 'updated_at']],
      [ann({ updated_at: '2026-01-02T24:00:00Z' }), ['annotation', 'updated_at']],
      [ann({ id: 2_147_483_648 }), ['annotation', 'id']],
      [ann({ task: 1e20 }), ['annotation', 'task']],
      [ann({ lead_time: -3 }), ['annotation', 'lead_time']],
      [ann({ lead_time: 1e300 }), ['annotation', 'lead_time']],
      [ann({ result: [{ from_name: 'note', type: 'textarea', value: { text: ['a\u0000b'] } }] }), ['annotation', 'result']],
      [{ ...good, project: { id: 3_000_000_000 } }, ['project', 'id']],
      [{ action: 'ANNOTATIONS_DELETED', annotations: [{ id: 1 }, { id: 2 ** 31 }], project: { id: b.lsProjectId } }, ['annotations', 1, 'id']],
    ];
    for (const [body, path] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('Validation failed');
      expect(res.body.details, JSON.stringify(body)).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    }
    expect(await eventCount()).toBe(before);
    expect((await taskState(b.real[0]!)).status).toBe('open');
  });

  it('stores a timestamp without a zone as UTC, and offsets as the instant they name', async () => {
    const b = await batch(2);
    const naive = payload('ANNOTATION_CREATED', b, b.real[0]!, { updated_at: '2026-05-01T10:00:00.000001' });
    const offset = payload('ANNOTATION_CREATED', b, b.real[1]!, { updated_at: '2026-05-01T10:00:00+05:30' });
    for (const body of [naive, offset]) expect((await post(body)).body).toEqual({ ok: true });
    expect(new Date((await taskState(b.real[0]!)).lsAnnotationUpdatedAt!).toISOString()).toBe('2026-05-01T10:00:00.000Z');
    expect(new Date((await taskState(b.real[1]!)).lsAnnotationUpdatedAt!).toISOString()).toBe('2026-05-01T04:30:00.000Z');
  });

  it('acknowledges actions it does not handle without recording them', async () => {
    const before = await eventCount();
    expect((await post({ action: 'PROJECT_UPDATED', project: { id: 1 } })).body).toEqual({ ok: true });
    expect((await post({ action: 'TASKS_CREATED', tasks: [{ id: 1 }] })).body).toEqual({ ok: true });
    expect(await eventCount()).toBe(before);
  });
});

describe('webhook: ingestion', () => {
  it('records the event with its timing, annotates the task and touches lastActiveAt', async () => {
    const b = await batch(2);
    await t.db.updateTable('annotators').set({ lastActiveAt: new Date('2020-01-01T00:00:00Z') }).where('id', '=', annotator.id).execute();
    const body = payload('ANNOTATION_CREATED', b, b.real[0]!, { lead_time: 12.5, updated_at: '2026-01-02T03:04:05.123456Z' });
    expect((await post(body)).body).toEqual({ ok: true });

    const task = await taskState(b.real[0]!);
    expect(task).toMatchObject({ status: 'annotated', result: choice('cat'), lsAnnotationId: body.annotation.id, leadTimeSeconds: 12.5, skipped: false });
    expect(task.annotatedAt).toBeInstanceOf(Date);
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
    const event = await t.db.selectFrom('annotationEvents').selectAll().where('lsAnnotationId', '=', body.annotation.id).executeTakeFirstOrThrow();
    expect(event).toMatchObject({
      annotatorId: annotator.id,
      assignmentId: b.assignmentId,
      eventType: 'annotation_created',
      lsProjectId: b.lsProjectId,
      lsTaskId: b.real[0],
      timeSpentMs: 12500,
      source: 'webhook',
    });
    const a = await t.db.selectFrom('annotators').select('lastActiveAt').where('id', '=', annotator.id).executeTakeFirstOrThrow();
    expect(a.lastActiveAt!.toISOString()).toBe('2026-01-02T03:04:05.123Z');
  });

  it('changes nothing on a duplicate, even delivered 20 times at once', async () => {
    const b = await batch(2);
    const body = payload('ANNOTATION_CREATED', b, b.real[0]!);
    const before = await eventCount();
    const results = await Promise.all(Array.from({ length: 20 }, () => post(body)));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(await eventCount()).toBe(before + 1);
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);

    const snapshot = { task: await taskState(b.real[0]!), assignment: await assignmentState(b.assignmentId) };
    await t.db.updateTable('annotators').set({ lastActiveAt: new Date('2020-01-01T00:00:00Z') }).where('id', '=', annotator.id).execute();
    expect((await post(body)).body).toEqual({ ok: true });
    expect(await taskState(b.real[0]!)).toEqual(snapshot.task);
    expect(await assignmentState(b.assignmentId)).toEqual(snapshot.assignment);
    const a = await t.db.selectFrom('annotators').select('lastActiveAt').where('id', '=', annotator.id).executeTakeFirstOrThrow();
    expect(a.lastActiveAt!.toISOString()).toBe('2020-01-01T00:00:00.000Z');
  });

  it('keeps the newest annotation when deliveries arrive out of order', async () => {
    const b = await batch(2);
    const id = ++annotationId;
    const created = payload('ANNOTATION_CREATED', b, b.real[0]!, { id, result: choice('cat'), updated_at: '2026-03-01T10:00:00.000001Z' });
    const update1 = payload('ANNOTATION_UPDATED', b, b.real[0]!, { id, result: choice('dog'), updated_at: '2026-03-01T10:00:05.000001Z' });
    const update2 = payload('ANNOTATION_UPDATED', b, b.real[0]!, { id, result: choice('cat'), updated_at: '2026-03-01T10:00:05.000002Z' });

    // The newest update arrives first, then the creation, then the older update.
    for (const body of [update2, created, update1]) expect((await post(body)).status).toBe(200);
    const task = await taskState(b.real[0]!);
    expect(task.result).toEqual(choice('cat'));
    expect(new Date(task.lsAnnotationUpdatedAt!).toISOString()).toBe('2026-03-01T10:00:05.000Z');
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
    // All three are recorded as facts, once each.
    const events = await t.db.selectFrom('annotationEvents').select('eventType').where('lsAnnotationId', '=', id).orderBy('id').execute();
    expect(events.map((e) => e.eventType)).toEqual(['annotation_updated', 'annotation_created', 'annotation_updated']);
    // Replaying any of them changes nothing.
    for (const body of [created, update1, update2]) await post(body);
    expect(await taskState(b.real[0]!)).toEqual(task);
    expect((await t.db.selectFrom('annotationEvents').select('id').where('lsAnnotationId', '=', id).execute()).length).toBe(3);
  });

  it('reopens a task on ANNOTATIONS_DELETED and ignores the deleted annotation afterwards', async () => {
    const b = await batch(2);
    const created = payload('ANNOTATION_CREATED', b, b.real[0]!);
    await post(created);
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
    const del = { action: 'ANNOTATIONS_DELETED', annotations: [{ id: created.annotation.id }], project: { id: b.lsProjectId } };
    expect((await post(del)).body).toEqual({ ok: true });
    expect(await taskState(b.real[0]!)).toMatchObject({ status: 'open', result: null, lsAnnotationId: null, annotatedAt: null });
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(0);
    // A duplicate deletion, and an update of the deleted annotation arriving late, change nothing.
    await post(del);
    await post(payload('ANNOTATION_UPDATED', b, b.real[0]!, { id: created.annotation.id, updated_at: '2099-01-01T00:00:00Z' }));
    expect((await taskState(b.real[0]!)).status).toBe('open');
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(0);
    // A new annotation of the task counts again.
    await post(payload('ANNOTATION_CREATED', b, b.real[0]!));
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
  });

  it('scores gold tasks, rescoring on update and dropping the score on deletion', async () => {
    const b = await batch(3, 1);
    expect(b.gold).toHaveLength(1);
    const gold = b.gold[0]!;
    const id = ++annotationId;
    await post(payload('ANNOTATION_CREATED', b, gold, { id, result: choice('cat'), updated_at: '2026-04-01T00:00:00Z' }));
    const task = await taskState(gold);
    let result = await t.db.selectFrom('goldResults').selectAll().where('assignmentTaskId', '=', task.id).executeTakeFirstOrThrow();
    expect(result).toMatchObject({ assignmentId: b.assignmentId, annotatorId: annotator.id, goldTaskId: task.goldTaskId, score: 1 });
    expect(result.details).toMatchObject({ score: 1, controls: [{ fromName: 'label', type: 'choices', score: 1 }] });

    await post(payload('ANNOTATION_UPDATED', b, gold, { id, result: choice('dog'), updated_at: '2026-04-01T00:01:00Z' }));
    result = await t.db.selectFrom('goldResults').selectAll().where('assignmentTaskId', '=', task.id).executeTakeFirstOrThrow();
    expect(result.score).toBe(0);
    expect((await t.db.selectFrom('goldResults').select('id').where('assignmentTaskId', '=', task.id).execute()).length).toBe(1);

    await post({ action: 'ANNOTATIONS_DELETED', annotations: [{ id }], project: { id: b.lsProjectId } });
    expect(await t.db.selectFrom('goldResults').select('id').where('assignmentTaskId', '=', task.id).executeTakeFirst()).toBeUndefined();

    // A skipped gold task scores 0.
    await post(payload('ANNOTATION_CREATED', b, gold, { result: [], was_cancelled: true }));
    result = await t.db.selectFrom('goldResults').selectAll().where('assignmentTaskId', '=', task.id).executeTakeFirstOrThrow();
    expect(result.score).toBe(0);
    expect(await taskState(gold)).toMatchObject({ status: 'annotated', skipped: true });
  });

  it('records review decisions on the task for the reconciler', async () => {
    const b = await batch(1);
    await post(
      payload('ANNOTATION_CREATED', b, b.real[0]!, {
        result: [
          { from_name: 'review_decision', to_name: 'image', type: 'choices', value: { choices: ['reject'] } },
          { from_name: 'review_reason', to_name: 'image', type: 'textarea', value: { text: ['Box too loose'] } },
        ],
      }),
    );
    expect(await taskState(b.real[0]!)).toMatchObject({ reviewDecision: 'reject', reviewReason: 'Box too loose', reviewAppliedAt: null });
  });

  it('wakes the reconciler when a batch is fully annotated', async () => {
    const b = await batch(2, 1);
    wakes.length = 0;
    await post(payload('ANNOTATION_CREATED', b, b.lsTaskIds[0]!));
    await post(payload('ANNOTATION_CREATED', b, b.lsTaskIds[1]!));
    expect(wakes).toEqual([]);
    await post(payload('ANNOTATION_CREATED', b, b.lsTaskIds[2]!));
    expect(wakes).toEqual([`webhook: batch ${b.assignmentId} annotated`]);
    expect(await assignmentState(b.assignmentId)).toMatchObject({ completedCount: 3, taskCount: 3, status: 'in_progress' });
  });

  it('records events about unknown tasks or finished batches without changing anything', async () => {
    const b = await batch(1);
    const before = await eventCount();
    expect((await post(payload('ANNOTATION_CREATED', { lsProjectId: 424242 }, 1)) ).body).toEqual({ ok: true });
    await t.db.updateTable('assignments').set({ status: 'completed' }).where('id', '=', b.assignmentId).execute();
    expect((await post(payload('ANNOTATION_CREATED', b, b.real[0]!))).body).toEqual({ ok: true });
    expect(await eventCount()).toBe(before + 2);
    expect((await taskState(b.real[0]!)).status).toBe('open');
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(0);
  });

  it('accepts the singular ANNOTATION_DELETED the reference names', async () => {
    const b = await batch(1);
    const created = payload('ANNOTATION_CREATED', b, b.real[0]!);
    await post(created);
    expect((await post({ ...created, action: 'ANNOTATION_DELETED' })).body).toEqual({ ok: true });
    expect((await taskState(b.real[0]!)).status).toBe('open');
  });
});

describe('webhook: deletions are set-based', () => {
  it('handles one ANNOTATIONS_DELETED with 10,000 ids in one short transaction, without holding up the annotator’s other webhooks', async () => {
    const b = await batch(4, 1);
    const held: number[] = [];
    for (const lsTaskId of [b.real[0]!, b.real[1]!, b.gold[0]!]) {
      const body = payload('ANNOTATION_CREATED', b, lsTaskId);
      await post(body);
      held.push(body.annotation.id);
    }
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(3);
    expect(await t.db.selectFrom('goldResults').select('id').where('assignmentId', '=', b.assignmentId).execute()).toHaveLength(1);
    const before = await eventCount();
    // 10,000 ids: three that hold tasks of ours, the rest unknown here (another project's, or long gone).
    const ids = [...held, ...Array.from({ length: 9_997 }, (_, i) => 50_000_000 + i)];
    const del = { action: 'ANNOTATIONS_DELETED', annotations: ids.map((id) => ({ id })), project: { id: b.lsProjectId } };

    // While it runs, the same annotator submits another task: its webhook must not wait for the deletion.
    const started = performance.now();
    const deletion = post(del).then((r) => ({ r, ms: performance.now() - started }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const t0 = performance.now();
    const other = await post(payload('ANNOTATION_CREATED', b, b.real[3]!));
    const otherMs = performance.now() - t0;
    const { r, ms } = await deletion;
    console.log(`ANNOTATIONS_DELETED with 10,000 ids: ${ms.toFixed(0)} ms; a concurrent webhook of the same annotator: ${otherMs.toFixed(0)} ms`);
    expect(r.status).toBe(200);
    expect(other.status).toBe(200);
    // Generous bounds for a busy machine; the figures themselves are in the report and README.
    expect(ms).toBeLessThan(10_000);
    expect(otherMs).toBeLessThan(10_000);

    expect(await eventCount()).toBe(before + 10_000 + 1);
    for (const lsTaskId of [b.real[0]!, b.real[1]!, b.gold[0]!]) expect((await taskState(lsTaskId)).status).toBe('open');
    expect((await taskState(b.real[3]!)).status).toBe('annotated');
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
    expect(await t.db.selectFrom('goldResults').select('id').where('assignmentId', '=', b.assignmentId).execute()).toHaveLength(0);
    // The tombstones of the three carry their batch; a repeat records and changes nothing.
    const tomb = await t.db.selectFrom('annotationEvents').select(['lsAnnotationId', 'assignmentId']).where('eventType', '=', 'annotation_deleted').where('lsAnnotationId', 'in', held).execute();
    expect(tomb.map((e) => e.assignmentId)).toEqual([b.assignmentId, b.assignmentId, b.assignmentId]);
    expect((await post(del)).status).toBe(200);
    expect(await eventCount()).toBe(before + 10_001);
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
  });

  it('reopens tasks across batches once each, and a duplicate id in the list counts once', async () => {
    const b1 = await batch(2);
    const b2 = await batch(2);
    const c1 = payload('ANNOTATION_CREATED', b1, b1.real[0]!);
    const c2 = payload('ANNOTATION_CREATED', b2, b2.real[0]!);
    const c3 = payload('ANNOTATION_CREATED', b2, b2.real[1]!);
    for (const c of [c1, c2, c3]) await post(c);
    // No project: a Label Studio that sends the ids alone still finds the tasks of this annotator.
    const ids = [c1.annotation.id, c2.annotation.id, c3.annotation.id, c2.annotation.id];
    expect((await post({ action: 'ANNOTATIONS_DELETED', annotations: ids.map((id) => ({ id })) })).body).toEqual({ ok: true });
    expect((await assignmentState(b1.assignmentId)).completedCount).toBe(0);
    expect((await assignmentState(b2.assignmentId)).completedCount).toBe(0);
    expect(await t.db.selectFrom('annotationEvents').select('id').where('eventType', '=', 'annotation_deleted').where('lsAnnotationId', 'in', ids).execute()).toHaveLength(3);
  });

  it('lets the task take an older annotation that survives the deleted newer one', async () => {
    const b = await batch(1);
    const task = b.real[0]!;
    const older = payload('ANNOTATION_CREATED', b, task, { result: choice('cat'), updated_at: '2026-06-01T10:00:00Z' });
    const newer = payload('ANNOTATION_CREATED', b, task, { result: choice('dog'), updated_at: '2026-06-01T11:00:00Z' });
    await post(older);
    await post(newer);
    expect((await taskState(task)).result).toEqual(choice('dog'));
    await post({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: newer.annotation.id }], project: { id: b.lsProjectId } });
    expect((await taskState(task)).lsAnnotationUpdatedAt).toBeNull();
    // The surviving older annotation, delivered again (an update, or found by the comparison), counts.
    await post({ ...older, action: 'ANNOTATION_UPDATED' });
    expect(await taskState(task)).toMatchObject({ status: 'annotated', result: choice('cat'), lsAnnotationId: older.annotation.id });
    expect((await assignmentState(b.assignmentId)).completedCount).toBe(1);
  });
});

describe('webhook: review decisions, as the one implementation records them', () => {
  const review = (decision: string, reason?: string) => [
    { from_name: 'review_decision', to_name: 'image', type: 'choices', value: { choices: [decision] } },
    ...(reason ? [{ from_name: 'review_reason', to_name: 'image', type: 'textarea', value: { text: [reason] } }] : []),
  ];

  it('takes the newest decision until it is applied, then keeps it final', async () => {
    const b = await batch(1);
    const task = b.real[0]!;
    const id = ++annotationId;
    await post(payload('ANNOTATION_CREATED', b, task, { id, result: review('reject', 'blurry'), updated_at: '2026-07-01T10:00:00Z' }));
    expect(await taskState(task)).toMatchObject({ reviewDecision: 'reject', reviewReason: 'blurry' });
    await post(payload('ANNOTATION_UPDATED', b, task, { id, result: review('accept'), updated_at: '2026-07-01T10:01:00Z' }));
    expect(await taskState(task)).toMatchObject({ reviewDecision: 'accept', reviewReason: null });

    wakes.length = 0;
    await t.db.updateTable('assignmentTasks').set({ reviewAppliedAt: new Date() }).where('lsTaskId', '=', task).execute();
    await post(payload('ANNOTATION_UPDATED', b, task, { id, result: review('reject', 'late change'), updated_at: '2026-07-01T10:02:00Z' }));
    // The result follows Label Studio; the applied decision stays, and nothing new wakes the reconciler for it.
    expect(await taskState(task)).toMatchObject({ reviewDecision: 'accept', reviewReason: null, result: review('reject', 'late change') });
    expect(wakes).toEqual([]);
    // A deletion keeps an applied decision too.
    await post({ action: 'ANNOTATIONS_DELETED', annotations: [{ id }], project: { id: b.lsProjectId } });
    expect(await taskState(task)).toMatchObject({ status: 'open', reviewDecision: 'accept' });
  });

  it('clears an unapplied decision when its annotation is deleted, and wakes the reconciler for a new one', async () => {
    const b = await batch(2);
    const first = payload('ANNOTATION_CREATED', b, b.real[0]!, { result: review('reject', 'wrong label') });
    wakes.length = 0;
    await post(first);
    expect(wakes).toEqual(['webhook: review decision']);
    await post({ action: 'ANNOTATIONS_DELETED', annotations: [{ id: first.annotation.id }], project: { id: b.lsProjectId } });
    expect(await taskState(b.real[0]!)).toMatchObject({ status: 'open', reviewDecision: null, reviewReason: null });
  });

  it('records no decision on a gold task', async () => {
    const b = await batch(1, 1);
    await post(payload('ANNOTATION_CREATED', b, b.gold[0]!, { result: review('reject', 'x') }));
    expect(await taskState(b.gold[0]!)).toMatchObject({ status: 'annotated', reviewDecision: null, reviewReason: null });
  });
});

describe('webhook: the inbox (acknowledged once stored, applied by the drainer)', () => {
  const inboxRows = async () =>
    (
      await sql<{ n: number; failed: number }>`SELECT (SELECT count(*) FROM webhook_inbox)::int AS n, (SELECT count(*) FROM webhook_inbox_set_aside)::int AS failed`.execute(
        t.db,
      )
    ).rows[0]!;
  /** The inbox row a webhook would have stored, left by a process that stopped before applying it. */
  const stored = (b: { lsProjectId: number }, lsTaskId: number, id: number, updatedAt: string) => ({
    annotator: annotator.id,
    event_type: 'annotation_created',
    source: 'webhook',
    project: b.lsProjectId,
    ls_task: lsTaskId,
    annotation: id,
    result: choice('dog'),
    updated_at: updatedAt,
    time_spent_ms: 1000,
    lead_time: 1,
    was_cancelled: false,
    review_decision: null,
    review_reason: null,
  });

  it('answers once the event is stored, and applies it moments later without being asked', async () => {
    const b = await batch(1);
    const res = await t.anonymous.json('POST', '/api/webhook', payload('ANNOTATION_CREATED', b, b.real[0]!), webhookHeaders(t, annotator));
    expect(res.status).toBe(200);
    for (let i = 0; i < 200 && (await taskState(b.real[0]!)).status !== 'annotated'; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await taskState(b.real[0]!)).status).toBe('annotated');
    expect(await inboxRows()).toEqual({ n: 0, failed: 0 });
  });

  it('applies a group as the same events one by one would: gold created then updated, a duplicate, the batch ready', async () => {
    const b = await batch(2, 1);
    const gold = b.gold[0]!;
    const [first, second] = b.real;
    const ev = (lsTaskId: number, id: number, type: string, label: string, at: string) => ({ ...stored(b, lsTaskId, id, at), event_type: type, result: choice(label) });
    const group = [
      ev(gold, 78_001, 'annotation_created', 'cat', '2026-04-02T10:00:00Z'),
      ev(first!, 78_002, 'annotation_created', 'cat', '2026-04-02T10:00:00Z'),
      ev(gold, 78_001, 'annotation_updated', 'dog', '2026-04-02T10:01:00Z'),
      ev(first!, 78_002, 'annotation_created', 'cat', '2026-04-02T10:00:00Z'),
      ev(second!, 78_003, 'annotation_created', 'dog', '2026-04-02T10:00:00Z'),
    ];
    // Stored while no drain ran (as a stopped process leaves them), then drained together.
    for (const e of group) await sql`INSERT INTO webhook_inbox (event) VALUES (${JSON.stringify(e)}::jsonb)`.execute(t.db);
    wakes.length = 0;
    await reconcileSteps(t.ctx).find((s) => s.name === 'webhook-inbox')!.run(t.ctx);
    const goldTask = await taskState(gold);
    expect(goldTask).toMatchObject({ status: 'annotated', result: choice('dog') });
    const score = await t.db.selectFrom('goldResults').select('score').where('assignmentTaskId', '=', goldTask.id).execute();
    expect(score).toEqual([{ score: 0 }]);
    expect(await assignmentState(b.assignmentId)).toMatchObject({ completedCount: 3, taskCount: 3 });
    expect(wakes).toEqual([`webhook: batch ${b.assignmentId} annotated`]);
    const events = await t.db.selectFrom('annotationEvents').select('lsAnnotationId').where('assignmentId', '=', b.assignmentId).execute();
    expect(events).toHaveLength(4);
    expect(await inboxRows()).toEqual({ n: 0, failed: 0 });
  });

  it('applies what a stopped process acknowledged at the next reconcile pass, and sets aside an event that fails alone', async () => {
    const b = await batch(2);
    await sql`INSERT INTO webhook_inbox (event) VALUES
      (${JSON.stringify(stored(b, b.real[0]!, 77_001, '2026-04-01T10:00:00Z'))}::jsonb),
      (${JSON.stringify(stored(b, b.real[1]!, 77_002, 'not a time'))}::jsonb)`.execute(t.db);
    const step = reconcileSteps(t.ctx).find((s) => s.name === 'webhook-inbox')!;
    await step.run(t.ctx);
    expect((await taskState(b.real[0]!)).status).toBe('annotated');
    expect((await taskState(b.real[1]!)).status).toBe('open');
    // The failing event is kept, with its error, out of the drainer's way (the inbox is empty).
    expect(await inboxRows()).toEqual({ n: 0, failed: 1 });
    const [kept] = (await sql<{ error: string }>`SELECT error FROM webhook_inbox_set_aside`.execute(t.db)).rows;
    expect(kept!.error).toMatch(/time/i);
    await step.run(t.ctx);
    expect(await inboxRows()).toEqual({ n: 0, failed: 1 });
    await sql`DELETE FROM webhook_inbox_set_aside`.execute(t.db);
  });
});
