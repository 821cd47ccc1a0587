/**
 * Ownership (issue 10): two installations — two fleet databases, as after a fleet database was
 * recreated, or two fleets on one Docker host — with the same FLEET_NAMESPACE, on the same
 * PostgreSQL server, Docker Engine and route directory. Neither adopts, rewrites, stops or sweeps
 * what the other made. Needs Docker: run under `flock /tmp/lf-docker.lock`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { DRIFT_SWEEP_MS } from '../../orchestrator/annotators-step.ts';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { fleetNames } from '../../orchestrator/instance-spec.ts';
import { ForeignResourceError, readInstallation, type Owner } from '../../orchestrator/ownership.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePortBase, waitUntil } from '../helpers/process.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { stubImage } from '../helpers/stub-image.ts';

const NS = `own${randomBytes(3).toString('hex')}`;
const names = fleetNames({ FLEET_NAMESPACE: NS });
const docker = new Docker({ socketPath: testEnv('DOCKER_SOCKET', '/var/run/docker.sock') });
const routeDir = mkdtempSync(path.join(tmpdir(), 'lf-own-routes-'));
let a: TestService;
let b: TestService;
let ownerA: Owner;
let ownerB: Owner;
let base = 0;
let image = '';

async function start(): Promise<TestService> {
  return startTestService({
    env: {
      FLEET_NAMESPACE: NS,
      LS_DATABASE_URL: TEST_DATABASE_URL(),
      DOCKER_SOCKET: testEnv('DOCKER_SOCKET', '/var/run/docker.sock'),
      DOCKER_NETWORK_MODE: 'host',
      LS_PORT_BASE: String(base),
      TRAEFIK_PROVIDER: 'file',
      TRAEFIK_DYNAMIC_DIR: routeDir,
    },
  });
}

async function inspectOrNull(name: string) {
  try {
    return await docker.getContainer(name).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

const spec = (annotatorId: number): InstanceSpec => ({
  annotatorId,
  subdomain: `own-${annotatorId}`,
  image,
  env: { LS_PORT: String(base + annotatorId) },
  port: base + annotatorId,
  memoryMb: 64,
  cpus: 0.1,
  specHash: `own-${annotatorId}`,
});

async function pgQuery<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL() });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  base = await freePortBase(27_300, 12);
  image = await stubImage('http');
  a = await start();
  b = await start();
  ownerA = await readInstallation(a.db);
  ownerB = await readInstallation(b.db);
}, 180_000);

afterAll(async () => {
  for (const t of [a, b]) {
    if (!t) continue;
    for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) await t.ctx.instanceDatabases.drop(id).catch(() => {});
    await t.ctx.instanceDatabases.close();
    await t.close();
  }
  const cleaner = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
  for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) await cleaner.drop(id).catch(() => {});
  await cleaner.close();
  const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (await docker.listVolumes()).Volumes ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  rmSync(routeDir, { recursive: true, force: true });
});

describe('the installation id', () => {
  it('is random per fleet database, 32 hex digits, and a new database does not adopt unmarked resources', () => {
    expect(ownerA.installationId).toMatch(/^[0-9a-f]{32}$/);
    expect(ownerB.installationId).toMatch(/^[0-9a-f]{32}$/);
    expect(ownerA.installationId).not.toBe(ownerB.installationId);
    expect(ownerA.adoptsUnmarked).toBe(false);
  });
});

describe('a recreated fleet database meets the annotator databases of the old one', () => {
  const start1 = async (t: TestService, id: number) => {
    expect((await t.json('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    for (let i = 0; i < 5 && (await t.db.selectFrom('annotators').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status === 'starting'; i++) {
      await t.service.reconciler.runOnce({ wait: true });
    }
    return t.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  };

  it("new annotator 1's start ends in error naming the old database; the old role and database are untouched", async () => {
    // The old fleet (A) made annotator 1's Label Studio database and role.
    const old = await a.json('POST', '/api/annotators', { name: 'Old One', email: 'old1@example.com' });
    expect(old.body.id).toBe(1);
    await a.ctx.instanceDatabases.ensure(1, 'the-old-password');
    const dbName = names.database(1);
    const before = await pgQuery<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [dbName]);
    const comments = () =>
      pgQuery<{ role: string; database: string }>(
        `SELECT shobj_description((SELECT oid FROM pg_roles WHERE rolname = $1), 'pg_authid') AS role,
                shobj_description((SELECT oid FROM pg_database WHERE datname = $1), 'pg_database') AS database`,
        [dbName],
      );
    expect((await comments())[0]).toEqual({
      role: `labelfleet installation=${ownerA.installationId} annotator=1`,
      database: `labelfleet installation=${ownerA.installationId} annotator=1`,
    });

    // The new fleet database (B) numbers its annotators from 1 again.
    const created = await b.json('POST', '/api/annotators', { name: 'New One', email: 'new1@example.com' });
    expect(created.body.id).toBe(1);
    const row = await start1(b, 1);
    expect(row.status).toBe('error');
    expect(row.statusReason).toContain(`PostgreSQL role ${dbName} already exists and belongs to another LabelFleet installation (${ownerA.installationId})`);
    expect(row.statusReason).toContain('does not take it over');
    expect(row.statusReason).toMatch(/drop it or restore that fleet database; otherwise give this fleet its own FLEET_NAMESPACE/);
    const status = await b.json('GET', '/api/annotators/1/status');
    expect(status.body).toMatchObject({ status: 'error', url: null, statusReason: row.statusReason });

    // Nothing taken over: same password verifier, same marks, no container made.
    expect(await pgQuery('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [dbName])).toEqual(before);
    expect((await comments())[0]!.database).toBe(`labelfleet installation=${ownerA.installationId} annotator=1`);
    expect(await inspectOrNull(names.instance(1))).toBeNull();
    // Deleting B's annotator (dropping its database) leaves A's database alone.
    await b.ctx.instanceDatabases.drop(1);
    expect(await a.ctx.instanceDatabases.exists(1)).toEqual({ role: true, database: true });
  }, 120_000);

  it('an unmarked database (no installation made it) is foreign to a new installation, and adopted and marked by one that adopts', async () => {
    const dbName = names.database(2);
    await pgQuery(`CREATE ROLE ${dbName} LOGIN`);
    await pgQuery(`CREATE DATABASE ${dbName} OWNER ${dbName}`);
    await b.json('POST', '/api/annotators', { name: 'New Two', email: 'new2@example.com' });
    const row = await start1(b, 2);
    expect(row.status).toBe('error');
    expect(row.statusReason).toContain(`PostgreSQL role ${dbName} already exists and belongs to no LabelFleet installation (it carries no installation mark)`);

    const adopting = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
    adopting.setOwner({ installationId: ownerB.installationId, adoptsUnmarked: true });
    try {
      expect(await adopting.ensure(2, 'adopted')).toEqual({ createdRole: false, createdDatabase: false });
      const marks = await adopting.marks(dbName);
      expect(marks.role?.installation).toBe(ownerB.installationId);
      expect(marks.database?.installation).toBe(ownerB.installationId);
    } finally {
      await adopting.close();
    }
  }, 120_000);
});

describe('two installations with one namespace on one Docker host', () => {
  /** Passes of `t` until its orphan sweep (on its drift sweep, every DRIFT_SWEEP_MS) removed annotator `id`'s container. */
  const sweepOrphan = (t: TestService, id: number) =>
    waitUntil(
      `orphan ${id} swept`,
      async () => {
        await t.service.reconciler.runOnce({ wait: true });
        return (await inspectOrNull(names.instance(id))) === null;
      },
      DRIFT_SWEEP_MS + 60_000,
      1000,
    );

  it("each orphan sweep removes its own orphans and leaves the other's containers and route files alone; neither takes the other's container", async () => {
    // Containers for annotators that neither database has: orphans, each of its own installation.
    await a.ctx.backend.ensure(spec(5));
    await b.ctx.backend.ensure(spec(6));
    const b6 = (await inspectOrNull(names.instance(6)))!;
    expect(b6.Config.Labels['labelfleet.installation']).toBe(ownerB.installationId);
    expect(readFileSync(path.join(routeDir, `${names.instance(6)}.yml`), 'utf8').split('\n')[0]).toBe(
      `# labelfleet installation=${ownerB.installationId} annotator=6`,
    );

    await sweepOrphan(a, 5);
    expect(await inspectOrNull(names.instance(5))).toBeNull(); // A's own orphan: swept
    expect(existsSync(path.join(routeDir, `${names.instance(5)}.yml`))).toBe(false);
    expect((await inspectOrNull(names.instance(6)))?.Id).toBe(b6.Id); // B's: left alone
    expect(existsSync(path.join(routeDir, `${names.instance(6)}.yml`))).toBe(true);

    await a.ctx.backend.ensure(spec(7));
    const a7 = (await inspectOrNull(names.instance(7)))!;
    await sweepOrphan(b, 6);
    expect(await inspectOrNull(names.instance(6))).toBeNull(); // B's own orphan: swept
    expect((await inspectOrNull(names.instance(7)))?.Id).toBe(a7.Id); // A's: left alone
    expect(existsSync(path.join(routeDir, `${names.instance(7)}.yml`))).toBe(true);

    // Neither takes over, stops or removes the other's container of the same name.
    await expect(b.ctx.backend.ensure(spec(7))).rejects.toThrow(ForeignResourceError);
    await expect(b.ctx.backend.ensure(spec(7))).rejects.toThrow(/container fleet-ls-.*-7 already exists and belongs to another LabelFleet installation .*FLEET_NAMESPACE/);
    await b.ctx.backend.stop(7);
    await b.ctx.backend.remove(7, { purgeData: true });
    const still = (await inspectOrNull(names.instance(7)))!;
    expect(still.Id).toBe(a7.Id);
    expect(still.State.Running).toBe(true);
    expect((await docker.getVolume(names.volume(7)).inspect()).Labels['labelfleet.installation']).toBe(ownerA.installationId);
    expect((await b.ctx.backend.observe(7)).state).toBe('missing');
    expect((await b.ctx.backend.list()).map((o) => o.annotatorId)).not.toContain(7);
    await a.ctx.backend.remove(7, { purgeData: true });
    expect(await inspectOrNull(names.instance(7))).toBeNull();
  }, 180_000);
});
