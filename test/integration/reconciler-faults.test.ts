/**
 * The reconciler's fault paths (issue 10) in milliseconds: the real service on a real PostgreSQL
 * (per-annotator databases included) drives the in-memory backend (test/helpers/memory-backend.ts,
 * held to the Backend contract in backend-memory.test.ts) with its slow, never-ready and failing
 * variants. Each case asserts what an operator sees through the API — status, statusReason and the
 * container events — after reconcile passes run as `fleet serve` runs them. Timeouts are small through the
 * fleet.* settings; every wait is bounded generously. The fault suite (test/chaos) proves the same
 * paths on Docker, Traefik and Label Studio.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { MemoryBackend } from '../helpers/memory-backend.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { startTestService, type TestService } from '../helpers/service.ts';

const NAMESPACE = `flt${randomBytes(3).toString('hex')}`;
const DOMAIN = 'faults.localhost';
let t: TestService;
let backend: MemoryBackend;
const started: number[] = [];

/** Generous limits unless a case shrinks one; the backoff short so restarts take a fraction of a second. */
const BASE_SETTINGS = {
  'fleet.startTimeoutSeconds': 120,
  'fleet.databaseTimeoutSeconds': 60,
  'fleet.containerTimeoutSeconds': 60,
  'fleet.healthTimeoutSeconds': 60,
  'fleet.tokenTimeoutSeconds': 60,
  'fleet.routeTimeoutSeconds': 60,
  'fleet.maxRestarts': 5,
  'fleet.restartBackoffSeconds': 0.2,
};

beforeAll(async () => {
  backend = await new MemoryBackend({ namespace: NAMESPACE, domain: DOMAIN }).start();
  t = await startTestService({
    env: { FLEET_NAMESPACE: NAMESPACE, FLEET_DOMAIN: DOMAIN, TRAEFIK_URL: backend.routerUrl, LS_DATABASE_URL: TEST_DATABASE_URL() },
    overrides: { backend },
  });
  // The entrypoint's part: report the API token once Label Studio answers (through the real API).
  backend.onReady = async (spec) => {
    const res = await t.anonymous.json('POST', `/api/annotators/${spec.annotatorId}/token`, { token: `memory-token-${spec.annotatorId}` }, {
      'x-webhook-secret': spec.env.WEBHOOK_SECRET!,
    });
    if (res.status !== 200) throw new Error(`token report answered ${res.status}`);
  };
});
afterAll(async () => {
  for (const id of started) await t?.ctx.instanceDatabases.drop(id).catch(() => {});
  await t?.ctx.instanceDatabases.close();
  await t?.close();
  await backend?.close();
});

beforeEach(async () => {
  backend.faults = {};
  await settings({});
});

async function settings(overrides: Record<string, number>) {
  for (const [key, value] of Object.entries({ ...BASE_SETTINGS, ...overrides })) {
    const res = await t.json('PUT', `/api/settings/${key}`, { value });
    expect(res.status, `PUT ${key}`).toBe(200);
  }
}

let seq = 0;
async function createAndStart(): Promise<number> {
  seq++;
  const created = await t.json('POST', '/api/annotators', { name: `Fault ${seq}`, email: `fault${seq}@example.com` });
  expect(created.status).toBe(201);
  const id = created.body.id as number;
  started.push(id);
  expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
  return id;
}

interface Status {
  status: string;
  url: string | null;
  phase: string | null;
  statusReason: string | null;
}
const status = async (id: number): Promise<Status> => (await t.json('GET', `/api/annotators/${id}/status`)).body;

/** A reconcile pass as `fleet serve`'s loop runs it (POST /api/reconcile runs the batches step only). */
const pass = async () => expect(await t.service.reconciler.runOnce({ wait: true })).not.toBe('busy');

/** Runs passes until the status satisfies `done`; fails after `timeoutMs`, naming the last status. */
async function reconcileUntil(id: number, done: (s: Status) => boolean, timeoutMs = 20_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | undefined;
  while (Date.now() < deadline) {
    await pass();
    last = await status(id);
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`annotator ${id}: condition not reached within ${timeoutMs} ms; last status ${JSON.stringify(last)}`);
}

/** The annotator's container events through GET /api/events, oldest first. */
async function containerEvents(id: number): Promise<Array<{ eventType: string; message: string; toStatus: string; createdAt: string }>> {
  const res = await t.json('GET', `/api/events?type=container&annotatorId=${id}&limit=100`);
  expect(res.status).toBe(200);
  return [...res.body.data].reverse();
}

const settled = (s: Status) => s.status === 'active' || s.status === 'error';

describe('the reconciler against the memory backend', () => {
  it('starts a healthy instance to active with its url (the baseline every fault case departs from)', async () => {
    const id = await createAndStart();
    const s = await reconcileUntil(id, settled);
    expect(s).toMatchObject({ status: 'active', url: expect.stringContaining(DOMAIN), phase: null });
    expect(s.statusReason).toMatch(/^Label Studio is up at http:\/\/.*faults\.localhost/);
    const types = (await containerEvents(id)).map((e) => e.eventType);
    expect(types).toContain('token_reported');
    expect(types.at(-1)).toBe('status_change');
  });

  it('an annotator created a while before starts on the database made ahead: the start only sets its password', async () => {
    seq++;
    const created = await t.json('POST', '/api/annotators', { name: `Fault ${seq}`, email: `fault${seq}@example.com` });
    const id = created.body.id as number;
    started.push(id);
    await pass();
    const dbs = t.ctx.instanceDatabases;
    expect(await dbs.exists(id)).toEqual({ role: true, database: true });
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    expect(await reconcileUntil(id, settled)).toMatchObject({ status: 'active' });
    const progress = (await containerEvents(id)).filter((e) => e.eventType === 'start_progress').map((e) => e.message);
    expect(progress[0]).toBe(`database ${dbs.name(id)} ready (password rotated)`);
    // Made without a password (no login before a start); the start set its own.
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL() });
    await admin.connect();
    try {
      const { rows } = await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [dbs.name(id)]);
      expect(rows[0]?.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    } finally {
      await admin.end();
    }
  });

  it('a slow start within the phase limit still ends active', async () => {
    backend.faults = { slowMs: 300 };
    await settings({ 'fleet.healthTimeoutSeconds': 30 });
    const id = await createAndStart();
    expect((await reconcileUntil(id, settled)).status).toBe('active');
  });

  it('a slow start past a phase limit ends in error naming the phase, and its instance is removed', async () => {
    backend.faults = { slowMs: 60_000 };
    await settings({ 'fleet.healthTimeoutSeconds': 1 });
    const id = await createAndStart();
    const s = await reconcileUntil(id, settled);
    expect(s.status).toBe('error');
    expect(s.url).toBeNull();
    expect(s.statusReason).toMatch(/^phase healthy took longer than 1s; container starting/);
    const last = (await containerEvents(id)).at(-1)!;
    expect(last).toMatchObject({ eventType: 'status_change', toStatus: 'error' });
    expect(last.message).toMatch(/phase healthy took longer than 1s/);
    expect(backend.platform.instances.has(backend.name(id))).toBe(false);
  });

  it('a never-ready instance ends in error at the start timeout and is not retried afterwards', async () => {
    backend.faults = { neverReady: true };
    // 3 s, not less: on a busy machine the passes before the health wait (database, container) can
    // take over a second, and the start would time out in an earlier phase than the one tested.
    await settings({ 'fleet.startTimeoutSeconds': 3 });
    const id = await createAndStart();
    const before = backend.calls.ensure ?? 0;
    const s = await reconcileUntil(id, settled);
    expect(s.status).toBe('error');
    expect(s.statusReason).toMatch(/^start did not finish within 3s \(stuck in phase healthy\)/);
    const ensures = (backend.calls.ensure ?? 0) - before;
    expect(ensures).toBe(1); // created once, waited for, never created again
    for (let i = 0; i < 3; i++) await pass();
    expect(backend.calls.ensure ?? 0).toBe(before + ensures);
    expect((await status(id)).status).toBe('error');
    expect(backend.platform.instances.has(backend.name(id))).toBe(false);
  });

  it('an instance that keeps exiting is restarted with backoff, counted, then ends in error past fleet.maxRestarts', async () => {
    backend.faults = { exitAfterMs: 50 };
    await settings({ 'fleet.maxRestarts': 2, 'fleet.restartBackoffSeconds': 0.5 });
    const id = await createAndStart();
    const s = await reconcileUntil(id, (x) => x.status === 'error');
    expect(s.statusReason).toMatch(/container failed \(exited with code 1 \(injected fault\)\); gave up after 2 restart\(s\)/);
    const evs = await containerEvents(id);
    const restarts = evs.filter((e) => e.eventType === 'container_restarted');
    expect(restarts.map((e) => e.message.replace(/^.*; /, ''))).toEqual(['restart 1 of 2', 'restart 2 of 2']);
    // Backoff: restart 2 is decided no sooner than 0.5 s (restartBackoffSeconds × 2^0) after restart 1
    // was; the events carry their transactions' start, a little after each decision, hence the slack.
    const gap = Date.parse(restarts[1]!.createdAt) - Date.parse(restarts[0]!.createdAt);
    expect(gap).toBeGreaterThanOrEqual(400);
    expect(evs.at(-1)).toMatchObject({ eventType: 'status_change', toStatus: 'error' });
    const row = await t.db.selectFrom('annotators').select(['restartCount']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.restartCount).toBe(2);
  });

  it('a token reported while a pass is busy with another start is taken by that pass: active when the pass ends', async () => {
    // A's token report is held back until A waits for it …
    const report = backend.onReady;
    const held = new Map<number, InstanceSpec>();
    let holdFor = 0;
    backend.onReady = async (spec) => (spec.annotatorId === holdFor ? void held.set(spec.annotatorId, spec) : report?.(spec));
    try {
      seq++;
      const a = (await t.json('POST', '/api/annotators', { name: `Fault ${seq}`, email: `fault${seq}@example.com` })).body.id as number;
      started.push(a);
      holdFor = a;
      expect((await t.json('POST', `/api/annotators/${a}/start`)).status).toBe(200);
      await reconcileUntil(a, (s) => s.phase === 'token' && held.has(a));
      // … while B's start keeps the next pass busy (a slow platform).
      backend.faults = { ensureDelayMs: 1500 };
      await createAndStart();
      await new Promise((r) => setTimeout(r, 300)); // A due again (polled while it starts)
      const observed = backend.calls.observe ?? 0;
      const passing = pass();
      const until = Date.now() + 10_000;
      while ((backend.calls.observe ?? 0) === observed && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50)); // the pass is done with A: still waiting for its token
      const spec = held.get(a)!;
      const res = await t.anonymous.json('POST', `/api/annotators/${a}/token`, { token: `memory-token-${a}` }, { 'x-webhook-secret': spec.env.WEBHOOK_SECRET! });
      expect(res.status).toBe(200);
      await passing;
      expect(await status(a)).toMatchObject({ status: 'active', url: expect.stringContaining(DOMAIN) });
    } finally {
      backend.onReady = report;
    }
  });

  it('a failing ensure is reported, retried, and the start recovers to active with a current statusReason', async () => {
    backend.faults = { ensureFailures: 2 };
    const id = await createAndStart();
    const s = await reconcileUntil(id, settled);
    expect(s.status).toBe('active');
    expect(s.statusReason).toMatch(/^Label Studio is up at /);
    const errors = (await containerEvents(id)).filter((e) => e.eventType === 'reconcile_error');
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]!.message).toMatch(/creating fleet-ls-.*-\d+ failed \(injected fault\)/);
    expect(backend.faults.ensureFailures).toBe(0);
  });
});
