/**
 * The set-based ingestion (migrations/0025_ingestion_set_based.sql) against real PostgreSQL:
 * a group of events gives what one call per event gives (outcomes, the task's final state, batch
 * counters, event rows); settling a task to Label Studio's state goes through the same function
 * (compare.ts); a drain held up by a lock holds up no webhook (the inbox, src/workflows/inbox.ts);
 * GET /api/events' unfiltered total follows the trigger-kept counter exactly.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator, Assignment } from '../../src/db/types.ts';
import type { LsTask } from '../../src/labelstudio/client.ts';
import { compareWithLabelStudio } from '../../src/workflows/compare.ts';
import { ingestEvent, type IngestEvent } from '../../src/workflows/ingest.ts';
import { seedAnnotator, seedInProgressBatch, seedRole, webhookHeaders, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let annotator: Annotator;
let project = 700;

beforeAll(async () => {
  t = await startTestService();
  const role = await seedRole(t);
  annotator = await seedAnnotator(t, { roleId: role.id });
});
afterAll(async () => t?.close());

const choice = (c: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];

/** An in-progress batch of `real` images and `gold` gold tasks, with Label Studio ids assigned. */
const batch = (real: number, gold = 0) => seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real, gold, prefix: 'ig' });

interface Ev {
  /** Index of the task in the batch. */
  task: number;
  type: 'annotation_created' | 'annotation_updated';
  /** Annotation id offset (the same offset names the same annotation in both batches). */
  ann: number;
  at: string;
  label: string;
  review?: 'accept' | 'reject';
}

function eventsFor(b: Awaited<ReturnType<typeof batch>>, evs: Ev[], annBase: number) {
  return evs.map((e, i) => ({
    i,
    annotator: annotator.id,
    event_type: e.type,
    source: 'webhook',
    project: b.lsProjectId,
    ls_task: b.lsTaskIds[e.task]!,
    annotation: annBase + e.ann,
    result: choice(e.label),
    updated_at: e.at,
    time_spent_ms: 1000,
    lead_time: 1,
    was_cancelled: false,
    review_decision: e.review ?? null,
    review_reason: null,
  }));
}

async function ingest(events: unknown[], opts: { gold?: boolean } = {}) {
  const { rows } = await sql<{ idx: number; outcome: string; ready: boolean; reviewRecorded: boolean }>`
    SELECT * FROM labelfleet_ingest_annotations(${JSON.stringify(events)}::jsonb, ${opts.gold ?? false})`.execute(t.db);
  return [...rows].sort((a, b) => a.idx - b.idx).map((r) => ({ outcome: r.outcome, ready: r.ready, review: r.reviewRecorded }));
}

async function state(assignmentId: number) {
  const tasks = await t.db
    .selectFrom('assignmentTasks')
    .select(['status', 'result', 'lsAnnotationUpdatedAt', 'reviewDecision', 'skipped'])
    .where('assignmentId', '=', assignmentId)
    .orderBy('position')
    .execute();
  const a = await t.db.selectFrom('assignments').select(['completedCount', 'taskCount']).where('id', '=', assignmentId).executeTakeFirstOrThrow();
  const events = await t.db.selectFrom('annotationEvents').select(sql<number>`count(*)::int`.as('n')).where('assignmentId', '=', assignmentId).executeTakeFirstOrThrow();
  return {
    tasks: tasks.map((x) => ({ ...x, lsAnnotationUpdatedAt: x.lsAnnotationUpdatedAt === null ? null : new Date(x.lsAnnotationUpdatedAt).toISOString() })),
    completed: a.completedCount,
    events: events.n,
  };
}

describe('a group of events gives what one call per event gives', () => {
  const at = (m: number) => `2026-03-01T10:${String(m).padStart(2, '0')}:00.000001Z`;
  const cases: [string, Ev[]][] = [
    [
      'newer, older, a duplicate and newer again on one task; the other tasks once each',
      [
        { task: 0, type: 'annotation_created', ann: 1, at: at(5), label: 'a' },
        { task: 0, type: 'annotation_updated', ann: 1, at: at(3), label: 'older' },
        { task: 0, type: 'annotation_created', ann: 1, at: at(5), label: 'a' },
        { task: 0, type: 'annotation_updated', ann: 1, at: at(7), label: 'newest' },
        { task: 1, type: 'annotation_created', ann: 2, at: at(1), label: 'b' },
        { task: 2, type: 'annotation_created', ann: 3, at: at(2), label: 'c', review: 'reject' },
      ],
    ],
    [
      'equal timestamps: the later arrival wins; two annotations on one task',
      [
        { task: 0, type: 'annotation_updated', ann: 1, at: at(4), label: 'first' },
        { task: 0, type: 'annotation_updated', ann: 2, at: at(4), label: 'second' },
        { task: 1, type: 'annotation_created', ann: 3, at: at(9), label: 'x' },
        { task: 1, type: 'annotation_created', ann: 4, at: at(8), label: 'y' },
      ],
    ],
  ];
  let base = 100_000;
  for (const [name, evs] of cases) {
    it(name, async () => {
      const grouped = await batch(3);
      const single = await batch(3);
      base += 1000;
      const groupOut = await ingest(eventsFor(grouped, evs, base));
      base += 1000;
      const singleOut = [];
      for (const e of eventsFor(single, evs, base)) singleOut.push(...(await ingest([{ ...e, i: 0 }])));
      // Per event: the same outcome and review flag; per batch: ready or not alike (the group flags
      // every event that completed a task of a batch it filled, one call per event the last one).
      expect(groupOut.map(({ outcome, review }) => ({ outcome, review }))).toEqual(singleOut.map(({ outcome, review }) => ({ outcome, review })));
      expect(groupOut.some((o) => o.ready)).toBe(singleOut.some((o) => o.ready));
      expect(await state(grouped.assignmentId)).toEqual(await state(single.assignmentId));
      expect(groupOut.map((o) => o.outcome)).toContain('applied');
    });
  }

  it('every task annotated in one group: the batch is ready, its count exact, a duplicate group changes nothing', async () => {
    const b = await batch(3);
    const evs = eventsFor(b, [0, 1, 2].map((task) => ({ task, type: 'annotation_created' as const, ann: task, at: at(task), label: 'z' })), 900_000);
    const out = await ingest(evs);
    expect(out.map((o) => o.outcome)).toEqual(['applied', 'applied', 'applied']);
    expect(out.some((o) => o.ready)).toBe(true);
    const again = await ingest(evs);
    expect(again.map((o) => o.outcome)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    expect(await state(b.assignmentId)).toMatchObject({ completed: 3, events: 3 });
  });
});

describe('concurrent webhooks (ingestEvent: calls in flight never share an annotator)', () => {
  it("each annotator's events apply in arrival order, whatever else is in flight: with equal timestamps the later arrival wins", async () => {
    const other = await seedAnnotator(t, { roleId: annotator.roleId! });
    const mine = await batch(6);
    const theirs = await seedInProgressBatch(t, { annotatorId: other.id, lsProjectId: ++project, real: 6, prefix: 'ig-other' });
    const ev = (who: number, b: typeof mine, task: number, ann: number, label: string, action: IngestEvent['action'] = 'ANNOTATION_CREATED'): IngestEvent => ({
      annotatorId: who,
      action,
      source: 'webhook',
      lsProjectId: b.lsProjectId,
      lsTaskId: b.lsTaskIds[task]!,
      annotation: { id: ann, result: choice(label), updatedAt: '2026-03-09T10:00:00.000001Z', leadTime: 1, wasCancelled: false },
    });
    // Sent at once, both annotators interleaved: on task 0 of each batch three annotations with
    // the same timestamp arrive one after another (as Label Studio sends an edit and a re-edit).
    const sends: IngestEvent[] = [];
    for (const [who, b, base] of [[annotator.id, mine, 960_000], [other.id, theirs, 970_000]] as const) {
      sends.push(ev(who, b, 0, base + 1, 'first'), ev(who, b, 0, base + 2, 'second', 'ANNOTATION_UPDATED'));
      for (let task = 1; task < 6; task++) sends.push(ev(who, b, task, base + 10 + task, 'z'));
      sends.push(ev(who, b, 0, base + 3, 'last', 'ANNOTATION_UPDATED'));
    }
    const order = [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15];
    const outs = await Promise.all(order.map((i) => ingestEvent(t.db, sends[i]!)));
    expect(outs.every((o) => o.recorded === 1)).toBe(true);
    for (const b of [mine, theirs]) {
      const s = await state(b.assignmentId);
      expect(s.tasks[0]!.result).toEqual(choice('last'));
      expect(s).toMatchObject({ completed: 6, events: 8 });
      expect(s.tasks.every((x) => x.status === 'annotated')).toBe(true);
    }
  });
});

describe('a drain waiting on a lock (Label Studio gives a webhook 1 s)', () => {
  it('holds up no webhook: every one is acknowledged meanwhile, and applied in arrival order once the lock is released', async () => {
    const other = await seedAnnotator(t, { roleId: annotator.roleId! });
    const mine = await batch(2);
    const theirs = await seedInProgressBatch(t, { annotatorId: other.id, lsProjectId: ++project, real: 1, prefix: 'ig-lock' });
    const post = (who: Annotator, b: { lsProjectId: number; lsTaskIds: number[] }, task: number, id: number, label: string, at: string) =>
      t.anonymous.json('POST', '/api/webhook', {
        action: 'ANNOTATION_CREATED',
        annotation: { id, result: choice(label), updated_at: at, created_at: at, lead_time: 1, task: b.lsTaskIds[task], project: b.lsProjectId },
      }, webhookHeaders(t, who));
    // Another writer holds my first task's row.
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = t.db.transaction().execute(async (trx) => {
      await sql`SELECT 1 FROM assignment_tasks WHERE assignment_id = ${mine.assignmentId} AND position = 0 FOR UPDATE`.execute(trx);
      locked();
      await new Promise<void>((r) => (release = r));
    });
    await isLocked;
    // Two on the locked task (the same timestamp: the later arrival wins), one on my other task, one of another annotator.
    const at = '2026-03-09T10:00:00Z';
    expect((await post(annotator, mine, 0, 980_001, 'first', at)).status).toBe(200);
    expect((await post(annotator, mine, 0, 980_002, 'second', at)).status).toBe(200);
    expect((await post(annotator, mine, 1, 980_003, 'x', at)).status).toBe(200);
    expect((await post(other, theirs, 0, 980_004, 'x', at)).status).toBe(200);
    expect(await state(mine.assignmentId)).toMatchObject({ completed: 0, events: 0 });
    release();
    await holder;
    await webhooksApplied(t);
    const s = await state(mine.assignmentId);
    expect(s).toMatchObject({ completed: 2, events: 3 });
    expect(s.tasks[0]!.result).toEqual(choice('second'));
    expect(await state(theirs.assignmentId)).toMatchObject({ completed: 1, events: 1 });
  });
});

describe('settling a task to Label Studio’s state (compare.ts) goes through the ingestion', () => {
  const ann = (id: number, label: string, updated: string, extra: Partial<{ was_cancelled: boolean }> = {}) => ({
    id,
    result: choice(label) as never,
    created_at: updated,
    updated_at: updated,
    lead_time: 2,
    ...extra,
  });
  const lsTasks = (b: Awaited<ReturnType<typeof batch>>, anns: (ReturnType<typeof ann>[] | undefined)[]): LsTask[] =>
    b.lsTaskIds.map((id, i) => ({ id, data: {}, annotations: anns[i] ?? [] }));
  const assignment = (id: number) => t.db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirstOrThrow() as Promise<Assignment>;

  it('annotates what no webhook delivered, keeps the surviving older annotation, reopens, and leaves tasks in sync alone', async () => {
    const b = await batch(3);
    const h = webhookHeaders(t, annotator);
    // Webhooks: task 0 got annotation 2 (newer), task 1 got annotation 5; task 2 nothing.
    const post = (lsTask: number, id: number, label: string, updated: string) =>
      t.json('POST', '/api/webhook', {
        action: 'ANNOTATION_CREATED',
        annotation: { id, result: choice(label), updated_at: updated, created_at: updated, lead_time: 1, task: lsTask, project: b.lsProjectId },
      }, h);
    expect((await post(b.lsTaskIds[0]!, 2, 'dog', '2026-03-02T10:05:00.000002Z')).status).toBe(200);
    expect((await post(b.lsTaskIds[1]!, 5, 'cat', '2026-03-02T10:00:00Z')).status).toBe(200);
    await webhooksApplied(t);
    expect((await state(b.assignmentId)).completed).toBe(2);

    // Label Studio: task 0 holds only annotation 1 (2 was deleted), task 1 none, task 2 annotation 7.
    const out = await compareWithLabelStudio(t.ctx, await assignment(b.assignmentId), lsTasks(b, [
      [ann(1, 'cat', '2026-03-02T10:00:00.000001Z')],
      [],
      [ann(7, 'bird', '2026-03-02T11:00:00Z')],
    ]));
    expect(out.changed).toBeGreaterThanOrEqual(3);
    const s = await state(b.assignmentId);
    expect(s.tasks.map((x) => [x.status, (x.result as { value: { choices: string[] } }[] | null)?.[0]?.value.choices[0] ?? null])).toEqual([
      ['annotated', 'cat'],
      ['open', null],
      ['annotated', 'bird'],
    ]);
    expect(s.tasks[0]!.lsAnnotationUpdatedAt).toBe('2026-03-02T10:00:00.000Z');
    expect(s.completed).toBe(2);

    // The same state again: nothing changes.
    const again = await compareWithLabelStudio(t.ctx, await assignment(b.assignmentId), lsTasks(b, [
      [ann(1, 'cat', '2026-03-02T10:00:00.000001Z')],
      [],
      [ann(7, 'bird', '2026-03-02T11:00:00Z')],
    ]));
    expect(again.changed).toBe(0);
    expect(await state(b.assignmentId)).toEqual(s);
  });

  it('scores a gold task Label Studio holds and drops its score when Label Studio holds none', async () => {
    const b = await batch(1, 1);
    const goldIndex = b.lsTaskIds.indexOf(b.gold[0]!);
    const anns: (ReturnType<typeof ann>[] | undefined)[] = [];
    anns[goldIndex] = [ann(31, 'cat', '2026-03-03T10:00:00Z')];
    await compareWithLabelStudio(t.ctx, await assignment(b.assignmentId), lsTasks(b, anns));
    const taskId = b.taskIds[goldIndex]!;
    expect(await t.db.selectFrom('goldResults').select('score').where('assignmentTaskId', '=', taskId).execute()).toHaveLength(1);
    await compareWithLabelStudio(t.ctx, await assignment(b.assignmentId), lsTasks(b, []));
    expect(await t.db.selectFrom('goldResults').select('score').where('assignmentTaskId', '=', taskId).execute()).toHaveLength(0);
    expect((await state(b.assignmentId)).completed).toBe(0);
  });

  it('changes nothing in a batch that is no longer in progress', async () => {
    const b = await batch(2);
    await t.db.updateTable('assignments').set({ status: 'cancelled' }).where('id', '=', b.assignmentId).execute();
    const before = await state(b.assignmentId);
    await compareWithLabelStudio(t.ctx, await assignment(b.assignmentId), lsTasks(b, [[ann(41, 'cat', '2026-03-04T10:00:00Z')]]));
    expect((await state(b.assignmentId)).tasks).toEqual(before.tasks);
  });
});

describe('GET /api/events: the unfiltered total is the counter, exactly', () => {
  it('equals count(*) over both tables as events arrive, by type too', async () => {
    const total = async (q = '') => Number((await t.json('GET', `/api/events?limit=1${q}`)).body.pagination.total);
    const counted = async () => {
      const { rows } = await sql<{ a: number; c: number }>`
        SELECT (SELECT count(*) FROM annotation_events)::int AS a, (SELECT count(*) FROM container_events)::int AS c`.execute(t.db);
      return rows[0]!;
    };
    const check = async () => {
      const { a, c } = await counted();
      expect(await total()).toBe(a + c);
      expect(await total('&type=annotation')).toBe(a);
      expect(await total('&type=container')).toBe(c);
      return a + c;
    };
    const before = await check();
    const b = await batch(2);
    await ingest(eventsFor(b, [{ task: 0, type: 'annotation_created', ann: 1, at: '2026-03-05T10:00:00Z', label: 'q' }], 950_000));
    await t.db.insertInto('containerEvents').values([{ annotatorId: annotator.id, eventType: 'test' }, { annotatorId: annotator.id, eventType: 'test' }]).execute();
    expect(await check()).toBe(before + 3);
    // Removed rows are subtracted (an annotator's deletion cascades to its events).
    const other = await seedAnnotator(t, { roleId: annotator.roleId! });
    await t.db.insertInto('containerEvents').values({ annotatorId: other.id, eventType: 'test' }).execute();
    expect(await check()).toBe(before + 4);
    await t.db.deleteFrom('annotators').where('id', '=', other.id).execute();
    expect(await check()).toBe(before + 3);
  });
});
