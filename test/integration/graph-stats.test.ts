/**
 * GET /api/workflows/graph's per-node stats come from the rollup of migrations/0026 (one row per
 * workflow plus unfolded deltas). After each kind of fact, written by the code that writes it —
 * workflows created and deleted through the API, batches assigned through
 * POST /api/workflows/:id/assign, tasks annotated and annotations deleted through POST /api/webhook,
 * a batch cancelled through the API, a batch completed as complete.ts completes it, a reviewer's
 * rejection applied by applyPendingReviews — the graph equals a from-scratch aggregate of the base
 * tables, before and after the reconciler's fold, and the console's graph page shows the same.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileSteps } from '../../orchestrator/steps.ts';
import { applyPendingReviews } from '../../src/workflows/review.ts';
import { REVIEW_CONFIG, seedAnnotator, seedConfig, seedItems, seedRole, webhookHeaders } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
beforeAll(async () => {
  t = await startTestService();
});
afterAll(async () => t?.close());

interface Stats {
  totalAssignments: number;
  completedAssignments: number;
  activeAnnotators: number;
  rejectionRate: number;
}

/** The stats of every workflow from their definitions (the route's description), over the base tables. */
async function scratch(): Promise<Map<number, Stats>> {
  const { rows } = await sql<{ id: number; total: number; completed: number; active: number; tasks: number; rejections: number }>`
    SELECT w.id,
           (SELECT count(*) FROM assignments a WHERE a.workflow_id = w.id)::int AS total,
           (SELECT count(*) FROM assignments a WHERE a.workflow_id = w.id AND a.status = 'completed')::int AS completed,
           (SELECT count(DISTINCT annotator_id) FROM assignments a
             WHERE a.workflow_id = w.id AND a.status IN ('pending', 'in_progress'))::int AS active,
           (SELECT coalesce(sum(completed_count), 0) FROM assignments a WHERE a.workflow_id = w.id)::int AS tasks,
           (SELECT count(*) FROM rejections r WHERE r.workflow_id = w.id)::int AS rejections
      FROM workflows w`.execute(t.db);
  return new Map(
    rows.map((r) => [
      r.id,
      {
        totalAssignments: r.total,
        completedAssignments: r.completed,
        activeAnnotators: r.active,
        rejectionRate: r.tasks > 0 ? Math.min(1, Math.round((r.rejections / r.tasks) * 10_000) / 10_000) : 0,
      },
    ]),
  );
}

async function graphStats(): Promise<Map<number, Stats>> {
  const res = await t.json('GET', '/api/workflows/graph');
  expect(res.status).toBe(200);
  const nodes = (res.body as { nodes: { id: number | string; type: string; stats?: Stats }[] }).nodes;
  return new Map(nodes.filter((n) => n.type === 'workflow').map((n) => [n.id as number, n.stats!]));
}

const pendingDeltas = async () => Number((await sql<{ n: number }>`SELECT count(*) AS n FROM workflow_stat_deltas`.execute(t.db)).rows[0]!.n);
const fold = () => reconcileSteps(t.ctx).find((s) => s.name === 'rollups')!.run(t.ctx);

/** The graph equals the aggregate now and after the reconciler's fold; returns the stats. */
async function expectExact(what: string): Promise<Map<number, Stats>> {
  const expected = await scratch();
  expect(await graphStats(), `${what}, unfolded`).toEqual(expected);
  await fold();
  expect(await pendingDeltas(), what).toBe(0);
  expect(await graphStats(), `${what}, folded`).toEqual(expected);
  return expected;
}

let annotationId = 70_000;
function annotationPayload(action: string, lsProjectId: number, lsTaskId: number) {
  const updated = new Date().toISOString();
  return {
    action,
    annotation: {
      id: ++annotationId,
      result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['cat'] } }],
      was_cancelled: false,
      ground_truth: false,
      created_at: updated,
      updated_at: updated,
      lead_time: 3.5,
      task: lsTaskId,
      project: lsProjectId,
      completed_by: 1,
    },
    project: { id: lsProjectId, title: 'x', task_number: 3 },
    task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
  };
}

describe('workflow graph stats (migration 0026)', () => {
  it('stay exact through creates, assignments, webhooks, cancels, completions, rejections and deletes', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t, REVIEW_CONFIG);
    const create = async (body: Record<string, unknown>) => {
      const res = await t.json('POST', '/api/workflows', {
        name: `graph-${Math.random().toString(36).slice(2, 8)}`,
        roleId: role.id,
        labelingConfigId: config.id,
        s3SourcePath: 'in/',
        s3ExportPath: 'out/',
        imagesPerProject: 3,
        shuffleImages: false,
        ...body,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body as { id: number };
    };
    const labeling = await create({});
    const review = await create({ previousWorkflowId: labeling.id, rejectionMode: 'none' });
    const spare = await create({});
    let s = await expectExact('created');
    expect(s.get(labeling.id)).toEqual({ totalAssignments: 0, completedAssignments: 0, activeAnnotators: 0, rejectionRate: 0 });

    // Batches assigned through the API (pending), two annotators.
    await seedItems(t, labeling.id, 9, `graph-${labeling.id}/`);
    const [a1, a2, reviewer] = [await seedAnnotator(t, { roleId: role.id }), await seedAnnotator(t, { roleId: role.id }), await seedAnnotator(t, { roleId: role.id })];
    const batches: number[] = [];
    for (const a of [a1!, a2!, a1!]) {
      const res = await t.json('POST', `/api/workflows/${labeling.id}/assign`, { annotatorId: a.id });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      batches.push((res.body as { assignment: { id: number } }).assignment.id);
    }
    s = await expectExact('assigned');
    expect(s.get(labeling.id)).toMatchObject({ totalAssignments: 3, activeAnnotators: 2 });
    // The console's graph page shows them (and, below, shows them change: nothing stale is reused).
    const consoleBox = async () => (await (await t.request('GET', '/workflows')).text()).match(/\d+\/\d+ batches · \d+ working/g) ?? [];
    expect(await consoleBox()).toContain('0/3 batches · 2 working');

    // Provisioned (as provision.ts records it): in progress in a Label Studio project.
    const lsTasks = new Map<number, number[]>();
    for (const [i, id] of batches.entries()) {
      const project = 500 + i;
      await t.db.updateTable('assignments').set({ status: 'in_progress', lsProjectId: project }).where('id', '=', id).execute();
      const tasks = await t.db.selectFrom('assignmentTasks').select('id').where('assignmentId', '=', id).orderBy('position').execute();
      for (const [k, task] of tasks.entries()) await t.db.updateTable('assignmentTasks').set({ lsTaskId: project * 100 + k }).where('id', '=', task.id).execute();
      lsTasks.set(id, tasks.map((_, k) => project * 100 + k));
    }

    // Tasks annotated through the webhook, and one annotation deleted again.
    const hook = (a: { id: number; startGeneration: number }, body: unknown) => t.anonymous.json('POST', '/api/webhook', body, webhookHeaders(t, a));
    for (const [batch, a] of [[batches[0]!, a1!], [batches[1]!, a2!], [batches[2]!, a1!]] as const) {
      const project = 500 + batches.indexOf(batch);
      for (const task of lsTasks.get(batch)!.slice(0, batch === batches[2] ? 3 : 2)) {
        expect((await hook(a, annotationPayload('ANNOTATION_CREATED', project, task))).status).toBe(200);
      }
    }
    const deleted = annotationId - 1;
    expect((await hook(a1!, { action: 'ANNOTATIONS_DELETED', annotations: [{ id: deleted }], project: { id: 502 } })).status).toBe(200);
    expect(Number((await t.db.selectFrom('assignments').select('completedCount').where('id', '=', batches[2]!).executeTakeFirstOrThrow()).completedCount)).toBe(2);
    await expectExact('annotated');

    // A batch cancelled through the API: a2 holds no open batch any more.
    expect((await t.json('DELETE', `/api/assignments/${batches[1]}`)).status).toBe(200);
    s = await expectExact('cancelled');
    expect(s.get(labeling.id)).toMatchObject({ totalAssignments: 3, activeAnnotators: 1, completedAssignments: 0 });

    // A batch completed as complete.ts completes it.
    await t.db.updateTable('assignments').set({ status: 'completed', completedAt: new Date(), exportKey: 'out/x.json' }).where('id', '=', batches[0]!).execute();
    s = await expectExact('completed');
    expect(s.get(labeling.id)).toMatchObject({ completedAssignments: 1, activeAnnotators: 1 });

    // A reviewer's rejection, applied by the review step; the review workflow's rate moves.
    const reviewBatch = await t.db
      .insertInto('assignments')
      .values({ workflowId: review.id, annotatorId: reviewer!.id, status: 'in_progress', taskCount: 2, completedCount: 2 })
      .returning('id')
      .executeTakeFirstOrThrow();
    await t.db
      .insertInto('assignmentTasks')
      .values({ assignmentId: reviewBatch.id, s3ImageKey: 'graph/rejected.png', status: 'annotated', reviewDecision: 'reject', reviewReason: 'blurry', result: JSON.stringify([]) })
      .execute();
    expect((await applyPendingReviews(t.ctx, reviewBatch.id)).applied).toBe(1);
    s = await expectExact('rejected');
    expect(s.get(review.id)).toEqual({ totalAssignments: 1, completedAssignments: 0, activeAnnotators: 1, rejectionRate: 0.5 });

    // Deletes: a workflow through the API; an annotator (soft) changes nothing counted.
    expect((await t.json('DELETE', `/api/workflows/${spare.id}`)).status).toBe(200);
    expect((await t.json('DELETE', `/api/annotators/${a2!.id}`)).status).toBeLessThan(300);
    s = await expectExact('deleted');
    expect(s.has(spare.id)).toBe(false);

    // The console's graph page shows the same figures.
    const l = s.get(labeling.id)!;
    expect(l).toMatchObject({ completedAssignments: 1, totalAssignments: 3, activeAnnotators: 1 });
    expect(await consoleBox()).toContain('1/3 batches · 1 working');
  });
});
