/**
 * Reconcile when due (orchestrator/due.ts, migration 0021): a pass over a fleet at rest writes
 * nothing and sends the same few statements whatever the totals (counted with a hook on node-pg);
 * a pending batch whose annotator is stopped is left alone until the annotator becomes active, and
 * is then taken up by the next pass after the wake-up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedFleetLoad } from '../helpers/fleet-load.ts';
import { freePort, waitUntil } from '../helpers/process.ts';
import { createTestBucket } from '../helpers/s3.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { countStatements } from '../helpers/statements.ts';

/** What an idle pass may send at most (issue 15's target is < 100). */
const IDLE_STATEMENTS_MAX = 30;

let t: TestService;
let bucket: string;
let deadPort: number;

beforeAll(async () => {
  const s3 = await createTestBucket('lf-due');
  bucket = s3.bucket;
  deadPort = await freePort();
  t = await startTestService({ env: { ...s3.env, FLEET_NAMESPACE: `due${process.pid % 100000}` } });
});
afterAll(async () => t?.close());

async function pass() {
  const r = await t.service.reconciler.runOnce({ wait: true });
  if (r === 'busy') throw new Error('pass lock busy');
  return r;
}

/** Passes until one writes nothing (what seeding left due is settled), at most 5. */
async function settle() {
  for (let i = 0; i < 5; i++) {
    const { count } = await countStatements(pass);
    if (count.rowsWritten === 0) return;
  }
  throw new Error('the fleet did not come to rest in 5 passes');
}

describe('an idle reconcile pass', () => {
  it('writes nothing and sends the same few statements at small and larger totals', async () => {
    await seedFleetLoad(t.db, t.ctx.secrets, { annotators: 20, batches: 30, workflows: 3, bucket, deadPort, tag: 'small' });
    await settle();
    const small = (await countStatements(pass)).count;
    expect(small.writes).toEqual([]);
    expect(small.rowsWritten).toBe(0);
    expect(small.statements).toBeLessThanOrEqual(IDLE_STATEMENTS_MAX);

    // Ten times the annotators and thirty times the batches.
    await seedFleetLoad(t.db, t.ctx.secrets, { annotators: 200, batches: 900, workflows: 10, bucket, deadPort, tag: 'large' });
    await settle();
    const large = (await countStatements(pass)).count;
    expect(large.writes).toEqual([]);
    expect(large.rowsWritten).toBe(0);
    expect(large.statements).toBe(small.statements);

    // Several idle passes in a row stay idle, and ask the backend (Docker) for nothing: its list
    // is taken on the drift sweep (at most one of these quick passes) and when annotators are due.
    const backend = t.ctx.backend;
    const list = backend.list.bind(backend);
    let lists = 0;
    backend.list = () => (lists++, list());
    try {
      for (let i = 0; i < 3; i++) expect((await countStatements(pass)).count).toMatchObject({ rowsWritten: 0, statements: small.statements });
    } finally {
      backend.list = list;
    }
    expect(lists).toBeLessThanOrEqual(1);
  });

  it('after a pass whose due batches found their Label Studio down, the next passes leave them alone until their retry', async () => {
    await settle();
    const due = await t.db
      .updateTable('assignments')
      .set({ lsCheckedAt: new Date(Date.now() - 86_400_000), dueAt: new Date() })
      .where('id', 'in', (eb) => eb.selectFrom('assignments').select('id').where('status', '=', 'in_progress').orderBy('id').limit(5))
      .returning(['id'])
      .execute();
    expect(due).toHaveLength(5);
    const before = Date.now();
    const first = (await countStatements(pass)).count;
    expect(first.rowsWritten).toBeGreaterThan(0);
    const problems = await t.db.selectFrom('assignments').select(['problemCode', 'dueAt']).where('id', 'in', due.map((d) => d.id)).execute();
    expect(problems.map((p) => p.problemCode)).toEqual(Array(5).fill('ls_unreachable'));
    // Retried 15 s on (decideBatch's retrySeconds), not at once: passes a few seconds later are idle.
    for (const p of problems) expect(p.dueAt!.getTime()).toBeGreaterThanOrEqual(before + 15_000);
    await new Promise((r) => setTimeout(r, 2_500));
    for (let i = 0; i < 2; i++) expect((await countStatements(pass)).count).toMatchObject({ rowsWritten: 0, writes: [] });
  });

  it('leaves a pending batch of a stopped annotator alone, and takes it up right after the annotator becomes active', async () => {
    const stopped = await t.db
      .selectFrom('assignments as a')
      .innerJoin('annotators as n', 'n.id', 'a.annotatorId')
      .select(['a.id', 'a.annotatorId', 'a.provisionAttempts'])
      .where('a.status', '=', 'pending')
      .where('n.status', '=', 'stopped')
      .orderBy('a.id')
      .executeTakeFirstOrThrow();
    for (let i = 0; i < 3; i++) await pass();
    const untouched = await t.db.selectFrom('assignments').select(['provisionAttempts', 'error']).where('id', '=', stopped.id).executeTakeFirstOrThrow();
    expect(untouched).toEqual({ provisionAttempts: stopped.provisionAttempts, error: null });

    // The annotator is active again (its Label Studio still does not answer): the running
    // reconciler, woken as the API wakes it, tries to set the batch up and records why it could not.
    t.service.reconciler.start();
    try {
      await t.db.updateTable('annotators').set({ status: 'active' }).where('id', '=', stopped.annotatorId).execute();
      t.ctx.wake('test: annotator active');
      await waitUntil(
        'the pending batch to be tried',
        async () => {
          const a = await t.db.selectFrom('assignments').select(['provisionAttempts']).where('id', '=', stopped.id).executeTakeFirstOrThrow();
          return a.provisionAttempts > stopped.provisionAttempts;
        },
        30_000,
        100,
      );
    } finally {
      await t.service.reconciler.stop();
    }
    const tried = await t.db.selectFrom('assignments').select(['status', 'error']).where('id', '=', stopped.id).executeTakeFirstOrThrow();
    expect(tried.status).toBe('pending');
    expect(tried.error).toMatch(/Label Studio|ECONNREFUSED|fetch failed/i);
  });
});
