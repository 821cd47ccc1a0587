import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

let seq = 0;
const uniq = (p: string) => `${p}${++seq}`;

async function seedAnnotator(name = uniq('Person ')) {
  return t.db
    .insertInto('annotators')
    .values({ name, email: `${uniq('p')}@example.com`, subdomain: uniq('s-') })
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function seedWorkflow(name = uniq('wf')) {
  return t.db.insertInto('workflows').values({ name, s3SourcePath: 'in/', s3ExportPath: 'out/' }).returningAll().executeTakeFirstOrThrow();
}

async function seedAssignment(annotatorId: number, workflowId: number) {
  return t.db.insertInto('assignments').values({ annotatorId, workflowId, status: 'completed', taskCount: 5 }).returningAll().executeTakeFirstOrThrow();
}

const ids = (body: { data: Array<{ id: number }> }) => body.data.map((x) => x.id);

describe('rejections', () => {
  let original: Awaited<ReturnType<typeof seedAnnotator>>;
  let reviewer: Awaited<ReturnType<typeof seedAnnotator>>;
  let labelWf: Awaited<ReturnType<typeof seedWorkflow>>;
  let reviewWf: Awaited<ReturnType<typeof seedWorkflow>>;
  let reworkWf: Awaited<ReturnType<typeof seedWorkflow>>;
  let origAsg: Awaited<ReturnType<typeof seedAssignment>>;
  let reviewAsg: Awaited<ReturnType<typeof seedAssignment>>;
  let routedAsg: Awaited<ReturnType<typeof seedAssignment>>;
  const r: Record<string, { id: number; createdAt: Date }> = {};

  beforeAll(async () => {
    original = await seedAnnotator('Olive Original');
    reviewer = await seedAnnotator('Rita Reviewer');
    const other = await seedAnnotator('Otto Other');
    labelWf = await seedWorkflow('Label');
    reviewWf = await seedWorkflow('Review');
    reworkWf = await seedWorkflow('Rework');
    const otherReviewWf = await seedWorkflow('Other review');
    origAsg = await seedAssignment(original.id, labelWf.id);
    reviewAsg = await seedAssignment(reviewer.id, reviewWf.id);
    routedAsg = await seedAssignment(other.id, reworkWf.id);
    const insert = (values: Record<string, unknown>) =>
      t.db.insertInto('rejections').values({ workflowId: reviewWf.id, imageKey: 'in/img.jpg', ...values } as never).returning(['id', 'createdAt']).executeTakeFirstOrThrow();
    r.routed = await insert({
      originalAnnotatorId: original.id,
      reviewerAnnotatorId: reviewer.id,
      originalAssignmentId: origAsg.id,
      reviewerAssignmentId: reviewAsg.id,
      routedToAssignmentId: routedAsg.id,
      imageKey: 'in/1.jpg',
      reason: 'Box too loose',
      actionTaken: 'route_to_workflow',
      reworkIteration: 1,
      createdAt: '2026-03-01T10:00:00Z',
    });
    r.archived = await insert({
      originalAnnotatorId: original.id,
      reviewerAnnotatorId: reviewer.id,
      originalAssignmentId: origAsg.id,
      reviewerAssignmentId: reviewAsg.id,
      imageKey: 'in/2.jpg',
      actionTaken: 'archive',
      createdAt: '2026-03-02T10:00:00Z',
    });
    r.otherAnnotator = await insert({ originalAnnotatorId: other.id, reviewerAnnotatorId: reviewer.id, createdAt: '2026-03-03T10:00:00Z' });
    r.orphan = await insert({ workflowId: otherReviewWf.id, createdAt: '2026-03-03T10:00:00Z' });
  });

  it('lists newest first in a paginated envelope with both annotators', async () => {
    const res = await t.json('GET', '/api/rejections');
    expect(res.status).toBe(200);
    // Same createdAt: the higher id first.
    expect(ids(res.body)).toEqual([r.orphan!.id, r.otherAnnotator!.id, r.archived!.id, r.routed!.id]);
    expect(res.body.pagination).toEqual({ total: 4, limit: 100, offset: 0, hasMore: false });
    expect(res.body.data[3]).toEqual({
      id: r.routed!.id,
      workflowId: reviewWf.id,
      originalAnnotatorId: original.id,
      reviewerAnnotatorId: reviewer.id,
      originalAssignmentId: origAsg.id,
      reviewerAssignmentId: reviewAsg.id,
      routedToAssignmentId: routedAsg.id,
      imageKey: 'in/1.jpg',
      reason: 'Box too loose',
      actionTaken: 'route_to_workflow',
      reworkIteration: 1,
      createdAt: '2026-03-01T10:00:00.000Z',
      originalAnnotator: { id: original.id, name: 'Olive Original', email: original.email },
      reviewerAnnotator: { id: reviewer.id, name: 'Rita Reviewer', email: reviewer.email },
    });
    expect(res.body.data[0]).toMatchObject({ originalAnnotator: null, reviewerAnnotator: null, actionTaken: 'none', reason: null });

    const page = await t.json('GET', '/api/rejections?limit=2&offset=1');
    expect(ids(page.body)).toEqual([r.otherAnnotator!.id, r.archived!.id]);
    expect(page.body.pagination).toEqual({ total: 4, limit: 2, offset: 1, hasMore: true });
  });

  it('filters by reviewer workflow, original annotator and action', async () => {
    const get = async (q: string) => (await t.json('GET', `/api/rejections?${q}`)).body;
    expect(ids(await get(`workflowId=${reviewWf.id}`))).toEqual([r.otherAnnotator!.id, r.archived!.id, r.routed!.id]);
    expect(ids(await get(`workflowId=${labelWf.id}`))).toEqual([]);
    expect(ids(await get(`annotatorId=${original.id}`))).toEqual([r.archived!.id, r.routed!.id]);
    expect(ids(await get(`annotatorId=${reviewer.id}`))).toEqual([]);
    expect(ids(await get('actionTaken=archive'))).toEqual([r.archived!.id]);
    expect(ids(await get('actionTaken=none'))).toEqual([r.orphan!.id, r.otherAnnotator!.id]);
    const combined = await get(`annotatorId=${original.id}&actionTaken=route_to_workflow&workflowId=${reviewWf.id}`);
    expect(ids(combined)).toEqual([r.routed!.id]);
    expect(combined.pagination.total).toBe(1);
  });

  it('validates filters and pagination', async () => {
    for (const q of ['actionTaken=delete', 'actionTaken=', 'workflowId=abc', 'annotatorId=0', 'limit=501', 'offset=x']) {
      const res = await t.json('GET', `/api/rejections?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });

  it('shows one rejection with its annotators and assignments', async () => {
    const res = await t.json('GET', `/api/rejections/${r.routed!.id}`);
    expect(res.status).toBe(200);
    const asg = (a: typeof origAsg, wf: typeof labelWf) => ({
      id: a.id,
      workflowId: wf.id,
      annotatorId: a.annotatorId,
      lsProjectId: null,
      taskCount: 5,
      goldTaskCount: 0,
      completedCount: 0,
      status: 'completed',
      error: null,
      exportKey: null,
      startedAt: null,
      completedAt: null,
      createdAt: a.createdAt.toISOString(),
      updatedAt: a.updatedAt.toISOString(),
      problem: null,
      removedTaskCount: 0,
      workflow: { id: wf.id, name: wf.name },
    });
    expect(res.body).toMatchObject({
      id: r.routed!.id,
      originalAnnotator: { id: original.id, name: 'Olive Original', email: original.email },
      reviewerAnnotator: { id: reviewer.id, name: 'Rita Reviewer', email: reviewer.email },
    });
    expect(res.body.reviewerAssignment).toEqual(asg(reviewAsg, reviewWf));
    expect(res.body.originalAssignment).toEqual(asg(origAsg, labelWf));
    expect(res.body.routedToAssignment).toEqual(asg(routedAsg, reworkWf));

    const archived = await t.json('GET', `/api/rejections/${r.archived!.id}`);
    expect(archived.body.routedToAssignment).toBeNull();
    expect(archived.body.originalAssignment.id).toBe(origAsg.id);
    const orphan = await t.json('GET', `/api/rejections/${r.orphan!.id}`);
    expect(orphan.body).toMatchObject({
      originalAnnotator: null,
      reviewerAnnotator: null,
      reviewerAssignment: null,
      originalAssignment: null,
      routedToAssignment: null,
    });
  });

  it('answers 404 for a missing rejection and 400 for a bad id', async () => {
    const res = await t.json('GET', '/api/rejections/424242');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'Rejection not found' });
    for (const id of ['x', '0', '-2', '99999999999']) expect((await t.json('GET', `/api/rejections/${id}`)).status, id).toBe(400);
  });
});

describe('events', () => {
  let alice: Awaited<ReturnType<typeof seedAnnotator>>;
  let bob: Awaited<ReturnType<typeof seedAnnotator>>;
  /** Every seeded event in the documented order (createdAt desc, id desc, then type). */
  let seeded: Array<{ type: string; id: number; annotatorId: number; at: number }>;
  const expectedPairs = (keep: (e: (typeof seeded)[number]) => boolean = () => true) =>
    seeded.filter(keep).map((e) => [e.type, e.id]);

  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  const container = (annotatorId: number, minute: number, extra: Record<string, unknown> = {}) =>
    t.db
      .insertInto('containerEvents')
      .values({ annotatorId, eventType: 'status_change', fromStatus: 'starting', toStatus: 'active', message: 'healthy', createdAt: at(minute), ...extra })
      .returning(['id', 'annotatorId', 'createdAt'])
      .executeTakeFirstOrThrow();
  let annotationSeq = 1000;
  const annotation = (annotatorId: number, minute: number, extra: Record<string, unknown> = {}) =>
    t.db
      .insertInto('annotationEvents')
      .values({ annotatorId, eventType: 'annotation_created', lsAnnotationId: ++annotationSeq, createdAt: at(minute), ...extra })
      .returning(['id', 'annotatorId', 'createdAt'])
      .executeTakeFirstOrThrow();

  beforeAll(async () => {
    // Annotators seeded above were inserted directly, so until the last test the event tables
    // hold only what this block seeds.
    alice = await seedAnnotator('Alice Events');
    bob = await seedAnnotator('Bob Events');
    const wf = await seedWorkflow();
    const asg = await seedAssignment(alice.id, wf.id);
    const rows: Array<[string, { id: number; annotatorId: number; createdAt: Date }]> = [];
    rows.push(['container', await container(alice.id, 1, { eventType: 'created', fromStatus: null, toStatus: 'created', message: 'annotator created' })]);
    rows.push(['annotation', await annotation(alice.id, 2, { assignmentId: asg.id, lsProjectId: 12, lsTaskId: 456, timeSpentMs: 15000 })]);
    rows.push(['container', await container(bob.id, 3, { details: JSON.stringify({ exit_code: 137, container_name: 'fleet-ls-2' }) })]);
    rows.push(['annotation', await annotation(bob.id, 3, { source: 'reconcile' })]); // same instant as the one above
    rows.push(['annotation', await annotation(alice.id, 3)]);
    rows.push(['container', await container(alice.id, 5)]);
    rows.push(['annotation', await annotation(bob.id, 6, { eventType: 'annotation_updated' })]);
    rows.push(['annotation', await annotation(alice.id, 7)]);
    seeded = rows
      .map(([type, row]) => ({ type, id: row.id, annotatorId: row.annotatorId, at: row.createdAt.getTime() }))
      .sort((a, b) => b.at - a.at || b.id - a.id || a.type.localeCompare(b.type));
  });

  const pairs = (body: { data: Array<{ type: string; id: number }> }) => body.data.map((e) => [e.type, e.id]);

  it('merges container and annotation events, newest first, each with a type', async () => {
    const all = await t.json('GET', '/api/events');
    expect(all.status).toBe(200);
    expect(pairs(all.body)).toEqual(expectedPairs());
    expect(all.body.pagination).toEqual({ total: 8, limit: 100, offset: 0, hasMore: false });
    const times = all.body.data.map((e: { createdAt: string }) => Date.parse(e.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('gives each type its own fields', async () => {
    const res = await t.json('GET', `/api/events?annotatorId=${bob.id}`);
    const [updated, reconciled, crashed] = res.body.data;
    expect(updated).toEqual({
      type: 'annotation',
      id: expect.any(Number),
      annotatorId: bob.id,
      annotator: { id: bob.id, name: 'Bob Events' },
      eventType: 'annotation_updated',
      createdAt: at(6),
      assignmentId: null,
      lsProjectId: null,
      lsTaskId: null,
      lsAnnotationId: expect.any(Number),
      timeSpentMs: null,
      source: 'webhook',
    });
    // At minute 3 the container and annotation events tie on createdAt: the higher id goes first.
    const tied = [reconciled, crashed].map((e: { type: string }) => e.type);
    expect(tied.sort()).toEqual(['annotation', 'container']);
    const c = [reconciled, crashed].find((e: { type: string }) => e.type === 'container');
    expect(c).toEqual({
      type: 'container',
      id: expect.any(Number),
      annotatorId: bob.id,
      annotator: { id: bob.id, name: 'Bob Events' },
      eventType: 'status_change',
      createdAt: at(3),
      fromStatus: 'starting',
      toStatus: 'active',
      message: 'healthy',
      // Keys inside details are kept as written.
      details: { exit_code: 137, container_name: 'fleet-ls-2' },
    });
    const a = [reconciled, crashed].find((e: { type: string }) => e.type === 'annotation');
    expect(a.source).toBe('reconcile');

    const aliceAnnotation = (await t.json('GET', `/api/events?annotatorId=${alice.id}&type=annotation`)).body.data.at(-1);
    expect(aliceAnnotation).toMatchObject({ lsProjectId: 12, lsTaskId: 456, timeSpentMs: 15000, createdAt: at(2) });
    expect(aliceAnnotation.assignmentId).toEqual(expect.any(Number));
  });

  it('pages through the merged list without gaps or repeats, with the right totals', async () => {
    const full = pairs((await t.json('GET', '/api/events?limit=500')).body);
    const total = full.length;
    for (const size of [1, 2, 3]) {
      const seen: unknown[] = [];
      for (let offset = 0; offset < total + size; offset += size) {
        const page = await t.json('GET', `/api/events?limit=${size}&offset=${offset}`);
        expect(page.body.pagination).toEqual({ total, limit: size, offset, hasMore: offset + size < total });
        seen.push(...pairs(page.body));
      }
      expect(seen, `page size ${size}`).toEqual(full);
    }
  });

  it('filters by type and annotator, counting only what matches', async () => {
    const onlyContainer = await t.json('GET', `/api/events?type=container&annotatorId=${alice.id}`);
    expect(pairs(onlyContainer.body)).toEqual(expectedPairs((e) => e.type === 'container' && e.annotatorId === alice.id));
    expect(onlyContainer.body.pagination.total).toBe(2);
    const onlyAnnotation = await t.json('GET', `/api/events?type=annotation&annotatorId=${alice.id}`);
    expect(pairs(onlyAnnotation.body)).toEqual(expectedPairs((e) => e.type === 'annotation' && e.annotatorId === alice.id));
    expect(onlyAnnotation.body.pagination.total).toBe(3);
    const aliceAll = await t.json('GET', `/api/events?annotatorId=${alice.id}`);
    expect(pairs(aliceAll.body)).toEqual(expectedPairs((e) => e.annotatorId === alice.id));
    const containers = await t.json('GET', '/api/events?type=container&limit=1&offset=1');
    expect(pairs(containers.body)).toEqual(expectedPairs((e) => e.type === 'container').slice(1, 2));
    expect(containers.body.pagination).toEqual({ total: 3, limit: 1, offset: 1, hasMore: true });
    const bobs = await t.json('GET', `/api/events?annotatorId=${bob.id}&limit=2`);
    expect(bobs.body.pagination).toEqual({ total: 3, limit: 2, offset: 0, hasMore: true });
    const annotations = await t.json('GET', '/api/events?type=annotation');
    expect(annotations.body.data.every((e: { type: string }) => e.type === 'annotation')).toBe(true);
    expect(annotations.body.pagination.total).toBe(5);
    const nobody = await t.json('GET', '/api/events?annotatorId=424242');
    expect(nobody.body).toEqual({ data: [], pagination: { total: 0, limit: 100, offset: 0, hasMore: false } });
  });

  it('records what the API does: a created annotator and its deletion show up', async () => {
    const created = await t.json('POST', '/api/annotators', { name: 'Eve Audit', email: 'eve.audit@example.com' });
    await t.json('DELETE', `/api/annotators/${created.body.id}`);
    const res = await t.json('GET', `/api/events?annotatorId=${created.body.id}`);
    expect(res.body.data.map((e: { type: string; eventType: string; toStatus: string }) => [e.type, e.eventType, e.toStatus])).toEqual([
      ['container', 'status_change', 'deleted'],
      ['container', 'created', 'created'],
    ]);
    expect(res.body.data[0]).toMatchObject({ fromStatus: 'created', message: 'deleted by admin', details: { adminUserId: expect.any(Number) } });
  });

  it('validates type, annotatorId and pagination', async () => {
    for (const q of ['type=webhook', 'type=', 'type=CONTAINER', 'annotatorId=abc', 'annotatorId=0', 'limit=0', 'limit=501', 'offset=-1']) {
      const res = await t.json('GET', `/api/events?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });
});

describe('rejections and events: OpenAPI', () => {
  it('documents the routes and both event shapes', async () => {
    const doc = await t.json('GET', '/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/rejections', '/api/rejections/{id}', '/api/events']));
    expect(doc.body.components.schemas).toHaveProperty('ContainerEvent');
    expect(doc.body.components.schemas).toHaveProperty('AnnotationEvent');
  });
});

describe('rejections and events: security', () => {
  it('answers 401 without a session', async () => {
    for (const path of ['/api/rejections', '/api/rejections/1', '/api/events', '/api/events?type=container']) {
      const res = await t.anonymous.json('GET', path);
      expect(res.status, path).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
  });
});
