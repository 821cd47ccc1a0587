/**
 * Fault: PostgreSQL restarted (stopped for ~3 s, then started) while Label Studio webhooks arrive
 * at a steady rate. The cluster is this test's own (initdb + pg_ctl on another port:
 * test/helpers/pg-cluster.ts); `fleet serve` runs as a child process on it. Every webhook answered
 * 200 must be in the database afterwards, applied once the inbox has drained; every other answer
 * must be a 503.
 */
import './meta.ts';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/crypto.ts';
import { openDatabase } from '../../src/db/index.ts';
import { currentWebhookSecret } from '../../src/labelstudio/instances.ts';
import { assignBatch } from '../../src/workflows/assign.ts';
import { seedAnnotator, seedConfig, seedItems, seedRole, seedWorkflow } from '../helpers/batches.ts';
import { startFleetProcess, type FleetProcess } from '../helpers/fleet-process.ts';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts';
import { sleep, waitUntil } from '../helpers/process.ts';
import { TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';

const RATE_PER_SECOND = 20;
const TASKS = 600;
let cluster: PgCluster;
let fleet: FleetProcess;
let headers: Record<string, string>;
let lsProjectId: number;
let lsTaskIds: number[];

beforeAll(async () => {
  cluster = await startPgCluster();
  // No reconcile loop: this case is about the webhook path; the fleet starts no instances.
  fleet = await startFleetProcess({ DATABASE_URL: cluster.url }, ['--no-reconcile']);
  const handle = await openDatabase({ url: cluster.url, dataDir: '/nonexistent', poolSize: 2 });
  try {
    const secrets = new SecretBox(TEST_SECRET_KEY);
    const t = { db: handle.db, ctx: { secrets } } as unknown as TestService;
    const role = await seedRole(t);
    const annotator = await seedAnnotator(t, { roleId: role.id });
    const config = await seedConfig(t);
    const wf = await seedWorkflow(t, { labelingConfigId: config.id, imagesPerProject: TASKS, goldStandardRate: 0, shuffleImages: false });
    await seedItems(t, wf.id, TASKS, 'restart/');
    const r = await assignBatch(handle.db, { workflowId: wf.id, annotatorId: annotator.id, seed: 1 });
    if (!r.ok) throw new Error(r.message);
    lsProjectId = 7000;
    await handle.db.updateTable('assignments').set({ status: 'in_progress', lsProjectId }).where('id', '=', r.assignment.id).execute();
    const tasks = await handle.db.selectFrom('assignmentTasks').select('id').where('assignmentId', '=', r.assignment.id).orderBy('position').execute();
    lsTaskIds = tasks.map((_, i) => lsProjectId * 1000 + i);
    for (const [i, task] of tasks.entries()) await handle.db.updateTable('assignmentTasks').set({ lsTaskId: lsTaskIds[i]! }).where('id', '=', task.id).execute();
    headers = { 'x-annotator-id': String(annotator.id), 'x-webhook-secret': currentWebhookSecret({ secrets }, annotator) };
  } finally {
    await handle.close();
  }
});
afterAll(async () => {
  await fleet?.stop();
  cluster?.destroy();
});

describe('PostgreSQL restarted while webhooks arrive at 20/s', () => {
  const acknowledged: number[] = [];
  const statuses = new Map<number, number>();
  let outageMs = 0;

  it('the process stays up; answers are 200 or 503', async ({ task }) => {
    let next = 0;
    const send = async (i: number) => {
      const updated = new Date().toISOString();
      const body = {
        action: 'ANNOTATION_CREATED',
        annotation: { id: 50_000 + i, result: [], was_cancelled: false, created_at: updated, updated_at: updated, lead_time: 3, task: lsTaskIds[i], project: lsProjectId },
        project: { id: lsProjectId },
        task: { id: lsTaskIds[i] },
      };
      const r = await fleet.request('POST', '/api/webhook', body, headers).catch(() => ({ status: 0 }));
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 200) acknowledged.push(50_000 + i);
    };
    const inFlight: Promise<void>[] = [];
    const pace = async (ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end && next < TASKS) {
        inFlight.push(send(next++));
        await sleep(1000 / RATE_PER_SECOND);
      }
    };
    await pace(4_000);
    const restart = (async () => {
      const down = Date.now();
      cluster.stop();
      await sleep(3_000);
      cluster.start();
      outageMs = Date.now() - down;
    })();
    await pace(3_000);
    await restart;
    await pace(6_000);
    await Promise.all(inFlight);
    task.meta.counts = { webhooks: next, outageMs };
    expect(fleet.alive(), fleet.output.text.slice(-3000)).toBe(true);
    const byStatus = Object.fromEntries(statuses);
    expect(Object.keys(byStatus).map(Number).filter((s) => s !== 200 && s !== 503), JSON.stringify(byStatus)).toEqual([]);
    expect(statuses.get(503) ?? 0, JSON.stringify(byStatus)).toBeGreaterThan(0);
  });

  it('every webhook answered 200 is in the database and applied once the inbox drains (0 acknowledged lost)', async ({ task }) => {
    const client = new pg.Client({ connectionString: cluster.url });
    await client.connect();
    // Acknowledged means stored in the inbox; its drainer applies it (retrying after the outage).
    const waiting = async () => Number((await client.query('SELECT count(*) AS n FROM webhook_inbox')).rows[0].n);
    const { rows } = await waitUntil('the inbox to drain', async () => (await waiting()) === 0, 30_000, 50)
      .then(() => client.query('SELECT ls_annotation_id FROM annotation_events WHERE ls_project_id = $1', [lsProjectId]))
      .finally(() => client.end());
    const stored = new Set(rows.map((r) => Number(r.ls_annotation_id)));
    const lost = acknowledged.filter((id) => !stored.has(id));
    task.meta.counts = { acknowledged: acknowledged.length, served503: statuses.get(503) ?? 0, lost: lost.length };
    expect(lost).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(RATE_PER_SECOND * 5);
  });

  it('health answers 200 again without a restart', async ({ task }) => {
    const started = Date.now();
    await waitUntil('health 200', async () => (await fleet.request('GET', '/api/health')).status === 200, 60_000, 100);
    task.meta.counts = { recoveredMs: Date.now() - started };
  });
});
