/**
 * Fast database faults (seconds; also part of `npm test` through the integration project): the
 * database taken away and brought back through a TCP proxy (test/helpers/tcp-proxy.ts), and
 * the reconcile lock's connection ended by pg_terminate_backend. The service runs in this
 * process: an unhandled 'error' would fail the file.
 */
import './meta.ts';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_APPLICATION_NAME, LOCKS, LockLostError, openDatabase, type DbHandle } from '../../src/db/index.ts';
import { isDatabaseUnavailable } from '../../src/db/connect-errors.ts';
import { metrics } from '../../src/metrics.ts';
import { Reconciler, type ReconcileStep } from '../../orchestrator/reconciler.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { waitUntil } from '../helpers/process.ts';

let t: TestService;
let proxy: TcpProxy;
let viaProxy: DbHandle;

/** The test database's name, through the proxy as directly. */
const dbName = () => t.database.name;

async function terminate(where: string): Promise<number> {
  const admin = new pg.Client({ connectionString: t.database.url });
  await admin.connect();
  try {
    const { rows } = await admin.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND ${where}`,
      [dbName()],
    );
    return rows.length;
  } finally {
    await admin.end();
  }
}

const failures = async (reason: string) => (await metrics.reconcilePassFailures.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

beforeAll(async () => {
  t = await startTestService();
  proxy = await startTcpProxy(Number(new URL(t.database.url).port || 5432));
  viaProxy = await openDatabase({ url: proxy.via(t.database.url), dataDir: '/nonexistent', poolSize: 4 });
});
afterAll(async () => {
  await viaProxy?.close().catch(() => {});
  await proxy?.close();
  await t?.close();
});

describe('database away (connections cut, new ones refused), then back', () => {
  let away: TestService;
  beforeAll(async () => {
    // A second service on the same database, its pool through the proxy.
    away = await startTestService({ overrides: { database: viaProxy } });
  });
  afterAll(async () => {
    await proxy.up();
    await away?.service.reconciler.stop();
    await away?.database.drop();
  });

  it('health answers 503 while away and 200 when back, without a restart', async ({ task }) => {
    expect((await away.anonymous.json('GET', '/api/health')).status).toBe(200);
    await proxy.down();
    const down = await away.anonymous.json('GET', '/api/health');
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: 'error', database: 'unreachable' });
    await proxy.up();
    const started = Date.now();
    await waitUntil('health 200', async () => (await away.anonymous.json('GET', '/api/health')).status === 200, 20_000, 100);
    task.meta.counts = { recoveredMs: Date.now() - started };
  });

  it('API requests answer 503 {error, details} while away — never 500 — and 200 when back', async ({ task }) => {
    await proxy.down();
    const statuses: number[] = [];
    for (const [method, path, body] of [
      ['GET', '/api/annotators'],
      ['GET', '/api/workflows'],
      ['POST', '/api/roles', { name: 'while-away' }],
      ['GET', '/api/assignments'],
    ] as const) {
      const res = await away.json(method, path, body);
      statuses.push(res.status);
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(res.body.error).toMatch(/database/i);
      expect(res.body.details).toMatchObject({ retryAfterSeconds: 5 });
      expect(res.headers.get('retry-after')).toBe('5');
    }
    await proxy.up();
    await waitUntil('GET /api/annotators 200', async () => (await away.json('GET', '/api/annotators')).status === 200, 20_000, 100);
    // Nothing half-written: the role posted while away does not exist.
    const roles = await t.json('GET', '/api/roles');
    expect(roles.body.map((r: { name: string }) => r.name)).not.toContain('while-away');
    task.meta.counts = { served503: statuses.filter((s) => s === 503).length };
  });

  it('a reconcile pass while away fails, is counted, and a pass after succeeds', async () => {
    const before = await failures('database_unavailable');
    await proxy.down();
    await expect(away.service.reconciler.runOnce()).rejects.toThrow();
    expect(await failures('database_unavailable')).toBe(before + 1);
    await proxy.up();
    await waitUntil('a pass', async () => (await away.service.reconciler.runOnce().catch(() => null)) !== null, 20_000, 200);
  });
});

describe('reconcile lock connection ended mid-pass (pg_terminate_backend)', () => {
  it('fails the pass in flight (counted), the lock is free at once, the next pass takes it', async ({ task }) => {
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inStep = new Promise<void>((r) => (entered = r));
    const ran: string[] = [];
    const steps: ReconcileStep[] = [
      { name: 'first', run: async () => (ran.push('first'), entered(), await holding, { actions: [], errors: [] }) },
      { name: 'second', run: async () => (ran.push('second'), { actions: [], errors: [] }) },
    ];
    const reconciler = new Reconciler(t.ctx, steps, 60_000);
    const before = await failures('lock_lost');
    const pass = reconciler.runOnce();
    pass.catch(() => {});
    await inStep;
    // The backend holding the pass lock (a bigint key: objid holds its low 32 bits, objsubid 1).
    const holder = `pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND objid = ${LOCKS.reconcile})`;
    expect(await terminate(`application_name = '${LOCK_APPLICATION_NAME}' AND ${holder}`)).toBe(1);
    // The server released the lock with the session: another holder gets it while the pass still runs.
    const other = await openDatabase({ url: t.database.url, dataDir: '/nonexistent', poolSize: 1 });
    try {
      await waitUntil('the lock free', async () => (await other.withAdvisoryLock(LOCKS.reconcile, async () => 'taken', { wait: false })) === 'taken', 10_000, 100);
    } finally {
      await other.close();
    }
    release();
    await expect(pass).rejects.toBeInstanceOf(LockLostError);
    expect(ran).toEqual(['first']); // the rest of the pass was abandoned
    expect(await failures('lock_lost')).toBe(before + 1);
    ran.length = 0;
    const next = await reconciler.runOnce();
    expect(next).not.toBe('busy');
    expect(ran).toEqual(['first', 'second']);
    task.meta.counts = { passesFailed: 1, nextPassOk: 1 };
  });

  it('a pooled connection ended inside a transaction fails that transaction only; the pool goes on', async () => {
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`SELECT 1`.execute(trx);
        await terminate(`backend_type = 'client backend' AND application_name <> '${LOCK_APPLICATION_NAME}' AND state LIKE 'idle in transaction%'`);
        await sql`SELECT 1`.execute(trx);
      }),
    ).rejects.toSatisfy(isDatabaseUnavailable);
    expect((await t.anonymous.json('GET', '/api/health')).status).toBe(200);
  });
});

describe('DATABASE_POOL_SIZE=1 (the lock has its own connection)', () => {
  it('passes and requests run side by side', async () => {
    const one = await openDatabase({ url: t.database.url, dataDir: '/nonexistent', poolSize: 1 });
    const s = await startTestService({ env: { DATABASE_POOL_SIZE: '1' }, overrides: { database: one } });
    try {
      const results = await Promise.all([
        s.service.reconciler.runOnce({ wait: true }),
        s.json('GET', '/api/annotators'),
        s.json('POST', '/api/reconcile'),
        s.json('GET', '/api/health'),
      ]);
      expect(results[0]).not.toBe('busy');
      expect(results.slice(1).map((r) => (r as { status: number }).status)).toEqual([200, 200, 200]);
    } finally {
      await s.service.reconciler.stop();
      await s.database.drop();
    }
  });
});
