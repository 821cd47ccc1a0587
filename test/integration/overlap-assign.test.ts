/**
 * Overlap (issue 13): assignments of a workflow with overlap 3 seat each item with three distinct
 * annotators, under 50 concurrent assignments (some annotators asking several times at once),
 * with gold mixing as for overlap 1; a failed batch frees its seats.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator, Role } from '../../src/db/types.ts';
import { goldCountFor } from '../../src/domain/gold-mixing.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { seedAnnotator, seedConfig, seedGold, seedItems, seedRole, seedWorkflow } from '../helpers/batches.ts';
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

/** Every invariant of the seats of an overlap workflow's open batches. */
async function expectSeatInvariants(workflowId: number, overlap: number) {
  const tasks = await sql<{ assignmentId: number; annotatorId: number; workItemId: number | null; s3ImageKey: string; isGold: boolean }>`
    SELECT t.assignment_id, a.annotator_id, t.work_item_id, t.s3_image_key, t.is_gold
      FROM assignment_tasks t JOIN assignments a ON a.id = t.assignment_id
     WHERE a.workflow_id = ${workflowId} AND a.status IN ('pending', 'in_progress')`.execute(t.db);
  const seats = await sql<{ workItemId: number; seat: number; annotatorId: number; assignmentId: number }>`
    SELECT s.work_item_id, s.seat, s.annotator_id, s.assignment_id
      FROM work_item_seats s JOIN work_items i ON i.id = s.work_item_id WHERE i.workflow_id = ${workflowId}`.execute(t.db);
  const items = await t.db.selectFrom('workItems').select(['id', 'status', 'assignmentId']).where('workflowId', '=', workflowId).orderBy('id').execute();

  const real = tasks.rows.filter((x) => !x.isGold);
  // No annotator twice on an item, nor on an image (across all their open batches).
  const pairs = real.map((x) => `${x.workItemId}/${x.annotatorId}`);
  expect(new Set(pairs).size).toBe(pairs.length);
  const images = real.map((x) => `${x.s3ImageKey}/${x.annotatorId}`);
  expect(new Set(images).size).toBe(images.length);
  // Seats and real tasks are the same set.
  expect(seats.rows.map((s) => `${s.workItemId}/${s.annotatorId}/${s.assignmentId}`).sort()).toEqual(
    real.map((x) => `${x.workItemId}/${x.annotatorId}/${x.assignmentId}`).sort(),
  );
  // No item over-seated; seat numbers distinct and within 1..overlap; full items reserved, others queued.
  const byItem = new Map<number, number[]>();
  for (const s of seats.rows) byItem.set(Number(s.workItemId), [...(byItem.get(Number(s.workItemId)) ?? []), s.seat]);
  for (const item of items) {
    const held = byItem.get(Number(item.id)) ?? [];
    expect(held.length).toBeLessThanOrEqual(overlap);
    expect(new Set(held).size).toBe(held.length);
    expect(held.every((n) => n >= 1 && n <= overlap)).toBe(true);
    expect(item.status, `item ${item.id} with ${held.length} seats`).toBe(held.length === overlap ? 'reserved' : 'queued');
    expect(item.assignmentId).toBeNull();
  }
  return { tasks: tasks.rows, seats: seats.rows, items };
}

describe('overlap 3', () => {
  it('keeps every invariant under 50 concurrent assignments', async () => {
    // 8 tasks a batch at rate 0.25: 6 real + 2 gold. 40 annotators asking once and 5 asking twice
    // at once: 50 batches × 6 = 300 seats = 100 items × 3.
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 8, goldStandardRate: 0.25, overlap: 3 });
    await seedItems(t, wf.id, 100, 'ov/');
    const annotators = await Promise.all(Array.from({ length: 45 }, () => seedAnnotator(t, { roleId: role.id })));
    const requests = [...annotators, ...annotators.slice(0, 5)];
    const results = await Promise.all(requests.map((a) => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
    const ok = results.filter((r) => r.ok);
    expect(ok.length).toBeGreaterThanOrEqual(45);
    for (const r of results) if (!r.ok) expect(r.reason).toBe('no_items');

    const { seats, items } = await expectSeatInvariants(wf.id, 3);
    for (const r of ok) {
      if (!r.ok) continue;
      // Gold mixing as for overlap 1.
      expect(r.assignment.goldTaskCount).toBe(goldCountFor(r.assignment.taskCount, 0.25, 4));
    }
    // Every seat an assignment could take was taken: items left queued are those that the
    // remaining requests could not take (all their annotators already sit on them, or none asked).
    expect(seats.length).toBe(ok.reduce((s, r) => s + (r.ok ? r.assignment.taskCount - r.assignment.goldTaskCount : 0), 0));
    expect(items.filter((i) => i.status === 'reserved').length).toBeGreaterThan(0);

    // Another round: every annotator asks again until the queue has nothing left for them.
    for (let round = 0; round < 4; round++) {
      await Promise.all(annotators.map((a) => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
    }
    const after = await expectSeatInvariants(wf.id, 3);
    expect(after.seats.length).toBe(300);
    expect(after.items.every((i) => i.status === 'reserved')).toBe(true);
  });

  it('an annotator never gets an item twice, even asking again and again', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 5, goldStandardRate: 0, overlap: 3 });
    await seedItems(t, wf.id, 10, 'again/');
    const [a, b] = await Promise.all([seedAnnotator(t, { roleId: role.id }), seedAnnotator(t, { roleId: role.id })]);
    const first = await Promise.all([0, 1, 2, 3].map(() => assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })));
    // Ten items: two batches of five, then nothing left for a.
    expect(first.filter((r) => r.ok)).toHaveLength(2);
    expect(first.filter((r) => !r.ok).map((r) => !r.ok && r.reason)).toEqual(['no_items', 'no_items']);
    const second = await assignBatch(t.db, { workflowId: wf.id, annotatorId: b.id });
    expect(second.ok).toBe(true);
    const { items } = await expectSeatInvariants(wf.id, 3);
    // Two seats of three taken on five items, one on the other five: all still queued.
    expect(items.every((i) => i.status === 'queued')).toBe(true);
  });

  it('a failed or cancelled batch frees its seats, and a full item is queued again', async () => {
    const wf = await seedWorkflow(t, { labelingConfigId: configId, roleId: role.id, imagesPerProject: 2, goldStandardRate: 0, overlap: 2 });
    await seedItems(t, wf.id, 2, 'free/');
    const [a, b, c] = (await Promise.all([0, 1, 2].map(() => seedAnnotator(t, { roleId: role.id })))) as [Annotator, Annotator, Annotator];
    const ra = await assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id });
    const rb = await assignBatch(t.db, { workflowId: wf.id, annotatorId: b.id });
    expect(ra.ok && rb.ok).toBe(true);
    expect((await expectSeatInvariants(wf.id, 2)).items.map((i) => i.status)).toEqual(['reserved', 'reserved']);
    // Nothing left for c while both seats are held.
    expect(await assignBatch(t.db, { workflowId: wf.id, annotatorId: c.id })).toMatchObject({ ok: false, reason: 'no_items' });
    await t.db.updateTable('assignments').set({ status: 'failed' }).where('id', '=', rb.ok ? rb.assignment.id : -1).execute();
    const freed = await expectSeatInvariants(wf.id, 2);
    expect(freed.items.map((i) => i.status)).toEqual(['queued', 'queued']);
    expect(freed.seats.map((s) => s.annotatorId)).toEqual([a.id, a.id]);
    // c takes the freed seats; a still cannot take its own items again.
    expect(await assignBatch(t.db, { workflowId: wf.id, annotatorId: a.id })).toMatchObject({ ok: false, reason: 'no_items' });
    const rc = await assignBatch(t.db, { workflowId: wf.id, annotatorId: c.id });
    expect(rc.ok && rc.assignment.taskCount).toBe(2);
    expect((await expectSeatInvariants(wf.id, 2)).items.map((i) => i.status)).toEqual(['reserved', 'reserved']);
  });
});
