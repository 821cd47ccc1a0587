/**
 * Fault: every backend of the fleet's database ended (pg_terminate_backend) 30 times at 0.5 s
 * intervals while API requests and reconcile passes run, against a `fleet serve` process. Only
 * this test's own database's backends are ended; the server itself keeps running.
 */
import './meta.ts';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startFleetProcess, type FleetProcess } from '../helpers/fleet-process.ts';
import { sleep, waitUntil } from '../helpers/process.ts';

const ROUNDS = 30;
let database: TestDatabase;
let fleet: FleetProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  fleet = await startFleetProcess({ DATABASE_URL: database.url, RECONCILE_INTERVAL_MS: '200' });
});
afterAll(async () => {
  await fleet?.stop();
  await database?.drop();
});

describe('database backends ended 30× at 0.5 s while requests and passes run', () => {
  const statuses = new Map<number, number>();
  const acknowledgedRoles: string[] = [];
  let rounds = 0;
  let ended = 0;

  it('the process stays up through every round', async ({ task }) => {
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    let stop = false;
    let n = 0;
    const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
    // Three clients: reads, writes (each acknowledged one must exist afterwards), forced passes.
    const load = [
      (async () => {
        while (!stop) count((await fleet.request('GET', '/api/annotators').catch(() => ({ status: 0 }))).status);
      })(),
      (async () => {
        while (!stop) {
          const name = `chaos-role-${++n}`;
          const r = await fleet.request('POST', '/api/roles', { name }).catch(() => ({ status: 0 }));
          count(r.status);
          if (r.status === 201) acknowledgedRoles.push(name);
          await sleep(50);
        }
      })(),
      (async () => {
        while (!stop) {
          count((await fleet.request('POST', '/api/reconcile').catch(() => ({ status: 0 }))).status);
          await sleep(100);
        }
      })(),
    ];
    try {
      for (rounds = 0; rounds < ROUNDS && fleet.alive(); ) {
        const { rows } = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database.name]);
        ended += rows.length;
        await sleep(500);
        if (fleet.alive()) rounds++;
      }
    } finally {
      stop = true;
      await Promise.all(load);
      await admin.end();
    }
    task.meta.counts = { rounds, backendsEnded: ended };
    expect(fleet.alive(), fleet.output.text.slice(-3000)).toBe(true);
    expect(rounds).toBe(ROUNDS);
  });

  it('requests failed only as 503 (never 500, never a dropped connection)', async ({ task }) => {
    const byStatus = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    task.meta.counts = { requests: total, served503: statuses.get(503) ?? 0, other: total - (statuses.get(200) ?? 0) - (statuses.get(201) ?? 0) - (statuses.get(503) ?? 0) };
    expect(total).toBeGreaterThan(ROUNDS);
    expect(Object.keys(byStatus).map(Number).filter((s) => ![200, 201, 503].includes(s)), JSON.stringify(byStatus)).toEqual([]);
  });

  it('health is 200 again and a pass succeeds, without a restart', async ({ task }) => {
    const started = Date.now();
    await waitUntil('health 200', async () => (await fleet.request('GET', '/api/health')).status === 200, 60_000, 100);
    const recoveredMs = Date.now() - started;
    await waitUntil('a forced pass', async () => (await fleet.request('POST', '/api/reconcile')).status === 200, 60_000, 250);
    const passFailures = await fleet.metric('labelfleet_reconcile_pass_failures_total');
    const passes = await fleet.metric('labelfleet_reconcile_pass_seconds_count');
    task.meta.counts = { recoveredMs, passes, passesFailed: passFailures };
    expect(passes).toBeGreaterThan(0);
  });

  it('every acknowledged write is in the database', async ({ task }) => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query('SELECT name FROM roles WHERE name LIKE $1', ['chaos-role-%']).finally(() => client.end());
    const stored = new Set(rows.map((r) => r.name as string));
    const lost = acknowledgedRoles.filter((r) => !stored.has(r));
    task.meta.counts = { acknowledged: acknowledgedRoles.length, lost: lost.length };
    expect(lost).toEqual([]);
    expect(acknowledgedRoles.length).toBeGreaterThan(0);
  });
});
