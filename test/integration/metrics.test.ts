import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reconciler } from '../../orchestrator/reconciler.ts';
import { openDatabase } from '../../src/db/index.ts';
import { metrics, renderMetrics } from '../../src/metrics.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const TOKEN = 'metrics-token-0123456789abcdef';
let t: TestService; // METRICS_TOKEN set
let off: TestService; // METRICS_TOKEN unset
beforeAll(async () => {
  [t, off] = await Promise.all([startTestService({ env: { METRICS_TOKEN: TOKEN } }), startTestService()]);
});
afterAll(async () => Promise.all([t?.close(), off?.close()]));

const bearer = { authorization: `Bearer ${TOKEN}` };

async function scrape(): Promise<string> {
  const res = await t.anonymous.request('GET', '/metrics', undefined, bearer);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one series, e.g. value(text, 'labelfleet_annotators{status="active"}'); undefined when absent. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics: access', () => {
  it('answers 404 when METRICS_TOKEN is not set', async () => {
    const res = await off.anonymous.json('GET', '/metrics', undefined, bearer);
    expect(res.status).toBe(404);
    expect(res.body.error).toMatch(/METRICS_TOKEN/);
    // A session does not open it either, and no method is served (not a 405 naming GET).
    expect((await off.json('GET', '/metrics')).status).toBe(404);
    for (const method of ['POST', 'PUT', 'DELETE', 'HEAD']) {
      const r = await off.json(method, '/metrics');
      expect([r.status, r.headers.get('allow')], method).toEqual([404, null]);
    }
  });

  it('answers 401 without the right bearer token, even with a session', async () => {
    for (const headers of <Record<string, string>[]>[
      {},
      { authorization: 'Bearer wrong-token-0123456789abcdef' },
      { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    ]) {
      const res = await t.anonymous.json('GET', '/metrics', undefined, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.body).toEqual({ error: 'Unauthorized' });
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    }
    expect((await t.json('GET', '/metrics')).status).toBe(401);
  });

  it('serves the Prometheus text format with the token', async () => {
    const res = await t.anonymous.request('GET', '/metrics', undefined, { authorization: `bearer  ${TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(text).toContain('# TYPE labelfleet_annotators gauge');
    expect(text).toContain('# TYPE labelfleet_webhook_events_total counter');
    expect(text).toContain('# TYPE labelfleet_labelstudio_request_seconds histogram');
    expect(value(text, 'labelfleet_database_up')).toBe(1);
    expect(value(text, 'labelfleet_process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe('metrics: figures', () => {
  it('counts annotators and batches by status from the database, zeros included', async () => {
    const mk = async (name: string, status: string) =>
      (
        await t.db
          .insertInto('annotators')
          .values({ name, email: `${name}@x.io`, subdomain: name, status: status as 'active' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    const a = await mk('a1', 'active');
    await mk('a2', 'active');
    await mk('a3', 'deleted');
    await mk('a4', 'error');
    const wf = (await t.db.insertInto('workflows').values({ name: 'w', s3SourcePath: 'i/', s3ExportPath: 'o/' }).returning('id').executeTakeFirstOrThrow()).id;
    for (const status of ['pending', 'in_progress', 'in_progress', 'completed', 'completed', 'completed']) {
      await t.db.insertInto('assignments').values({ workflowId: wf, annotatorId: a, status: status as 'pending' }).execute();
    }
    const text = await scrape();
    expect(
      Object.fromEntries(['created', 'starting', 'active', 'stopping', 'stopped', 'error', 'deleted'].map((s) => [s, value(text, `labelfleet_annotators{status="${s}"}`)])),
    ).toEqual({ created: 0, starting: 0, active: 2, stopping: 0, stopped: 0, error: 1, deleted: 1 });
    expect(
      Object.fromEntries(['pending', 'in_progress', 'completed', 'failed', 'cancelled'].map((s) => [s, value(text, `labelfleet_batches{status="${s}"}`)])),
    ).toEqual({ pending: 1, in_progress: 2, completed: 3, failed: 0, cancelled: 0 });
  });

  it('exposes what the instruments record', async () => {
    const before = await scrape();
    const created = 'labelfleet_webhook_events_total{action="ANNOTATION_CREATED",result="recorded"}';
    const restarts = 'labelfleet_container_events_total{kind="restart"}';
    expect(value(before, restarts)).toBe(0); // present before the first restart
    metrics.webhookEvents.inc({ action: 'ANNOTATION_CREATED', result: 'recorded' });
    metrics.webhookEvents.inc({ action: 'ANNOTATION_CREATED', result: 'recorded' });
    metrics.webhookEvents.inc({ action: 'ANNOTATION_UPDATED', result: 'duplicate' });
    metrics.webhookLatency.observe(0.004);
    metrics.lsApiLatency.observe({ operation: 'create_project' }, 0.3);
    metrics.containerEvents.inc({ kind: 'restart' });
    metrics.errors.inc({ source: 'labelstudio' });
    const after = await scrape();
    expect(value(after, created)).toBe((value(before, created) ?? 0) + 2);
    expect(value(after, 'labelfleet_webhook_events_total{action="ANNOTATION_UPDATED",result="duplicate"}')).toBe(
      (value(before, 'labelfleet_webhook_events_total{action="ANNOTATION_UPDATED",result="duplicate"}') ?? 0) + 1,
    );
    expect(value(after, 'labelfleet_webhook_ingest_seconds_count')).toBe((value(before, 'labelfleet_webhook_ingest_seconds_count') ?? 0) + 1);
    expect(value(after, 'labelfleet_webhook_ingest_seconds_bucket{le="0.005"}')).toBe(
      (value(before, 'labelfleet_webhook_ingest_seconds_bucket{le="0.005"}') ?? 0) + 1,
    );
    const ls = (text: string, le: string) => value(text, `labelfleet_labelstudio_request_seconds_bucket{le="${le}",operation="create_project"}`) ?? 0;
    expect(ls(after, '0.25') - ls(before, '0.25')).toBe(0);
    expect(ls(after, '0.5') - ls(before, '0.5')).toBe(1);
    expect(value(after, restarts)).toBe(1);
    expect(value(after, 'labelfleet_errors_total{source="labelstudio"}')).toBe((value(before, 'labelfleet_errors_total{source="labelstudio"}') ?? 0) + 1);
  });

  it('times every reconcile pass and counts its step errors', async () => {
    const before = await scrape();
    const reconciler = new Reconciler(
      t.ctx,
      [
        { name: 'ok', run: async () => ({ actions: [], errors: [] }) },
        { name: 'reports', run: async () => ({ actions: [], errors: ['one', 'two'] }) },
        {
          name: 'throws',
          run: async () => {
            throw new Error('boom');
          },
        },
      ],
      60_000,
    );
    expect(await reconciler.runOnce({ wait: true })).not.toBe('busy');
    expect(await reconciler.runOnce({ wait: true })).not.toBe('busy');
    const after = await scrape();
    expect(value(after, 'labelfleet_reconcile_pass_seconds_count')).toBe((value(before, 'labelfleet_reconcile_pass_seconds_count') ?? 0) + 2);
    expect(value(after, 'labelfleet_errors_total{source="reconcile"}')).toBe((value(before, 'labelfleet_errors_total{source="reconcile"}') ?? 0) + 6);
  });

  it('reports database_up 0 and keeps serving when the database cannot answer', async () => {
    // A real pool pointed at a port where nothing listens.
    const unreachable = await openDatabase({ url: 'postgres://postgres@127.0.0.1:1/none', dataDir: '/nonexistent', poolSize: 1 });
    try {
      const { body } = await renderMetrics(unreachable.db);
      expect(value(body, 'labelfleet_database_up')).toBe(0);
      expect(body).not.toContain('labelfleet_annotators{');
      expect(body).toContain('# TYPE labelfleet_webhook_events_total counter');
    } finally {
      await unreachable.close();
    }
  });
});
