/**
 * POST /api/reconcile and the batches pass without Label Studio reachable: the documented shape,
 * concurrent calls, and a batch whose Label Studio is down — retried, then failed and its images
 * released, nothing stranded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/process.ts';
import { seedAnnotator, seedConfig, seedItems, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { createTestBucket, PNG_1PX } from '../helpers/s3.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let bucket: string;
let storage: Awaited<ReturnType<typeof createTestBucket>>['storage'];

beforeAll(async () => {
  const s3 = await createTestBucket('lf-reconcile');
  ({ bucket, storage } = s3);
  t = await startTestService({ env: s3.env });
});
afterAll(async () => t?.close());

describe('POST /api/reconcile', () => {
  it('answers {reconciled, completed, errors}', async () => {
    const res = await t.json('POST', '/api/reconcile');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ reconciled: 0, completed: 0, errors: [] });
  });

  it('lets a concurrent call wait for the running pass, then run its own', async () => {
    const results = await Promise.all([t.json('POST', '/api/reconcile'), t.json('POST', '/api/reconcile'), t.json('POST', '/api/reconcile')]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
    for (const r of results) expect(Object.keys(r.body).sort()).toEqual(['completed', 'errors', 'reconciled']);
  });

  it('answers 401 without a session', async () => {
    expect((await t.anonymous.json('POST', '/api/reconcile')).status).toBe(401);
  });
});

describe('a batch whose Label Studio is down', () => {
  it('stays pending with its error while retried, then fails and releases its images', async () => {
    const role = await seedRole(t);
    const config = await seedConfig(t);
    const wf = await seedWorkflow(t, { labelingConfigId: config.id, roleId: role.id, imagesPerProject: 3, s3SourcePath: 'down/' });
    for (let i = 0; i < 4; i++) await storage.put(bucket, `down/img-${String(i).padStart(6, '0')}.png`, PNG_1PX);
    await seedItems(t, wf.id, 4, 'down/');
    // Active, with an address where nothing listens.
    const annotator = await seedAnnotator(t, { roleId: role.id, port: await freePort(), token: 'unreachable-token' });

    const first = await t.json('POST', '/api/reconcile');
    expect(first.status).toBe(200);
    const [a] = await t.db.selectFrom('assignments').selectAll().where('annotatorId', '=', annotator.id).execute();
    expect(a).toMatchObject({ workflowId: wf.id, status: 'pending', provisionAttempts: 1, lsProjectId: null });
    expect(a!.error).toMatch(/Label Studio .* failed/);
    expect(first.body.errors.some((e: string) => e.startsWith(`assignment ${a!.id}: provisioning failed (will retry)`))).toBe(true);
    const reserved = await t.db.selectFrom('workItems').select('id').where('assignmentId', '=', a!.id).where('status', '=', 'reserved').execute();
    expect(reserved).toHaveLength(3);

    // Past batches.provisionTimeoutMinutes the batch fails and its images go back to the queue.
    await t.db.updateTable('annotators').set({ autoAssignPaused: true }).where('id', '=', annotator.id).execute();
    await t.json('PUT', '/api/settings/batches.provisionTimeoutMinutes', { value: 0 });
    await t.json('POST', '/api/reconcile');
    const failed = await t.db.selectFrom('assignments').selectAll().where('id', '=', a!.id).executeTakeFirstOrThrow();
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/not set up in Label Studio within the provisioning timeout/);
    const items = await t.db.selectFrom('workItems').select(['status', 'assignmentId']).where('workflowId', '=', wf.id).execute();
    expect(items.every((i) => i.status === 'queued' && i.assignmentId === null)).toBe(true);
    expect(items).toHaveLength(4);
  });
});
