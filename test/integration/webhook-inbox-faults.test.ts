/**
 * Failure cases of the webhook inbox (src/workflows/inbox.ts) and of the deletion lookup
 * (migration 0043), found by an adversarial review: each test states what a user or operator
 * would notice.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Annotator } from '../../src/db/types.ts';
import { seedAnnotator, seedInProgressBatch, seedRole, webhooksApplied } from '../helpers/batches.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { reconcileSteps } from '../../orchestrator/steps.ts';
import { GROUP, webhookInbox } from '../../src/workflows/inbox.ts';
import { fastArgs, type FastArgs } from '../../src/workflows/ingest.ts';

let t: TestService;
let annotator: Annotator;
let project = 7100;

beforeAll(async () => {
  t = await startTestService({ overrides: { wake: () => {} } });
  const role = await seedRole(t);
  annotator = await seedAnnotator(t, { roleId: role.id });
});
afterAll(async () => {
  await webhooksApplied(t);
  await t?.close();
});

const choice = (c: string) => [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: [c] } }];
let annotationId = 71_000;
let clock = Date.parse('2026-01-01T00:00:00Z');

function payload(action: string, lsProjectId: number, lsTaskId: number, id = ++annotationId) {
  const updated = new Date((clock += 1000)).toISOString();
  return {
    action,
    annotation: { id, result: choice('cat'), was_cancelled: false, ground_truth: false, created_at: updated, updated_at: updated, lead_time: 3, task: lsTaskId, project: lsProjectId, completed_by: 1 },
    project: { id: lsProjectId, title: 'x', task_number: 3 },
    task: { id: lsTaskId, data: { image: 'http://x' }, meta: {} },
  };
}

const inbox = () => webhookInbox(t.ctx);

/**
 * Stores events in the inbox as the handler does (one row per event), without waking the drainer:
 * the backlog a restart, a failed drain or a burst leaves behind.
 */
async function backlog(events: FastArgs[]) {
  await t.db
    .insertInto('webhookInbox' as never)
    .values(events.map((e) => ({ event: JSON.stringify(e) })) as never)
    .execute();
}

/** `n` UPDATED events of `annotator` about the tasks of a fresh in-progress batch, each newer than the last. */
async function updates(n: number): Promise<FastArgs[]> {
  const b = await seedInProgressBatch(t, { annotatorId: annotator.id, lsProjectId: ++project, real: 20, prefix: 'brk' });
  return Array.from({ length: n }, (_, k) => {
    const lsTaskId = b.real[k % b.real.length]!;
    const p = payload('ANNOTATION_UPDATED', b.lsProjectId, lsTaskId, 80_000 + (k % b.real.length) + project * 100);
    return fastArgs(
      { annotatorId: annotator.id, action: 'ANNOTATION_UPDATED', source: 'webhook', lsProjectId: b.lsProjectId, lsTaskId },
      { id: p.annotation.id, result: p.annotation.result, updatedAt: p.annotation.updated_at, leadTime: 3, wasCancelled: false },
    );
  });
}

const pending = async () =>
  Number((await sql<{ n: string }>`SELECT count(*) AS n FROM webhook_inbox`.execute(t.db)).rows[0]!.n);

describe('webhook inbox: one failing event in a backlog', () => {
  it('is set aside and the drain still applies the whole backlog behind it', async () => {
    const good = await updates(GROUP * 2);
    // An event that fails alone (here a lead_time the database refuses: 22P02), ahead of the rest.
    await backlog([{ ...good[0]!, lead_time: 'abc' as never }, ...good]);
    expect(await pending()).toBe(GROUP * 2 + 1);
    // What the reconciler's first step (orchestrator/steps.ts) and a deletion webhook await.
    await inbox().drain();
    // Nothing acknowledged is left unapplied once the drain is done (the bad row set aside and
    // counted as taken: a full group after it means more may follow).
    expect(await pending()).toBe(0);
  }, 120_000);
});

describe('webhook inbox: an event set aside', () => {
  it("is reported by the reconciler's webhook-inbox step (an operator's only view of a pass)", async () => {
    await inbox().takeSetAside(); // what the test before set aside
    const [ev] = await updates(1);
    await backlog([{ ...ev!, lead_time: 'abc' as never }]);
    const step = reconcileSteps(t.ctx).find((s) => s.name === 'webhook-inbox')!;
    const report = await step.run(t.ctx);
    const setAside = await sql<{ n: string }>`SELECT count(*) AS n FROM webhook_inbox_set_aside`.execute(t.db);
    expect(Number(setAside.rows[0]!.n)).toBeGreaterThan(0);
    // The pass names the event it could not apply, once.
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toContain(`annotator ${annotator.id}`);
    expect(report.errors[0]).toContain(`task ${ev!.ls_task}`);
    expect((await step.run(t.ctx)).errors).toEqual([]);
  }, 60_000);
});

describe('webhook inbox: the task of an event set aside', () => {
  it('many at once: the report names 20 and counts the rest, once; 30 days after their report they are gone', async () => {
    await inbox().takeSetAside(); // what the tests before set aside
    const [ev] = await updates(1);
    await sql`INSERT INTO webhook_inbox_set_aside (id, event, received_at, error)
      SELECT 900000 + n, ${JSON.stringify(ev)}::jsonb, now(), 'invalid input syntax' FROM generate_series(1, 25) n`.execute(t.db);
    const lines = await inbox().takeSetAside();
    expect(lines).toHaveLength(21);
    expect(lines[0]).toContain('id 900001;');
    expect(lines[19]).toContain('id 900020;');
    expect(lines[20]).toBe('5 more webhook events set aside (rows of webhook_inbox_set_aside)');
    expect(await inbox().takeSetAside()).toEqual([]);
    const kept = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM webhook_inbox_set_aside WHERE id > 900000`.execute(t.db)).rows[0]!.n);
    await sql`UPDATE webhook_inbox_set_aside SET reported_at = now() - interval '29 days' WHERE id BETWEEN 900001 AND 900010`.execute(t.db);
    await sql`UPDATE webhook_inbox_set_aside SET reported_at = now() - interval '31 days' WHERE id BETWEEN 900011 AND 900025`.execute(t.db);
    expect(await inbox().takeSetAside()).toEqual([]);
    expect(await kept()).toBe(10);
  }, 60_000);

  it('is made due for comparison with Label Studio at once (what 0042 says repairs it)', async () => {
    const [ev] = await updates(1);
    const batch = await t.db.selectFrom('assignments').select('id').where('annotatorId', '=', annotator.id).where('lsProjectId', '=', ev!.project!).executeTakeFirstOrThrow();
    // Compared a moment ago, next due in an hour.
    await t.db
      .updateTable('assignments')
      .set({ lsCheckedAt: new Date(), dueAt: new Date(Date.now() + 3_600_000) })
      .where('id', '=', batch.id)
      .execute();
    await backlog([{ ...ev!, lead_time: 'abc' as never }]);
    await inbox().drain();
    const after = await t.db.selectFrom('assignments').select(['lsCheckedAt', 'dueAt']).where('id', '=', batch.id).executeTakeFirstOrThrow();
    // Due for comparison with Label Studio now (compare.ts markForComparison), not in an hour.
    expect(after.lsCheckedAt).toBeNull();
  }, 60_000);
});

describe('ANNOTATIONS_DELETED without a project (migration 0043 labelfleet_delete_annotations)', () => {
  /** Task rows PostgreSQL reads to apply one deletion of `annotatorId` naming no project (this transaction's counters). */
  async function taskRowsRead(annotatorId: number, annotation: number) {
    return t.db.transaction().execute(async (trx) => {
      // Backend-local counters not yet flushed: read before and after, in one transaction.
      const count = async () =>
        Number(
          (
            await sql<{ n: string }>`SELECT pg_stat_get_xact_tuples_fetched('assignment_tasks'::regclass)
                                          + pg_stat_get_xact_tuples_returned('assignment_tasks'::regclass) AS n`.execute(trx)
          ).rows[0]!.n,
        );
      const start = await count();
      await sql`SELECT * FROM labelfleet_delete_annotations(${annotatorId}, NULL, NULL, ARRAY[${annotation}]::integer[], 'webhook')`.execute(trx);
      return (await count()) - start;
    });
  }

  it("reads as many task rows for an annotator with a long history as for a new one (issue 15)", async () => {
    const role = await seedRole(t);
    const fresh = await seedAnnotator(t, { roleId: role.id });
    const veteran = await seedAnnotator(t, { roleId: role.id });
    await seedInProgressBatch(t, { annotatorId: fresh.id, lsProjectId: ++project, real: 20, prefix: 'del' });
    for (let i = 0; i < 25; i++) await seedInProgressBatch(t, { annotatorId: veteran.id, lsProjectId: ++project, real: 20, prefix: 'del' });
    // History: all but the newest of the veteran's batches are done.
    const batches = await t.db.selectFrom('assignments').select('id').where('annotatorId', '=', veteran.id).orderBy('id', 'desc').execute();
    await t.db.updateTable('assignments').set({ status: 'completed', completedAt: new Date() }).where('id', 'in', batches.slice(1).map((b) => b.id)).execute();
    const few = await taskRowsRead(fresh.id, 990_001);
    const many = await taskRowsRead(veteran.id, 990_002);
    // The veteran holds 25 × 20 tasks, 24 batches of them done: a lookup that does not grow with
    // history reads the open batch's tasks, as for the new annotator (the first version of 0043
    // read every task of every batch the annotator ever had, twice).
    expect({ few, many: many < 100 ? 'a handful' : many }).toEqual({ few, many: 'a handful' });
  }, 120_000);
});
