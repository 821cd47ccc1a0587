/**
 * 50 assignments at once against one workflow whose queue mixes every kind of item (work reserved
 * for one annotator, rework, chained items, catalog images, one image queued twice), through the
 * service's pool of 10 connections: every invariant of a reservation holds afterwards. Requests made
 * together are served in groups (one transaction each): mixed groups, and a group whose statement
 * fails on a concurrent reservation of the same image, serve each request as it would be alone.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator, Role } from '../../src/db/types.ts';
import { goldCountFor } from '../../src/domain/gold-mixing.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { seedAnnotator, seedConfig, seedGold, seedItems, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { waitUntil } from '../helpers/process.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let role: Role;
let configId: number;

beforeAll(async () => {
  t = await startTestService();
  role = await seedRole(t);
  configId = (await seedConfig(t)).id;
  await seedGold(t, configId, 4);
});
afterAll(async () => t?.close());

const BATCH = 12;
const RATE = 0.25;

/** Every invariant of the reservations of workflow `workflowId`; returns the open batches. */
async function expectInvariants(workflowId: number, rate: number) {
  const batches = await t.db
    .selectFrom('assignments')
    .selectAll()
    .where('workflowId', '=', workflowId)
    .where('status', 'in', ['pending', 'in_progress'])
    .execute();
  const tasks = await t.db
    .selectFrom('assignmentTasks as t')
    .innerJoin('assignments as a', 'a.id', 't.assignmentId')
    .select(['t.assignmentId', 't.s3ImageKey', 't.workItemId', 't.goldTaskId', 't.isGold', 't.position'])
    .where('a.workflowId', '=', workflowId)
    .where('a.status', 'in', ['pending', 'in_progress'])
    .execute();
  const reserved = await t.db
    .selectFrom('workItems')
    .select(['id', 'imageKey', 'assignmentId', 'targetAnnotatorId'])
    .where('workflowId', '=', workflowId)
    .where('status', '=', 'reserved')
    .execute();

  // No image in two open batches: not among the reserved items, not among the tasks.
  expect(new Set(reserved.map((r) => r.imageKey)).size).toBe(reserved.length);
  const realTasks = tasks.filter((x) => !x.isGold);
  expect(new Set(realTasks.map((x) => x.s3ImageKey)).size).toBe(realTasks.length);
  // Reserved items and real tasks are the same set, each pointing at the same open batch.
  const taskByItem = new Map(realTasks.map((x) => [Number(x.workItemId), x]));
  expect(taskByItem.size).toBe(reserved.length);
  for (const r of reserved) {
    const task = taskByItem.get(Number(r.id));
    expect(task, `item ${r.id}`).toBeDefined();
    expect(task!.assignmentId).toBe(r.assignmentId);
    expect(task!.s3ImageKey).toBe(r.imageKey);
  }
  const byBatch = new Map(batches.map((b) => [b.id, b]));
  for (const b of batches) {
    const mine = tasks.filter((x) => x.assignmentId === b.id);
    const gold = mine.filter((x) => x.isGold);
    // Counts as recorded, positions 0..n-1, gold as the rule says for the batch's size, distinct gold.
    expect(mine).toHaveLength(b.taskCount);
    expect(gold).toHaveLength(b.goldTaskCount);
    expect(mine.map((x) => x.position).sort((p, q) => p - q)).toEqual(Array.from({ length: b.taskCount }, (_, i) => i));
    expect(b.goldTaskCount).toBe(goldCountFor(b.taskCount, rate, 4));
    expect(new Set(gold.map((x) => x.goldTaskId)).size).toBe(gold.length);
    expect(gold.every((x) => x.goldTaskId !== null && x.workItemId === null)).toBe(true);
  }
  // Work reserved for one annotator went to that annotator only.
  for (const r of reserved) {
    if (r.targetAnnotatorId !== null) expect(byBatch.get(r.assignmentId!)!.annotatorId).toBe(r.targetAnnotatorId);
  }
  return { batches, tasks, reserved };
}

describe('assign: 50 at once', () => {
  it('keep every invariant of a reservation', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: BATCH, goldStandardRate: RATE, shuffleImages: true });
    const annotators: Annotator[] = await Promise.all(Array.from({ length: 50 }, () => seedAnnotator(t, { roleId: role.id })));
    // 400 catalog images, 30 chained items, 20 rework items (one with a routed rejection), 5 items
    // reserved for annotator 0 and 5 for annotator 1, and one image queued both as rework and chained.
    await seedItems(t, wf.id, 400, 'cat/');
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority)
      SELECT ${wf.id}, 'chain/' || g || '.png', 'chain', 1 FROM generate_series(1, 30) g`.execute(t.db);
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority)
      SELECT ${wf.id}, 'rework/' || g || '.png', 'rework', 0 FROM generate_series(1, 20) g`.execute(t.db);
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority, target_annotator_id)
      SELECT ${wf.id}::int, 'mine/' || g || '.png', 'rework', 0, ${annotators[0]!.id}::int FROM generate_series(1, 5) g
      UNION ALL
      SELECT ${wf.id}::int, 'mine/b' || g || '.png', 'rework', 0, ${annotators[1]!.id}::int FROM generate_series(1, 5) g`.execute(t.db);
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority) VALUES
      (${wf.id}, 'twice.png', 'rework', 0), (${wf.id}, 'twice.png', 'chain', 1)`.execute(t.db);
    const routed = await t.db
      .insertInto('rejections')
      .values({
        workflowId: wf.id,
        imageKey: 'rework/1.png',
        routedWorkItemId: sql<number>`(SELECT id FROM work_items WHERE workflow_id = ${wf.id} AND image_key = 'rework/1.png')`,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const queuedBefore = Number((await sql<{ n: number }>`SELECT count(*) AS n FROM work_items WHERE workflow_id = ${wf.id}`.execute(t.db)).rows[0]!.n);

    const results = await Promise.all(annotators.map((a) => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
    expect(results.map((r) => (r.ok ? 'ok' : r.message))).toEqual(Array(50).fill('ok'));
    const { batches, reserved } = await expectInvariants(wf.id, RATE);
    expect(batches).toHaveLength(50);
    // 458 distinct images for 50 batches of 9 real: every batch is full.
    expect(batches.every((b) => b.taskCount === BATCH && b.goldTaskCount === 3)).toBe(true);
    expect(reserved).toHaveLength(450);
    // Targeted work went first to its annotators; every rework item was taken before any catalog
    // image was left waiting (a shuffled queue takes rework, then chain, then catalog).
    const mineA = reserved.filter((r) => r.imageKey.startsWith('mine/') && !r.imageKey.startsWith('mine/b'));
    expect(mineA).toHaveLength(5);
    expect(new Set(mineA.map((r) => r.assignmentId))).toEqual(new Set([results[0]!.ok && results[0]!.assignment.id]));
    const left = await sql<{ imageKey: string; source: string }>`
      SELECT image_key, source FROM work_items WHERE workflow_id = ${wf.id} AND status = 'queued'`.execute(t.db);
    expect(left.rows.filter((r) => r.source !== 'catalog').map((r) => r.imageKey)).toEqual(
      // Only the second copy of an image already in an open batch may stay behind.
      left.rows.some((r) => r.imageKey === 'twice.png') ? ['twice.png'] : [],
    );
    expect(left.rows.length + reserved.length).toBe(queuedBefore);
    // The routed rejection points at the batch that took its item.
    const rejection = await t.db.selectFrom('rejections').select('routedToAssignmentId').where('id', '=', routed.id).executeTakeFirstOrThrow();
    const item = reserved.find((r) => r.imageKey === 'rework/1.png')!;
    expect(rejection.routedToAssignmentId).toBe(item.assignmentId);
  });

  it('keep maxProjects and one open auto batch per annotator when one annotator asks many times at once', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 4, goldStandardRate: 0, maxProjects: 2 });
    const auto = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 4, goldStandardRate: 0 });
    await seedItems(t, wf.id, 400, 'max/');
    await seedItems(t, auto.id, 400, 'auto/');
    const annotators = await Promise.all(Array.from({ length: 10 }, () => seedAnnotator(t, { roleId: role.id })));
    const manual = await Promise.all(
      annotators.flatMap((a) => Array.from({ length: 5 }, () => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id }))),
    );
    // maxProjects 2: exactly two of each annotator's five requests succeed, the rest are refused.
    expect(manual.filter((r) => r.ok)).toHaveLength(20);
    expect(manual.filter((r) => !r.ok).every((r) => !r.ok && r.reason === 'max_projects')).toBe(true);
    const automatic = await Promise.all(
      annotators.flatMap((a) => Array.from({ length: 3 }, () => assignBatch(t.db, { workflowId: auto.id, annotatorId: a.id, auto: true }))),
    );
    // Every annotator already holds open manual batches: auto-assignment gives none of them more.
    expect(automatic.every((r) => !r.ok && r.reason === 'max_projects')).toBe(true);
    const perAnnotator = await sql<{ annotatorId: number; n: number }>`
      SELECT annotator_id, count(*)::int AS n FROM assignments WHERE workflow_id = ${wf.id} GROUP BY 1`.execute(t.db);
    expect(perAnnotator.rows.map((r) => r.n)).toEqual(Array(10).fill(2));
    await expectInvariants(wf.id, 0);
  });

  it('serve requests made together as each would be served alone: workflows, refusals and one annotator twice mixed', async () => {
    const shuffled = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: BATCH, goldStandardRate: RATE, shuffleImages: true });
    const ordered = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 5, goldStandardRate: 0, shuffleImages: false });
    await seedItems(t, shuffled.id, 200, 'mixed/');
    await seedItems(t, ordered.id, 200, 'ordered/');
    const [a1, a2, a3, a4, a5, a6] = await Promise.all(Array.from({ length: 6 }, () => seedAnnotator(t, { roleId: role.id })));
    const stopped = await seedAnnotator(t, { roleId: role.id, status: 'stopped' });
    const otherRole = await seedAnnotator(t, { roleId: (await seedRole(t)).id });
    const requests = [
      { workflowId: shuffled.id, annotatorId: a1!.id },
      { workflowId: shuffled.id, annotatorId: a2!.id },
      { workflowId: ordered.id, annotatorId: a5!.id },
      { workflowId: shuffled.id, annotatorId: stopped.id },
      { workflowId: shuffled.id, annotatorId: a3!.id },
      { workflowId: 999_999, annotatorId: a4!.id },
      { workflowId: shuffled.id, annotatorId: otherRole.id },
      { workflowId: ordered.id, annotatorId: a6!.id },
      { workflowId: shuffled.id, annotatorId: a1!.id },
      { workflowId: shuffled.id, annotatorId: a4!.id },
    ];
    const results = await Promise.all(requests.map((r) => assignBatch(t.db, r)));
    expect(results.map((r) => (r.ok ? `${r.assignment.workflowId}:${r.assignment.annotatorId}` : r.reason))).toEqual(
      requests.map((r, i) => ([3, 5, 6].includes(i) ? ['annotator_not_active', 'workflow_missing', 'wrong_role'][[3, 5, 6].indexOf(i)] : `${r.workflowId}:${r.annotatorId}`)),
    );
    const mixed = await expectInvariants(shuffled.id, RATE);
    expect(mixed.batches).toHaveLength(5);
    expect(mixed.batches.every((b) => b.taskCount === BATCH)).toBe(true);
    // An unshuffled workflow's batches hold the first keys of the queue, each in key order.
    const inOrder = await expectInvariants(ordered.id, 0);
    expect(inOrder.reserved.map((r) => r.imageKey).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `ordered/img-${String(i).padStart(6, '0')}.png`));
    for (const b of inOrder.batches) {
      const keys = inOrder.tasks.filter((x) => x.assignmentId === b.id).sort((x, y) => x.position - y.position).map((x) => x.s3ImageKey);
      expect(keys).toEqual([...keys].sort());
    }
  });

  it('serve every request of a group whose statement met a reservation of the same image committed meanwhile', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 4, goldStandardRate: 0, shuffleImages: false });
    await seedItems(t, wf.id, 100, 'collide/');
    // One image queued twice: a rework copy and a chained copy.
    await sql`INSERT INTO work_items (workflow_id, image_key, source, priority) VALUES
      (${wf.id}, 'dup.png', 'rework', 0), (${wf.id}, 'dup.png', 'chain', 1)`.execute(t.db);
    const annotators = await Promise.all(Array.from({ length: 8 }, () => seedAnnotator(t, { roleId: role.id })));
    // Another transaction reserves the rework copy and stays open: the group skips that locked row,
    // takes the chained copy (the other reservation is not visible yet) and waits for it at the
    // unique index; when it commits, the group's statement fails and its requests are served alone.
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`UPDATE work_items SET status = 'reserved' WHERE workflow_id = $1 AND image_key = 'dup.png' AND source = 'rework'`, [wf.id]);
      const pending = Promise.all(annotators.map((a) => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
      await waitUntil(
        'a reservation waiting for the other transaction',
        async () =>
          (await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`.execute(t.db)).rows[0]!.n > 0,
        30_000,
        20,
      );
      await other.query('COMMIT');
      const results = await pending;
      expect(results.map((r) => (r.ok ? 'ok' : r.message))).toEqual(Array(8).fill('ok'));
    } finally {
      await other.end();
    }
    const tasks = await sql<{ key: string }>`
      SELECT t.s3_image_key AS key FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id WHERE a.workflow_id = ${wf.id}`.execute(t.db);
    // Eight full batches, no image twice, and not the image the other transaction reserved.
    expect(tasks.rows).toHaveLength(32);
    expect(new Set(tasks.rows.map((r) => r.key)).size).toBe(32);
    expect(tasks.rows.some((r) => r.key === 'dup.png')).toBe(false);
    const copies = await sql<{ source: string; status: string }>`
      SELECT source, status FROM work_items WHERE workflow_id = ${wf.id} AND image_key = 'dup.png' ORDER BY source`.execute(t.db);
    expect(copies.rows).toEqual([
      { source: 'chain', status: 'queued' },
      { source: 'rework', status: 'reserved' },
    ]);
  });

  it('try a request alone once: its failure reaches the caller, never a second reservation (its commit may have happened)', async () => {
    const role = await seedRole(t);
    const wf = await seedWorkflow(t, { labelingConfigId: (await seedConfig(t)).id, roleId: role.id, imagesPerProject: 3, goldStandardRate: 0 });
    await seedItems(t, wf.id, 10, 'lone/');
    const a = await seedAnnotator(t, { roleId: role.id });
    // The batch's INSERT reaches the server and fails there, counting each attempt.
    await sql`CREATE SEQUENCE lone_attempts`.execute(t.db);
    await sql
      .raw(
        `CREATE FUNCTION lone_fail() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.annotator_id = ${a.id} THEN PERFORM nextval('lone_attempts'); RAISE EXCEPTION 'lost after the server got it'; END IF; RETURN NEW; END $$`,
      )
      .execute(t.db);
    await sql`CREATE TRIGGER lone_fail BEFORE INSERT ON assignments FOR EACH ROW EXECUTE FUNCTION lone_fail()`.execute(t.db);
    try {
      await expect(assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })).rejects.toThrow(/lost after the server got it/);
      const { rows } = await sql<{ n: string }>`SELECT last_value AS n FROM lone_attempts`.execute(t.db);
      expect(Number(rows[0]!.n)).toBe(1);
    } finally {
      await sql`DROP TRIGGER lone_fail ON assignments`.execute(t.db);
      await sql`DROP FUNCTION lone_fail()`.execute(t.db);
    }
  });
});
