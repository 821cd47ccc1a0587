import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AssignmentStatus } from '../../src/db/types.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
const wakes: string[] = [];
beforeAll(async () => {
  t = await startTestService({ overrides: { wake: (reason: string) => void wakes.push(reason) } });
});
afterAll(async () => t?.close());
beforeEach(() => {
  wakes.length = 0;
});

let seq = 0;
const uniq = (p: string) => `${p}${++seq}`;

async function seedAnnotator(opts: { name?: string; roleId?: number | null; status?: 'created' | 'active' } = {}) {
  const name = opts.name ?? uniq('Ann ');
  return t.db
    .insertInto('annotators')
    .values({ name, email: `${uniq('a')}@example.com`, subdomain: uniq('sub-'), roleId: opts.roleId ?? null, status: opts.status ?? 'active' })
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function seedWorkflow(opts: { name?: string; labelingConfigId?: number | null; roleId?: number | null } = {}) {
  return t.db
    .insertInto('workflows')
    .values({
      name: opts.name ?? uniq('wf'),
      s3SourcePath: 'images/src/',
      s3ExportPath: 'exports/out/',
      labelingConfigId: opts.labelingConfigId ?? null,
      roleId: opts.roleId ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function seedAssignment(annotatorId: number, workflowId: number, status: AssignmentStatus = 'pending', extra: Record<string, unknown> = {}) {
  return t.db
    .insertInto('assignments')
    .values({ annotatorId, workflowId, status, taskCount: 3, ...extra })
    .returningAll()
    .executeTakeFirstOrThrow();
}

const statusOf = async (id: number) =>
  (await t.db.selectFrom('assignments').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;

describe('assignments: list', () => {
  it('returns a paginated envelope, newest first, with nested annotator and workflow', async () => {
    const ann = await seedAnnotator({ name: 'Lister' });
    const wf = await seedWorkflow({ name: 'List Flow' });
    const a1 = await seedAssignment(ann.id, wf.id, 'completed', {
      createdAt: '2026-01-01T00:00:00Z',
      lsProjectId: 7,
      completedCount: 3,
      exportKey: 'exports/out/1.json',
      startedAt: '2026-01-01T01:00:00Z',
      completedAt: '2026-01-01T02:00:00Z',
    });
    const a2 = await seedAssignment(ann.id, wf.id, 'in_progress', { createdAt: '2026-01-02T00:00:00Z' });
    const a3 = await seedAssignment(ann.id, wf.id, 'pending', { createdAt: '2026-01-02T00:00:00Z' });

    const res = await t.json('GET', `/api/assignments?annotatorId=${ann.id}`);
    expect(res.status).toBe(200);
    expect(res.body.pagination).toEqual({ total: 3, limit: 100, offset: 0, hasMore: false });
    // Same createdAt: the higher id first.
    expect(res.body.data.map((a: { id: number }) => a.id)).toEqual([a3.id, a2.id, a1.id]);
    expect(res.body.data[2]).toEqual({
      id: a1.id,
      workflowId: wf.id,
      annotatorId: ann.id,
      lsProjectId: 7,
      taskCount: 3,
      goldTaskCount: 0,
      completedCount: 3,
      status: 'completed',
      error: null,
      exportKey: 'exports/out/1.json',
      startedAt: '2026-01-01T01:00:00.000Z',
      completedAt: '2026-01-01T02:00:00.000Z',
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: a1.updatedAt.toISOString(),
      problem: null,
      removedTaskCount: 0,
      annotator: { id: ann.id, name: 'Lister', email: ann.email, status: 'active' },
      workflow: { id: wf.id, name: 'List Flow' },
    });

    const page = await t.json('GET', `/api/assignments?annotatorId=${ann.id}&limit=2&offset=1`);
    expect(page.body.data.map((a: { id: number }) => a.id)).toEqual([a2.id, a1.id]);
    expect(page.body.pagination).toEqual({ total: 3, limit: 2, offset: 1, hasMore: false });
    const first = await t.json('GET', `/api/assignments?annotatorId=${ann.id}&limit=2`);
    expect(first.body.pagination).toEqual({ total: 3, limit: 2, offset: 0, hasMore: true });
    const past = await t.json('GET', `/api/assignments?annotatorId=${ann.id}&offset=10`);
    expect(past.body).toEqual({ data: [], pagination: { total: 3, limit: 100, offset: 10, hasMore: false } });
  });

  it('filters by workflow, annotator and status, combined', async () => {
    const x = await seedAnnotator();
    const y = await seedAnnotator();
    const w1 = await seedWorkflow();
    const w2 = await seedWorkflow();
    const xw1 = await seedAssignment(x.id, w1.id, 'pending');
    const xw2 = await seedAssignment(x.id, w2.id, 'failed');
    const yw1 = await seedAssignment(y.id, w1.id, 'failed');
    const ids = async (q: string) => (await t.json('GET', `/api/assignments?${q}`)).body.data.map((a: { id: number }) => a.id);
    expect(await ids(`workflowId=${w1.id}`)).toEqual([yw1.id, xw1.id]);
    expect(await ids(`annotatorId=${x.id}`)).toEqual([xw2.id, xw1.id]);
    expect(await ids(`workflowId=${w1.id}&status=failed`)).toEqual([yw1.id]);
    expect(await ids(`annotatorId=${x.id}&workflowId=${w2.id}&status=failed`)).toEqual([xw2.id]);
    expect(await ids(`annotatorId=${x.id}&status=completed`)).toEqual([]);
    const total = await t.json('GET', `/api/assignments?workflowId=${w1.id}&status=failed`);
    expect(total.body.pagination.total).toBe(1);
  });

  it('validates filters and pagination', async () => {
    for (const q of ['status=done', 'status=', 'workflowId=x', 'annotatorId=0', 'annotatorId=-3', 'limit=0', 'limit=501', 'offset=-1']) {
      const res = await t.json('GET', `/api/assignments?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.error).toBe('Validation failed');
    }
  });
});

describe('assignments: detail', () => {
  it('nests annotator with role, workflow with labeling config, tasks and gold results', async () => {
    const role = await t.db.insertInto('roles').values({ name: uniq('role'), color: '#112233' }).returningAll().executeTakeFirstOrThrow();
    const config = await t.db
      .insertInto('labelingConfigs')
      .values({ name: 'Cats', configXml: '<View><Image name="image" value="$image"/></View>' })
      .returningAll()
      .executeTakeFirstOrThrow();
    const gold = await t.db
      .insertInto('goldTasks')
      .values({ s3ImageKey: 'gold/cat.jpg', expectedLabels: JSON.stringify([{ value: { choices: ['cat'] } }]), labelingConfigId: config.id })
      .returningAll()
      .executeTakeFirstOrThrow();
    const ann = await seedAnnotator({ name: 'Detail Person', roleId: role.id });
    const wf = await seedWorkflow({ name: 'Detail Flow', labelingConfigId: config.id, roleId: role.id });
    const asg = await seedAssignment(ann.id, wf.id, 'in_progress', { lsProjectId: 12, goldTaskCount: 1 });
    const result = [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }];
    const t1 = await t.db
      .insertInto('assignmentTasks')
      .values({ assignmentId: asg.id, s3ImageKey: 'images/src/1.jpg', lsTaskId: 101 })
      .returningAll()
      .executeTakeFirstOrThrow();
    const t2 = await t.db
      .insertInto('assignmentTasks')
      .values({
        assignmentId: asg.id,
        s3ImageKey: 'gold/cat.jpg',
        isGold: true,
        goldTaskId: gold.id,
        lsTaskId: 102,
        lsAnnotationId: 900,
        status: 'annotated',
        result: JSON.stringify(result),
        leadTimeSeconds: 4.5,
        annotatedAt: new Date('2026-03-01T10:00:00Z'),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const gr = await t.db
      .insertInto('goldResults')
      .values({ assignmentTaskId: t2.id, assignmentId: asg.id, annotatorId: ann.id, goldTaskId: gold.id, score: 1, details: JSON.stringify({ matched: 1 }) })
      .returningAll()
      .executeTakeFirstOrThrow();

    const res = await t.json('GET', `/api/assignments/${asg.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: asg.id, status: 'in_progress', lsProjectId: 12, goldTaskCount: 1 });
    expect(res.body.annotator).toEqual({
      id: ann.id,
      name: 'Detail Person',
      email: ann.email,
      status: 'active',
      roleId: role.id,
      role: { id: role.id, name: role.name, color: '#112233' },
    });
    expect(res.body.workflow).toEqual({
      id: wf.id,
      name: 'Detail Flow',
      roleId: role.id,
      labelingConfigId: config.id,
      s3SourcePath: 'images/src/',
      s3ExportPath: 'exports/out/',
      labelingConfig: { id: config.id, name: 'Cats', configXml: config.configXml },
    });
    expect(res.body.tasks).toEqual([
      {
        id: t1.id,
        s3ImageKey: 'images/src/1.jpg',
        isGold: false,
        goldTaskId: null,
        lsTaskId: 101,
        lsAnnotationId: null,
        status: 'open',
        result: null,
        leadTimeSeconds: null,
        annotatedAt: null,
        createdAt: t1.createdAt.toISOString(),
        updatedAt: t1.updatedAt.toISOString(),
        consensus: null,
      },
      {
        id: t2.id,
        s3ImageKey: 'gold/cat.jpg',
        isGold: true,
        goldTaskId: gold.id,
        lsTaskId: 102,
        lsAnnotationId: 900,
        status: 'annotated',
        result,
        leadTimeSeconds: 4.5,
        annotatedAt: '2026-03-01T10:00:00.000Z',
        createdAt: t2.createdAt.toISOString(),
        updatedAt: t2.updatedAt.toISOString(),
        consensus: null,
      },
    ]);
    expect(res.body.goldResults).toEqual([
      { id: gr.id, assignmentTaskId: t2.id, goldTaskId: gold.id, score: 1, details: { matched: 1 }, evaluatedAt: gr.evaluatedAt.toISOString() },
    ]);
  });

  it('shows null role and labeling config when there are none, and empty tasks', async () => {
    const ann = await seedAnnotator();
    const wf = await seedWorkflow();
    const asg = await seedAssignment(ann.id, wf.id);
    const res = await t.json('GET', `/api/assignments/${asg.id}`);
    expect(res.body.annotator.role).toBeNull();
    expect(res.body.workflow.labelingConfig).toBeNull();
    expect(res.body.tasks).toEqual([]);
    expect(res.body.goldResults).toEqual([]);
  });

  it('answers 404 for a missing assignment and 400 for a bad id', async () => {
    const missing = await t.json('GET', '/api/assignments/424242');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'Assignment not found' });
    for (const id of ['abc', '0', '-1', '2.5', '99999999999']) expect((await t.json('GET', `/api/assignments/${id}`)).status, id).toBe(400);
  });
});

describe('assignments: cancel', () => {
  it('cancels pending and in-progress assignments and wakes the reconciler', async () => {
    const ann = await seedAnnotator();
    const wf = await seedWorkflow();
    for (const status of ['pending', 'in_progress'] as const) {
      const asg = await seedAssignment(ann.id, wf.id, status);
      wakes.length = 0;
      const res = await t.json('DELETE', `/api/assignments/${asg.id}`);
      expect(res.status, status).toBe(200);
      expect(res.body).toEqual({ success: true });
      expect(await statusOf(asg.id)).toBe('cancelled');
      expect(wakes).toEqual([`assignment ${asg.id} cancelled`]);
      const after = await t.json('GET', `/api/assignments/${asg.id}`);
      expect(Date.parse(after.body.updatedAt)).toBeGreaterThanOrEqual(asg.updatedAt.getTime());
    }
  });

  it('answers 409 for completed, failed and cancelled assignments and changes nothing', async () => {
    const ann = await seedAnnotator();
    const wf = await seedWorkflow();
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      const asg = await seedAssignment(ann.id, wf.id, status);
      const res = await t.json('DELETE', `/api/assignments/${asg.id}`);
      expect(res.status, status).toBe(409);
      expect(res.body.error).toBe(`Cannot cancel assignment with status ${status}`);
      expect(await statusOf(asg.id)).toBe(status);
    }
    expect(wakes).toEqual([]);
  });

  it('answers 404 for a missing assignment and 400 for a bad id', async () => {
    expect((await t.json('DELETE', '/api/assignments/424242')).status).toBe(404);
    expect((await t.json('DELETE', '/api/assignments/zero')).status).toBe(400);
  });

  it('lets exactly one of two concurrent cancels win', async () => {
    const ann = await seedAnnotator();
    const wf = await seedWorkflow();
    const asg = await seedAssignment(ann.id, wf.id, 'in_progress');
    const results = await Promise.all([t.json('DELETE', `/api/assignments/${asg.id}`), t.json('DELETE', `/api/assignments/${asg.id}`)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(results.find((r) => r.status === 409)!.body.error).toBe('Cannot cancel assignment with status cancelled');
  });

  it('waits for a concurrent completion holding the row and then refuses to cancel', async () => {
    const ann = await seedAnnotator();
    const wf = await seedWorkflow();
    const asg = await seedAssignment(ann.id, wf.id, 'in_progress');
    let cancel: Promise<{ status: number; body: any }> | undefined;
    await t.db.transaction().execute(async (trx) => {
      await trx.selectFrom('assignments').select('id').where('id', '=', asg.id).forUpdate().execute();
      cancel = t.json('DELETE', `/api/assignments/${asg.id}`);
      // Give the cancel time to reach the row lock before the completion commits.
      await new Promise((r) => setTimeout(r, 200));
      await trx.updateTable('assignments').set({ status: 'completed' }).where('id', '=', asg.id).execute();
    });
    const res = await cancel!;
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('Cannot cancel assignment with status completed');
    expect(await statusOf(asg.id)).toBe('completed');
  });
});

describe('assignments: security', () => {
  it('answers 401 without a session', async () => {
    for (const [method, path] of [
      ['GET', '/api/assignments'],
      ['GET', '/api/assignments/1'],
      ['DELETE', '/api/assignments/1'],
    ] as const) {
      const res = await t.anonymous.json(method, path);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
    }
  });
});
