/**
 * Fault suite (issue 10): `kill -9` of `fleet serve` at named points of the annotator flow. Each
 * case arms one fault point (src/fault-point.ts: FLEET_FAULT_POINT, the process SIGKILLs itself
 * there), waits for the service to die of it, starts a clean service on the same fleet database
 * and checks that the end state is the one a run without the kill reaches: the annotator active
 * with its url answering through Traefik, exactly one container, one route file, one database,
 * each phase recorded once and nothing done twice.
 *
 * The instances run the stand-in image (test/helpers/stub-image.ts) so a case is seconds, not a
 * Label Studio boot; the test reports the API token as the entrypoint would. Real Docker, Traefik
 * (file provider) and PostgreSQL: run under `flock /tmp/lf-docker.lock`.
 *
 * Reporter (npm run chaos): describe = fault, test = check; task.meta.counts carries the figures.
 */
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { httpGet } from '../../orchestrator/http-probe.ts';
import { fleetNames, webhookSecret } from '../../orchestrator/instance-spec.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePort, freePortBase, sleep, startFleet } from '../helpers/process.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';
import { stubImage } from '../helpers/stub-image.ts';

const NS = `ck${randomBytes(3).toString('hex')}`;
const DOMAIN = `${NS}.fleet.localhost`;
const TRAEFIK_URL = testEnv('TRAEFIK_URL');
const ROUTES = testEnv('TRAEFIK_DYNAMIC_DIR');
const DOCKER_SOCKET = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
const docker = new Docker({ socketPath: DOCKER_SOCKET });
const names = fleetNames({ FLEET_NAMESPACE: NS });
let t: TestService;
let env: Record<string, string> = {};
let serviceChild: ChildProcess | undefined;

const row = (id: number) => t.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const events = (id: number) => t.db.selectFrom('containerEvents').selectAll().where('annotatorId', '=', id).orderBy('id').execute();
const viaTraefik = (sub: string) => httpGet(`${TRAEFIK_URL}/health/`, { host: `${sub}.${DOMAIN}`, timeoutMs: 3000 }).catch(() => ({ status: 0, body: '' }));

/** Starts `fleet serve` on the shared fleet database, armed with `faultPoint` when given. */
async function serve(faultPoint?: string) {
  // Always the same port, as a restarted service has: the instances' callback URL is part of their spec.
  const f = startFleet(['serve'], { ...env, ...(faultPoint ? { FLEET_FAULT_POINT: faultPoint } : {}) });
  serviceChild = f.child;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => f.child.on('exit', (code, signal) => resolve({ code, signal })));
  return { ...f, exited };
}

/** Reports the token whenever a start waits for it (as the entrypoint does), until `done` or the bound. */
async function until(what: string, done: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const waiting = await t.db.selectFrom('annotators').select(['id', 'startGeneration']).where('status', '=', 'starting').where('startPhase', '=', 'token').where('tokenReportedAt', 'is', null).execute();
    for (const a of waiting) {
      await t.json('POST', `/api/annotators/${a.id}/token`, { token: `tok-${a.id}` }, { 'x-webhook-secret': webhookSecret(t.ctx.secrets, a.id, a.startGeneration) });
    }
    if (await done()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** The fault fires: the armed service dies of SIGKILL (nothing else here kills it). */
async function killedAt(point: string, trigger: () => Promise<void>): Promise<number> {
  const armed = await serve(point);
  const started = Date.now();
  await trigger();
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void armed.exited.then((r) => (result = r));
  await until(`the service killed at ${point}`, async () => result !== undefined, 120_000).catch((err) => {
    armed.child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; output: ${armed.output.text.slice(-2000)}`);
  });
  expect(result).toEqual({ code: null, signal: 'SIGKILL' });
  return Date.now() - started;
}

/** A clean service until `done`; stopped (SIGTERM) afterwards. Returns the time to converge. */
async function recover(what: string, done: () => Promise<boolean>): Promise<number> {
  const clean = await serve();
  try {
    return await until(what, done);
  } finally {
    clean.child.kill('SIGTERM');
    await clean.exited;
  }
}

const up = (id: number, sub: string) => async () => {
  const s = (await t.json('GET', `/api/annotators/${id}/status`)).body;
  return s.status === 'active' && s.url !== null && /^Label Studio is up/.test(s.statusReason ?? '') && (await viaTraefik(sub)).status === 200;
};

async function containersNamed(name: string) {
  return (await docker.listContainers({ all: true, filters: JSON.stringify({ name: [name] }) })).filter((c) => c.Names.includes(`/${name}`));
}

/** What a run without the kill leaves: one running container, one route file, one database, one activation per start. */
async function expectOneOfEach(id: number) {
  const a = await row(id);
  const containers = await containersNamed(names.instance(id));
  expect(containers.map((c) => c.State)).toEqual(['running']);
  expect(readdirSync(ROUTES).filter((f) => f === `${names.instance(id)}.yml`)).toHaveLength(1);
  expect(await t.ctx.instanceDatabases.exists(id)).toEqual({ role: true, database: true });
  const evs = (await events(id)).filter((e) => (e.details as { generation?: number } | null)?.generation === a.startGeneration || e.eventType === 'status_change');
  const activations = evs.filter((e) => e.eventType === 'status_change' && e.toStatus === 'active');
  expect(activations).toHaveLength(a.startGeneration);
  return { containers: containers.length, activations: activations.length };
}

async function newAnnotator(label: string) {
  const res = await t.json('POST', '/api/annotators', { name: `Chaos ${label}`, email: `${label}-${NS}@chaos.test` });
  expect(res.status).toBe(201);
  return { id: res.body.id as number, sub: res.body.subdomain as string };
}

beforeAll(async () => {
  const base = await freePortBase(27_800, 20);
  const image = await stubImage('http');
  const shared = {
    FLEET_NAMESPACE: NS,
    FLEET_DOMAIN: DOMAIN,
    FLEET_IMAGE: image,
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    DOCKER_SOCKET,
    DOCKER_NETWORK_MODE: 'host',
    LS_PORT_BASE: String(base),
    TRAEFIK_PROVIDER: 'file',
    TRAEFIK_DYNAMIC_DIR: ROUTES,
    TRAEFIK_URL,
  };
  t = await startTestService({ env: shared });
  env = {
    ...shared,
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: t.database.url,
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    ADMIN_EMAIL: 'admin@fleet.local',
    ADMIN_PASSWORD: 'admin',
    RECONCILE_INTERVAL_MS: '300',
    PORT: String(await freePort()),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  for (const [key, value] of [
    ['fleet.restartBackoffSeconds', 1],
    ['fleet.memoryMb', 128],
  ] as const) {
    expect((await t.json('PUT', `/api/settings/${key}`, { value })).status).toBe(200);
  }
}, 240_000);

afterAll(async () => {
  serviceChild?.kill('SIGKILL');
  await t?.close();
  const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (await docker.listVolumes()).Volumes ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  for (const f of existsSync(ROUTES) ? readdirSync(ROUTES) : []) if (f.startsWith(`fleet-ls-${NS}-`)) rmSync(path.join(ROUTES, f), { force: true });
  const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
  for (let id = 1; id <= 10; id++) await dbs.drop(id).catch(() => {});
  await dbs.close();
});

/** The figures the chaos reporter prints (task.meta.counts). */
function setCounts(task: { meta: object }, counts: Record<string, number>) {
  (task.meta as { counts?: Record<string, number> }).counts = counts;
}

const START_POINTS = ['start:database-ready', 'start:container-created', 'start:before-token', 'start:before-route', 'start:before-active'];
/** The annotator every later case works on (active after the first case). */
let main: { id: number; sub: string } | undefined;

for (const point of START_POINTS) {
  describe(`kill -9 of fleet serve at ${point}`, () => {
    it('after a restart: active with its url through Traefik, one container, route and database, each phase once', async ({ task }) => {
      const a = await newAnnotator(point.replace(/[^a-z]/g, ''));
      const killMs = await killedAt(point, async () => {
        expect((await t.json('POST', `/api/annotators/${a.id}/start`)).status).toBe(200);
      });
      const convergeMs = await recover('active after the kill', up(a.id, a.sub));
      const counts = await expectOneOfEach(a.id);
      const phases = (await events(a.id)).filter((e) => e.eventType === 'start_progress').map((e) => (e.details as { phase: string }).phase);
      expect(phases).toEqual(['container', 'healthy', 'token', 'route']);
      expect((await row(a.id)).restartCount).toBe(0);
      setCounts(task, { ...counts, phases: phases.length, killMs, convergeMs });
      main ??= a;
    }, 300_000);
  });
}

describe('kill -9 of fleet serve at restart:counted (container killed behind its back)', () => {
  it('after a restart: the container is back and running, the interrupted restart counted at most once more', async ({ task }) => {
    const a = main!;
    await docker.getContainer(names.instance(a.id)).kill();
    await killedAt('restart:counted', async () => {});
    const convergeMs = await recover('running again', up(a.id, a.sub));
    const counts = await expectOneOfEach(a.id);
    // The kill came after the restart was counted and before it was done: that attempt counts.
    const r = await row(a.id);
    expect(r.restartCount).toBeGreaterThanOrEqual(1);
    expect(r.restartCount).toBeLessThanOrEqual(2);
    setCounts(task, { ...counts, restarts: r.restartCount, convergeMs });
  }, 300_000);
});

describe('kill -9 of fleet serve at restart:container-back', () => {
  it('after a restart: running with the instance recorded, no second restart', async ({ task }) => {
    const a = main!;
    await t.db.updateTable('annotators').set({ restartCount: 0, nextRestartAt: null }).where('id', '=', a.id).execute();
    await docker.getContainer(names.instance(a.id)).kill();
    await killedAt('restart:container-back', async () => {});
    const convergeMs = await recover('running again', up(a.id, a.sub));
    const counts = await expectOneOfEach(a.id);
    expect((await row(a.id)).restartCount).toBe(1);
    setCounts(task, { ...counts, restarts: 1, convergeMs });
  }, 300_000);
});

describe('kill -9 of fleet serve at recreate:marked (password issued to a running annotator)', () => {
  it('after a restart: recreated once with the new login, url answering, not shown up before', async ({ task }) => {
    const a = main!;
    const before = (await containersNamed(names.instance(a.id)))[0]!.Id;
    await killedAt('recreate:marked', async () => {
      expect((await t.json('POST', `/api/annotators/${a.id}/password`)).status).toBe(200);
    });
    // Killed after marking: the status says it is being recreated, no url.
    const mid = (await t.json('GET', `/api/annotators/${a.id}/status`)).body;
    expect(mid).toMatchObject({ status: 'active', url: null, statusReason: expect.stringMatching(/^recreating: the annotator's password changed/) });
    const convergeMs = await recover('recreated and up', up(a.id, a.sub));
    const counts = await expectOneOfEach(a.id);
    const r = await row(a.id);
    expect(r.containerPasswordVersion).toBe(r.lsPasswordVersion);
    expect((await containersNamed(names.instance(a.id)))[0]!.Id).not.toBe(before);
    expect((await events(a.id)).filter((e) => e.eventType === 'container_recreated' && e.createdAt.getTime() > Date.now() - 300_000)).toHaveLength(1);
    setCounts(task, { ...counts, recreated: 1, convergeMs });
  }, 300_000);
});

describe('kill -9 of fleet serve at route:before-rewrite (route file deleted)', () => {
  it('after a restart: the route file is back and answers', async ({ task }) => {
    const a = main!;
    const file = path.join(ROUTES, `${names.instance(a.id)}.yml`);
    const original = readFileSync(file, 'utf8');
    unlinkSync(file);
    await killedAt('route:before-rewrite', async () => {});
    const convergeMs = await recover('route back', up(a.id, a.sub));
    expect(readFileSync(file, 'utf8')).toBe(original);
    const counts = await expectOneOfEach(a.id);
    setCounts(task, { ...counts, convergeMs });
  }, 300_000);
});

describe('kill -9 of fleet serve at delete:instance-removed', () => {
  it('after a restart: cleaned up once, no container, no route file', async ({ task }) => {
    const a = main!;
    await killedAt('delete:instance-removed', async () => {
      expect((await t.json('DELETE', `/api/annotators/${a.id}`)).status).toBe(200);
    });
    const convergeMs = await recover('cleaned up', async () => (await row(a.id)).cleanedUpAt !== null);
    expect(await containersNamed(names.instance(a.id))).toEqual([]);
    expect(existsSync(path.join(ROUTES, `${names.instance(a.id)}.yml`))).toBe(false);
    expect((await events(a.id)).filter((e) => e.eventType === 'cleaned_up')).toHaveLength(1);
    setCounts(task, { containers: 0, cleanups: 1, convergeMs });
  }, 300_000);
});
