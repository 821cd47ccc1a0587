/**
 * The outbox survives `kill -9`. Real `fleet serve` processes on one database and a receiver on
 * 127.0.0.1:
 * 1. between the fact and the delivery: a process records a fact in an API handler's transaction
 *    (a gold answer flags the annotator: annotator.flagged) and is killed before any delivery;
 *    another process delivers it, once;
 * 2. mid-delivery: a process is killed while its POST of batch.completed waits for an answer; the
 *    next process sends it again once the claim's lease ends — same webhook-id, valid signature —
 *    and the receiver accepts exactly one.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignBatch } from '../../src/workflows/assign.ts';
import { seedGold, seedItems, webhookHeaders } from '../helpers/batches.ts';
import { completeBatchFact, localWebhookSettings, seedPipeline } from '../helpers/outbound.ts';
import { freePort, startFleet, waitUntil } from '../helpers/process.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';

let t: TestService;
let receiver: Receiver;
const running: ReturnType<typeof startFleet>[] = [];

async function serve(reconcile: boolean) {
  const port = await freePort();
  const proc = startFleet(['serve', ...(reconcile ? [] : ['--no-reconcile'])], {
    DATABASE_URL: t.database.url,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    RECONCILE_INTERVAL_MS: '500',
    // No Docker, S3 or Label Studio work for these processes: only the outbound step has work.
    DOCKER_SOCKET: '/nonexistent.sock',
  });
  running.push(proc);
  const base = `http://127.0.0.1:${port}`;
  await waitUntil('fleet serve to answer', async () => (await fetch(`${base}/api/health`)).ok, 120_000, 250);
  return { proc, base };
}

async function kill9(proc: ReturnType<typeof startFleet>) {
  proc.child.kill('SIGKILL');
  await proc.exited;
}

beforeAll(async () => {
  t = await startTestService();
  await localWebhookSettings(t.db);
  receiver = await startReceiver();
});
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) await kill9(p);
  await receiver?.stop();
  await t?.close();
});

describe('kill -9', () => {
  it('between the fact and the delivery: another process delivers the fact once', async () => {
    const { workflow, config, annotator } = await seedPipeline(t);
    const sub = await t.json('POST', '/api/webhook-subscriptions', { url: receiver.url, eventTypes: ['annotator.flagged'] });
    await t.json('PUT', '/api/settings/quality.minEvaluations', { value: 1 });
    // A batch with one gold task in progress in "Label Studio" (ids assigned as provisioning would).
    await seedItems(t, workflow.id, 1, 'crash/');
    await seedGold(t, config.id, 1);
    await t.db.updateTable('workflows').set({ imagesPerProject: 2, goldStandardRate: 0.5 }).where('id', '=', workflow.id).execute();
    const r = await assignBatch(t.db, { workflowId: workflow.id, annotatorId: annotator.id, seed: 1 });
    if (!r.ok) throw new Error(r.message);
    await t.db.updateTable('assignments').set({ status: 'in_progress', lsProjectId: 77 }).where('id', '=', r.assignment.id).execute();
    const gold = await t.db.selectFrom('assignmentTasks').selectAll().where('assignmentId', '=', r.assignment.id).where('isGold', '=', true).executeTakeFirstOrThrow();
    await t.db.updateTable('assignmentTasks').set({ lsTaskId: 7700 }).where('id', '=', gold.id).execute();

    // Process 1 serves the API only: the webhook's drain records the gold result, the flag and the outbox row in one transaction.
    const p1 = await serve(false);
    const now = new Date().toISOString();
    const res = await fetch(`${p1.base}/api/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...webhookHeaders(t, annotator) },
      body: JSON.stringify({
        action: 'ANNOTATION_CREATED',
        annotation: { id: 1, result: [{ from_name: 'label', to_name: 'image', type: 'choices', value: { choices: ['dog'] } }], created_at: now, updated_at: now, lead_time: 3, task: 7700, project: 77, completed_by: 1 },
        project: { id: 77, title: 'x' },
        task: { id: 7700, data: {} },
      }),
    });
    expect(res.status).toBe(200);
    // The webhook is acknowledged once stored; its drainer records the fact moments later (src/workflows/inbox.ts).
    await waitUntil('the fact to be recorded', async () => (await t.db.selectFrom('webhookDeliveries').select('id').where('subscriptionId', '=', sub.body.id).execute()).length > 0, 10_000, 20);
    await kill9(p1.proc);
    const pending = await t.db.selectFrom('webhookDeliveries').selectAll().where('subscriptionId', '=', sub.body.id).execute();
    expect(pending.map((d) => [d.status, d.attemptCount])).toEqual([['pending', 0]]);
    expect(receiver.received).toEqual([]);

    // Process 2 runs the reconciler: it delivers what process 1 recorded.
    const p2 = await serve(true);
    const [got] = await receiver.waitFor(1);
    const body = new Webhook(sub.body.secret).verify(got!.body, got!.headers) as { type: string; data: { annotatorId: number; accuracy: number } };
    expect(body).toMatchObject({ type: 'annotator.flagged', data: { annotatorId: annotator.id, accuracy: 0, evaluationCount: 1 } });
    await waitUntil('the delivery to be recorded', async () => (await t.db.selectFrom('webhookDeliveries').select('status').where('subscriptionId', '=', sub.body.id).executeTakeFirstOrThrow()).status === 'delivered', 30_000);
    // A few more passes send nothing more.
    await new Promise((r) => setTimeout(r, 2000));
    expect(receiver.received).toHaveLength(1);
    await kill9(p2.proc);
    await t.json('PUT', `/api/webhook-subscriptions/${sub.body.id}`, { isActive: false });
  }, 300_000);

  it('mid-delivery: the next process sends batch.completed again after the lease, and the receiver accepts exactly one', async () => {
    const { workflow, annotator } = await seedPipeline(t);
    const sub = await t.json('POST', '/api/webhook-subscriptions', { url: receiver.url, eventTypes: ['batch.completed'] });
    receiver.received.length = 0;
    receiver.answer = 'hang';
    const p1 = await serve(true);
    const { assignmentId } = await completeBatchFact(t, workflow, annotator.id);
    const [first] = await receiver.waitFor(1);
    await kill9(p1.proc);
    const claimed = await t.db.selectFrom('webhookDeliveries').selectAll().where('subscriptionId', '=', sub.body.id).executeTakeFirstOrThrow();
    expect(claimed).toMatchObject({ status: 'pending', attemptCount: 0 });

    receiver.answer = 200;
    const p2 = await serve(true);
    // The lease (2 × webhooks.timeoutSeconds + 10 s = 14 s) must end before it is sent again.
    const [, second] = await receiver.waitFor(2, 90_000);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(10_000);
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    const body = new Webhook(sub.body.secret).verify(second!.body, second!.headers) as { data: { batchId: number } };
    expect(body.data.batchId).toBe(assignmentId);
    await waitUntil('the delivery to be recorded', async () => (await t.db.selectFrom('webhookDeliveries').select('status').where('subscriptionId', '=', sub.body.id).executeTakeFirstOrThrow()).status === 'delivered', 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    expect(receiver.received.filter((r) => r.accepted)).toHaveLength(1);
    const delivery = await t.db.selectFrom('webhookDeliveries').selectAll().where('subscriptionId', '=', sub.body.id).executeTakeFirstOrThrow();
    expect(delivery).toMatchObject({ status: 'delivered', attemptCount: 1, lastStatusCode: 200 });
    await kill9(p2.proc);
  }, 300_000);
});
