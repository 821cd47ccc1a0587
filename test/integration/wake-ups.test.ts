/**
 * Reconcile when due: every write that can change what an annotator, a batch or a catalog needs
 * makes it due (migrations/0021_due.sql; orchestrator/due.ts), whoever writes it — API routes,
 * webhook ingestion's comparison marks, settings, an operator's SQL — and the steps' own
 * bookkeeping makes nothing due (so an idle pass stays idle and retry backoff holds). Each case
 * starts from a fleet with nothing due and checks which keys a write made due.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { markForComparison } from '../../src/workflows/compare.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let roleId: number;
let otherRoleId: number;
let workflowId: number;
let active: number;
let idle: number;
let batch: number;
let pendingBatch: number;

beforeAll(async () => {
  t = await startTestService();
  const { db } = t;
  roleId = (await db.insertInto('roles').values({ name: 'wake' }).returning('id').executeTakeFirstOrThrow()).id;
  otherRoleId = (await db.insertInto('roles').values({ name: 'wake-other' }).returning('id').executeTakeFirstOrThrow()).id;
  const config = await db
    .insertInto('labelingConfigs')
    .values({ name: 'wake', configXml: '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="a"/></Choices></View>' })
    .returning('id')
    .executeTakeFirstOrThrow();
  workflowId = (
    await db
      .insertInto('workflows')
      .values({ name: 'wake', roleId, labelingConfigId: config.id, s3SourcePath: 'wake/in/', s3ExportPath: 'wake/out/', isActive: true })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  const token = t.ctx.secrets.encrypt('token');
  const annotator = (name: string) =>
    db
      .insertInto('annotators')
      .values({ name, email: `${name}@wake.test`, subdomain: name, roleId, status: 'active', startGeneration: 1, containerIp: '127.0.0.1', containerPort: 9, apiTokenEnc: token })
      .returning('id')
      .executeTakeFirstOrThrow();
  active = (await annotator('busy')).id;
  idle = (await annotator('idle')).id;
  batch = (
    await db
      .insertInto('assignments')
      .values({ workflowId, annotatorId: active, status: 'in_progress', taskCount: 3, lsProjectId: 7, webhookGeneration: 1, lsCheckedAt: new Date(), startedAt: new Date() })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
  pendingBatch = (
    await db.insertInto('assignments').values({ workflowId, annotatorId: idle, status: 'pending', taskCount: 3 }).returning('id').executeTakeFirstOrThrow()
  ).id;
});
afterAll(async () => t?.close());

/** Nothing due anywhere (as after passes that found nothing to do). */
beforeEach(async () => {
  await sql`UPDATE annotators SET due_at = NULL, assign_due_at = NULL`.execute(t.db);
  await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);
  await sql`UPDATE workflows SET catalog_due_at = NULL`.execute(t.db);
});

/** Which keys are due now, by kind. */
async function due() {
  const ids = async (q: string) => (await sql<{ id: number }>`${sql.raw(q)}`.execute(t.db)).rows.map((r) => r.id).sort((a, b) => a - b);
  return {
    instances: await ids('SELECT id FROM annotators WHERE due_at <= now()'),
    assign: await ids('SELECT id FROM annotators WHERE assign_due_at <= now()'),
    batches: await ids('SELECT id FROM assignments WHERE due_at <= now()'),
    catalogs: await ids('SELECT id FROM workflows WHERE catalog_due_at <= now()'),
  };
}
const none = { instances: [], assign: [], batches: [], catalogs: [] };

describe('writes that change what a key needs make it due', () => {
  it('issuing a password to a running annotator: its instance (recreated to apply it) and its batches', async () => {
    expect((await t.json('POST', `/api/annotators/${active}/password`)).status).toBe(200);
    expect(await due()).toEqual({ ...none, instances: [active] });
  });

  it('stopping, and starting again: the instance, its auto-assignment and its open batches', async () => {
    expect((await t.json('POST', `/api/annotators/${idle}/stop`)).status).toBe(200);
    expect(await due()).toEqual({ ...none, instances: [idle], assign: [idle], batches: [pendingBatch] });
    await sql`UPDATE annotators SET due_at = NULL, assign_due_at = NULL, status = 'stopped' WHERE id = ${idle}`.execute(t.db);
    await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);
    expect((await t.json('POST', `/api/annotators/${idle}/start`)).status).toBe(200);
    expect((await due()).instances).toEqual([idle]);
    expect((await due()).batches).toEqual([pendingBatch]);
  });

  it("an annotator's role changed or auto-assignment paused: due for auto-assignment", async () => {
    expect((await t.json('PUT', `/api/annotators/${active}`, { roleId: otherRoleId })).status).toBe(200);
    expect((await due()).assign).toEqual([active]);
    await sql`UPDATE annotators SET assign_due_at = NULL, due_at = NULL`.execute(t.db);
    expect((await t.json('PUT', `/api/annotators/${active}`, { roleId, autoAssignPaused: true })).status).toBe(200);
    expect((await due()).assign).toEqual([active]);
  });

  it('settings: fleet.* → every managed instance, batches.* → every open batch, catalog.* → every root catalog; other keys and equal values → nothing', async () => {
    expect((await t.json('PUT', '/api/settings/fleet.memoryMb', { value: 1024 })).status).toBe(200);
    expect(await due()).toEqual({ ...none, instances: [active, idle].sort((a, b) => a - b) });
    await sql`UPDATE annotators SET due_at = NULL`.execute(t.db);
    expect((await t.json('PUT', '/api/settings/fleet.memoryMb', { value: 1024 })).status).toBe(200);
    expect(await due()).toEqual(none);

    expect((await t.json('PUT', '/api/settings/batches.compareIntervalSeconds', { value: 30 })).status).toBe(200);
    expect(await due()).toEqual({ ...none, batches: [batch, pendingBatch].sort((a, b) => a - b) });
    await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);

    expect((await t.json('PUT', '/api/settings/catalog.syncIntervalSeconds', { value: 120 })).status).toBe(200);
    expect(await due()).toEqual({ ...none, catalogs: [workflowId] });
    await sql`UPDATE workflows SET catalog_due_at = NULL`.execute(t.db);

    expect((await t.json('PUT', '/api/settings/quality.minEvaluations', { value: 7 })).status).toBe(200);
    expect(await due()).toEqual(none);
  });

  it("a workflow's expiryHours changed: its batches in progress (they expire at another time)", async () => {
    expect((await t.json('PUT', `/api/workflows/${workflowId}`, { expiryHours: 2 })).status).toBe(200);
    expect((await due()).batches).toEqual([batch]);
  });

  it('a comparison asked for (a webhook action LabelFleet does not ingest): the batch, even when already waiting for one', async () => {
    expect(await markForComparison(t.db, active, 7)).toBe(1);
    expect((await due()).batches).toEqual([batch]);
    await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);
    expect(await markForComparison(t.db, active, null)).toBe(1); // ls_checked_at is already null
    expect((await due()).batches).toEqual([batch]);
  });

  it("an operator's SQL on a batch (start time, counts): the batch", async () => {
    await t.db.updateTable('assignments').set({ startedAt: new Date(Date.now() - 3_600_000) }).where('id', '=', batch).execute();
    expect((await due()).batches).toEqual([batch]);
    await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);
    await t.db.updateTable('assignments').set({ taskCount: 4 }).where('id', '=', batch).execute();
    expect((await due()).batches).toEqual([batch]);
    await t.db.updateTable('assignments').set({ taskCount: 3 }).where('id', '=', batch).execute();
  });

  it('a completed count that makes the batch done (or no longer done): the batch; a count short of it is progress and wakes nothing', async () => {
    // Of 3 tasks: 1 and 2 answered leave the decision as it was (batchDone reads only whether all are).
    for (const n of [1, 2]) {
      await t.db.updateTable('assignments').set({ completedCount: n }).where('id', '=', batch).execute();
      expect(await due()).toEqual(none);
    }
    await t.db.updateTable('assignments').set({ completedCount: 3 }).where('id', '=', batch).execute();
    expect((await due()).batches).toEqual([batch]);
    await sql`UPDATE assignments SET due_at = NULL`.execute(t.db);
    await t.db.updateTable('assignments').set({ completedCount: 2 }).where('id', '=', batch).execute();
    expect((await due()).batches).toEqual([batch]);
    await sql`UPDATE assignments SET due_at = NULL, completed_count = 0`.execute(t.db);
  });

  it("the steps' bookkeeping (attempts, errors, comparison recorded, webhook, problem, database made ahead) makes nothing due", async () => {
    await t.db
      .updateTable('assignments')
      .set({ provisionAttempts: sql`provision_attempts + 1`, error: 'refused', updatedAt: new Date() })
      .where('id', '=', pendingBatch)
      .execute();
    await t.db
      .updateTable('assignments')
      .set({ lsCheckedAt: new Date(), webhookGeneration: 2, lsWebhookId: 3, problemCode: 'ls_unreachable', problemMessage: 'x', problemSince: new Date() })
      .where('id', '=', batch)
      .execute();
    await t.db.updateTable('annotators').set({ lastActiveAt: new Date(), notes: 'n', name: 'renamed' }).where('id', '=', active).execute();
    await t.db.updateTable('annotators').set({ databasePreparedAt: new Date() }).where('id', '=', idle).execute();
    expect(await due()).toEqual(none);
  });

  it('a batch closing: its annotator is due for auto-assignment, and its instance (a recreate deferred during the batch)', async () => {
    expect((await t.json('DELETE', `/api/assignments/${batch}`)).status).toBe(200);
    expect(await due()).toEqual({ ...none, instances: [active], assign: [active] });
  });
});
