/**
 * Outbound webhooks: subscriptions, the outbox written with each fact, signed delivery by the
 * reconciler's outbound step to a local receiver, retries with backoff while the receiver is down,
 * the delivery log, redelivery, the 24 h window, and destinations that are refused without sending.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { outboundStep } from '../../orchestrator/outbound-step.ts';
import { enqueueOutbound } from '../../src/outbound/events.ts';
import { evaluateQuality } from '../../src/workflows/quality.ts';
import { provisionAssignment } from '../../src/workflows/provision.ts';
import { applyPendingReviews } from '../../src/workflows/review.ts';
import { transitionAnnotator } from '../../src/workflows/annotators.ts';
import { seedAnnotator, seedWorkflow } from '../helpers/batches.ts';
import { completeBatchFact, localWebhookSettings, seedPipeline, TEST_BUCKET } from '../helpers/outbound.ts';
import { sleep } from '../helpers/process.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

let t: TestService;
let receiver: Receiver;
let fixture: Awaited<ReturnType<typeof seedPipeline>>;
const step = outboundStep();
const deliverNow = () => step.run(t.ctx);

beforeAll(async () => {
  t = await startTestService();
  await localWebhookSettings(t.db);
  receiver = await startReceiver();
  fixture = await seedPipeline(t);
});
afterAll(async () => {
  await receiver?.stop();
  await t?.close();
});
beforeEach(async () => {
  // Each test subscribes afresh; earlier subscriptions are paused so they receive nothing.
  await t.db.updateTable('webhookSubscriptions').set({ isActive: false }).execute();
  receiver.received.length = 0;
  receiver.answer = 200;
});

async function subscribe(body: Record<string, unknown> = {}) {
  const res = await t.json('POST', '/api/webhook-subscriptions', { url: receiver.url, eventTypes: ['batch.completed'], ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: number; secret: string; headerNames: string[] };
}

const deliveriesOf = async (subscriptionId: number) => (await t.json('GET', `/api/webhook-subscriptions/${subscriptionId}/deliveries`)).body.data;
const detail = async (subscriptionId: number, deliveryId: number) => (await t.json('GET', `/api/webhook-subscriptions/${subscriptionId}/deliveries/${deliveryId}`)).body;

describe('subscriptions', () => {
  it('creates one with extra headers and shows the secret once, never the header values', async () => {
    const sub = await subscribe({ eventTypes: ['batch.completed', 'batch.failed'], headers: { Authorization: 'Bearer pipeline-token', 'X-Team': 'vision' }, description: 'training' });
    expect(sub.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(sub).toMatchObject({ headerNames: ['Authorization', 'X-Team'], secretPrefix: sub.secret.slice(0, 10), isActive: true, deliveryCounts: { pending: 0, delivered: 0, failed: 0 } });
    const got = await t.json('GET', `/api/webhook-subscriptions/${sub.id}`);
    expect(got.body).not.toHaveProperty('secret');
    const everything = JSON.stringify((await t.json('GET', '/api/webhook-subscriptions')).body);
    expect(everything).not.toContain('pipeline-token');
    expect(everything).not.toContain(sub.secret);
    const row = await t.db.selectFrom('webhookSubscriptions').selectAll().where('id', '=', sub.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain('pipeline-token');

    const updated = await t.json('PUT', `/api/webhook-subscriptions/${sub.id}`, { eventTypes: ['batch.failed'], headers: {}, isActive: false });
    expect(updated.body).toMatchObject({ eventTypes: ['batch.failed'], headerNames: [], isActive: false });
    expect((await t.json('DELETE', `/api/webhook-subscriptions/${sub.id}`)).body).toEqual({ success: true });
    expect((await t.json('GET', `/api/webhook-subscriptions/${sub.id}`)).status).toBe(404);
  });

  it('refuses bad subscriptions with 400', async () => {
    for (const body of [
      { url: 'ftp://example.com/x', eventTypes: ['batch.completed'] },
      { url: 'not a url', eventTypes: ['batch.completed'] },
      { url: 'https://user:pass@example.com/x', eventTypes: ['batch.completed'] },
      { url: 'http://169.254.169.254/latest/meta-data/', eventTypes: ['batch.completed'] },
      { url: 'http://[fd00:ec2::254]/', eventTypes: ['batch.completed'] },
      { url: 'http://10.1.2.3/hook', eventTypes: ['batch.completed'] },
      { url: receiver.url, eventTypes: [] },
      { url: receiver.url, eventTypes: ['batch.exploded'] },
      { url: receiver.url, eventTypes: ['batch.completed'], workflowId: 999999 },
      { url: receiver.url, eventTypes: ['batch.completed'], headers: { 'webhook-signature': 'v1,forged' } },
      { url: receiver.url, eventTypes: ['batch.completed'], headers: { 'Bad Header': 'x' } },
      { url: receiver.url, eventTypes: ['batch.completed'], headers: { 'X-Ok': 'line\nbreak' } },
      { url: receiver.url, eventTypes: ['batch.completed'], extra: 1 },
    ]) {
      const res = await t.json('POST', '/api/webhook-subscriptions', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBeTruthy();
    }
  });
});

describe('delivery', () => {
  it('delivers batch.completed exactly once, signed so the standardwebhooks verifier accepts it', async () => {
    const sub = await subscribe({ headers: { Authorization: 'Bearer pipeline-token' } });
    const { assignmentId, jsonKey } = await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
    await deliverNow();
    await deliverNow();
    const [got, ...more] = await receiver.waitFor(1);
    expect(more).toEqual([]);
    const payload = new Webhook(sub.secret).verify(got!.body, got!.headers) as { type: string; timestamp: string; data: Record<string, unknown> };
    expect(payload).toMatchObject({
      type: 'batch.completed',
      data: {
        batchId: assignmentId,
        workflowId: fixture.workflow.id,
        workflowName: fixture.workflow.name,
        annotatorId: fixture.annotator.id,
        taskCount: 3,
        export: { bucket: TEST_BUCKET, jsonKey, jsonlKey: jsonKey.replace(/\.json$/, '.jsonl') },
      },
    });
    expect(got!.headers['webhook-id']).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(got!.headers.authorization).toBe('Bearer pipeline-token');
    expect(got!.headers['content-type']).toBe('application/json');
    // A forged or re-signed body is refused by the same verifier.
    expect(() => new Webhook(sub.secret).verify(got!.body.replace(String(assignmentId), '999'), got!.headers)).toThrow();

    const [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ eventId: got!.headers['webhook-id'], eventType: 'batch.completed', status: 'delivered', attemptCount: 1, lastStatusCode: 200, nextAttemptAt: null });
    const log = await detail(sub.id, delivery.id);
    expect(log.attempts).toHaveLength(1);
    expect(log.attempts[0]).toMatchObject({ statusCode: 200, error: null, responseExcerpt: 'thanks' });
    expect(log.attempts[0].durationMs).toBeGreaterThanOrEqual(0);
    expect(log.payload).toEqual(payload);
  });

  it('retries with backoff while the receiver is down or failing, with the same webhook-id, then delivers', async () => {
    const sub = await subscribe();
    await receiver.stop();
    await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
    await deliverNow();
    let [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ status: 'pending', attemptCount: 1, lastStatusCode: null });
    expect(delivery.lastError).toMatch(/ECONNREFUSED/);
    const firstDue = Date.parse(delivery.nextAttemptAt);
    // Not due yet: nothing is attempted.
    await deliverNow();
    expect((await deliveriesOf(sub.id))[0].attemptCount).toBe(1);

    await receiver.restart();
    receiver.answer = 503;
    await sleep(Math.max(0, firstDue - Date.now()) + 50);
    await deliverNow();
    [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ status: 'pending', attemptCount: 2, lastStatusCode: 503 });
    const secondDue = Date.parse(delivery.nextAttemptAt);

    receiver.answer = 200;
    await sleep(Math.max(0, secondDue - Date.now()) + 50);
    await deliverNow();
    [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ status: 'delivered', attemptCount: 3, lastStatusCode: 200 });

    const log = await detail(sub.id, delivery.id);
    expect(log.attempts.map((a: { statusCode: number | null }) => a.statusCode)).toEqual([null, 503, 200]);
    const times = log.attempts.map((a: { attemptedAt: string }) => Date.parse(a.attemptedAt));
    // Backoff: 1 s then 2 s (±10 %), as settings say.
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(900);
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(1800);
    const ids = receiver.received.map((r) => r.headers['webhook-id']);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(1);
    for (const r of receiver.received) expect(() => new Webhook(sub.secret).verify(r.body, r.headers)).not.toThrow();
  });

  it('marks a delivery failed once retries would pass the window, and redelivers on request with the same id', async () => {
    const sub = await subscribe();
    receiver.answer = 500;
    await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
    await deliverNow();
    let [delivery] = await deliveriesOf(sub.id);
    expect(delivery.status).toBe('pending');
    // As if the first attempt had been 24 hours ago.
    await t.db.updateTable('webhookDeliveries').set({ windowStartedAt: new Date(Date.now() - 24 * 3_600_000), nextAttemptAt: new Date() }).where('id', '=', delivery.id).execute();
    await deliverNow();
    [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ status: 'failed', attemptCount: 2, lastStatusCode: 500, nextAttemptAt: null });
    expect((await t.json('GET', `/api/webhook-subscriptions/${sub.id}/deliveries?status=failed`)).body.pagination.total).toBe(1);

    receiver.answer = 200;
    const again = await t.json('POST', `/api/webhook-subscriptions/${sub.id}/deliveries/${delivery.id}/redeliver`);
    expect(again.status).toBe(202);
    expect(again.body.status).toBe('pending');
    await deliverNow();
    [delivery] = await deliveriesOf(sub.id);
    expect(delivery).toMatchObject({ status: 'delivered', attemptCount: 3 });
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(receiver.received.at(-1)!.accepted).toBe(true);
    expect((await t.json('POST', `/api/webhook-subscriptions/${sub.id}/deliveries/999999/redeliver`)).status).toBe(404);
  });

  it('refuses link-local and metadata destinations without sending, whatever the setting allows', async () => {
    await localWebhookSettings(t.db, { 'webhooks.allowedNetworks': ['0.0.0.0/0', '::/0'] });
    try {
      const sub = await subscribe();
      for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://[fd00:ec2::254]/']) {
        // Stored as a compromised or migrated row would be: the API refuses these URLs up front.
        await t.db.updateTable('webhookSubscriptions').set({ url }).where('id', '=', sub.id).execute();
        await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
        await deliverNow();
        const [delivery] = await deliveriesOf(sub.id);
        expect(delivery, url).toMatchObject({ status: 'failed', attemptCount: 1, lastStatusCode: null });
        expect(delivery.lastError).toMatch(/refused: .*never a webhook destination/);
        const log = await detail(sub.id, delivery.id);
        expect(log.attempts[0].durationMs).toBeLessThan(1000);
      }
    } finally {
      await localWebhookSettings(t.db);
    }
  });

  it('refuses a name that resolves to an address the setting does not allow, before connecting', async () => {
    await localWebhookSettings(t.db, { 'webhooks.allowedNetworks': ['public'] });
    try {
      // A name passes creation (it is resolved when sending, as DNS answers can change).
      const sub = await subscribe({ url: receiver.url.replace('127.0.0.1', 'localhost') });
      await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
      await deliverNow();
      const [delivery] = await deliveriesOf(sub.id);
      expect(delivery).toMatchObject({ status: 'failed', lastStatusCode: null });
      expect(delivery.lastError).toMatch(/refused: localhost resolves to .*not in webhooks.allowedNetworks/);
      // The receiver on 127.0.0.1 (what localhost resolves to) heard nothing.
      expect(receiver.received).toEqual([]);
    } finally {
      await localWebhookSettings(t.db);
    }
  });
});

describe('the outbox', () => {
  it('follows event types, the workflow filter and paused subscriptions', async () => {
    const other = await seedWorkflow(t, { labelingConfigId: fixture.config.id, roleId: fixture.role.id });
    const mine = await subscribe({ workflowId: fixture.workflow.id });
    const failedOnly = await subscribe({ eventTypes: ['batch.failed'] });
    const paused = await subscribe();
    await t.json('PUT', `/api/webhook-subscriptions/${paused.id}`, { isActive: false });
    await completeBatchFact(t, fixture.workflow, fixture.annotator.id);
    await completeBatchFact(t, other, fixture.annotator.id);
    await deliverNow();
    expect((await deliveriesOf(mine.id)).map((d: { eventType: string }) => d.eventType)).toEqual(['batch.completed']);
    expect(await deliveriesOf(failedOnly.id)).toEqual([]);
    expect(await deliveriesOf(paused.id)).toEqual([]);
    expect(receiver.received).toHaveLength(1);
  });

  it('writes nothing when the fact’s transaction rolls back, and one event per fact however often its code runs', async () => {
    await subscribe({ eventTypes: ['batch.failed'] });
    const before = await t.db.selectFrom('webhookEvents').select(t.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await enqueueOutbound(trx, { type: 'batch.failed', data: { batchId: 1, workflowId: 1, annotatorId: 1, error: 'x', failedAt: new Date().toISOString() } });
        throw new Error('the fact did not happen');
      }),
    ).rejects.toThrow('the fact did not happen');
    const once = { type: 'batch.failed' as const, dedupeKey: 'batch.failed:test-1', data: { batchId: 1, workflowId: 1, annotatorId: 1, error: 'x', failedAt: new Date().toISOString() } };
    expect(await enqueueOutbound(t.db, once)).toMatch(/^msg_/);
    expect(await enqueueOutbound(t.db, once)).toBeNull();
    const after = await t.db.selectFrom('webhookEvents').select(t.db.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n) - Number(before.n)).toBe(1);
  });

  it('emits batch.failed, item.rejected, annotator.flagged and annotator.error from the code that records each fact', async () => {
    const sub = await subscribe({ eventTypes: ['batch.failed', 'item.rejected', 'annotator.flagged', 'annotator.error'] });

    // batch.failed: provisioning a batch whose annotator was deleted fails it.
    const gone = await seedAnnotator(t, { roleId: fixture.role.id, status: 'deleted' });
    const pending = await t.db.insertInto('assignments').values({ workflowId: fixture.workflow.id, annotatorId: gone.id, status: 'pending' }).returning('id').executeTakeFirstOrThrow();
    expect((await provisionAssignment(t.ctx, pending.id)).outcome).toBe('failed');

    // item.rejected: a reviewer's reject decision, applied.
    const review = await seedWorkflow(t, { labelingConfigId: fixture.config.id, previousWorkflowId: fixture.workflow.id, rejectionMode: 'none' });
    const reviewer = await seedAnnotator(t, { roleId: fixture.role.id });
    const reviewBatch = await t.db.insertInto('assignments').values({ workflowId: review.id, annotatorId: reviewer.id, status: 'in_progress', taskCount: 1 }).returning('id').executeTakeFirstOrThrow();
    const reviewTask = await t.db
      .insertInto('assignmentTasks')
      .values({ assignmentId: reviewBatch.id, s3ImageKey: 'img/rejected.png', status: 'annotated', reviewDecision: 'reject', reviewReason: 'box too loose', result: JSON.stringify([]) })
      .returning('id')
      .executeTakeFirstOrThrow();
    expect((await applyPendingReviews(t.ctx, reviewBatch.id)).applied).toBe(1);

    // annotator.flagged: gold accuracy below the threshold.
    const weak = await seedAnnotator(t, { roleId: fixture.role.id });
    const goldBatch = await t.db.insertInto('assignments').values({ workflowId: fixture.workflow.id, annotatorId: weak.id, status: 'in_progress', taskCount: 5 }).returning('id').executeTakeFirstOrThrow();
    for (let i = 0; i < 5; i++) {
      const task = await t.db.insertInto('assignmentTasks').values({ assignmentId: goldBatch.id, s3ImageKey: `gold/${i}.png`, isGold: true }).returning('id').executeTakeFirstOrThrow();
      await t.db.insertInto('goldResults').values({ assignmentTaskId: task.id, assignmentId: goldBatch.id, annotatorId: weak.id, score: 0.2 }).execute();
    }
    expect((await evaluateQuality(t.db, weak.id))?.change).toBe('flagged');

    // annotator.error: the one place statuses change.
    const starting = await seedAnnotator(t, { roleId: fixture.role.id, status: 'created' });
    await t.db.updateTable('annotators').set({ status: 'starting' }).where('id', '=', starting.id).execute();
    await t.db.transaction().execute((trx) => transitionAnnotator(trx, starting.id, 'error', 'Label Studio did not become healthy within 600 s'));

    await deliverNow();
    const bodies = receiver.received.map((r) => new Webhook(sub.secret).verify(r.body, r.headers) as { type: string; data: Record<string, unknown> });
    const byType = Object.fromEntries(bodies.map((b) => [b.type, b.data]));
    expect(Object.keys(byType).sort()).toEqual(['annotator.error', 'annotator.flagged', 'batch.failed', 'item.rejected']);
    expect(byType['batch.failed']).toMatchObject({ batchId: pending.id, workflowId: fixture.workflow.id, annotatorId: gone.id, error: 'annotator deleted' });
    expect(byType['item.rejected']).toMatchObject({ workflowId: review.id, imageKey: 'img/rejected.png', reason: 'box too loose', actionTaken: 'none', reviewerAnnotatorId: reviewer.id, reviewerBatchId: reviewBatch.id, escalated: false });
    const rejection = await t.db.selectFrom('rejections').select('id').where('reviewerTaskId', '=', reviewTask.id).executeTakeFirstOrThrow();
    expect(byType['item.rejected']!.rejectionId).toBe(rejection.id);
    expect(byType['annotator.flagged']).toMatchObject({ annotatorId: weak.id, accuracy: 0.2, evaluationCount: 5, threshold: 0.7, minEvaluations: 5, autoAssignPaused: false });
    expect(byType['annotator.error']).toMatchObject({ annotatorId: starting.id, fromStatus: 'starting', reason: 'Label Studio did not become healthy within 600 s' });
  });
});
