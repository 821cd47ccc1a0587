/**
 * Drift repair with the real Docker Engine, Traefik (file provider on TRAEFIK_DYNAMIC_DIR) and
 * PostgreSQL (issue 10): what an operator or a fault does behind the fleet's back is repaired by
 * the next passes — a deleted or edited route file, a killed or paused container — and a container
 * that cannot start ends in `error` after `fleet.maxRestarts` instead of being retried forever.
 *
 * The instances run a stand-in image (test/helpers/stub-image.ts: the fleet image serving
 * /health/ as Label Studio does) so each case takes seconds, not a Label Studio boot; the test
 * reports the API token as the entrypoint would. Passes are driven by the test (runOnce), each
 * case bounded generously. Needs Docker: run under `flock /tmp/lf-docker.lock`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { httpGet } from '../../orchestrator/http-probe.ts';
import { fleetNames, webhookSecret } from '../../orchestrator/instance-spec.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePortBase, sleep } from '../helpers/process.ts';
import { startTestService, type TestService } from '../helpers/service.ts';
import { stubImage } from '../helpers/stub-image.ts';

const NS = `dr${randomBytes(3).toString('hex')}`;
const DOMAIN = `${NS}.fleet.localhost`;
const TRAEFIK_URL = testEnv('TRAEFIK_URL');
const ROUTES = testEnv('TRAEFIK_DYNAMIC_DIR');
const docker = new Docker({ socketPath: testEnv('DOCKER_SOCKET', '/var/run/docker.sock') });
const names = fleetNames({ FLEET_NAMESPACE: NS });
let t: TestService;

const row = (id: number) => t.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const status = async (id: number) => (await t.json('GET', `/api/annotators/${id}/status`)).body;
const viaTraefik = (sub: string) => httpGet(`${TRAEFIK_URL}/health/`, { host: `${sub}.${DOMAIN}`, timeoutMs: 3000 }).catch(() => ({ status: 0, body: '' }));

/** Runs passes (and reports the token once asked for, as the entrypoint does) until `done`; returns the time it took. */
async function converge(what: string, id: number, done: () => Promise<boolean>, timeoutMs = 90_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    await t.service.reconciler.runOnce({ wait: true });
    const a = await row(id);
    if (a.status === 'starting' && a.startPhase === 'token' && !a.tokenReportedAt) {
      const res = await t.json('POST', `/api/annotators/${id}/token`, { token: `tok-${id}` }, { 'x-webhook-secret': webhookSecret(t.ctx.secrets, id, a.startGeneration) });
      expect(res.status).toBe(200);
    }
    if (await done()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not converged within ${timeoutMs} ms (status ${JSON.stringify(await status(id))})`);
    await sleep(300);
  }
}

const upAgain = (id: number, sub: string) => async () => {
  const s = await status(id);
  return s.status === 'active' && s.url !== null && /^Label Studio is up/.test(s.statusReason) && (await viaTraefik(sub)).status === 200;
};

let alice = 0;
let aliceSub = '';

beforeAll(async () => {
  const base = await freePortBase(27_600, 10);
  const image = await stubImage('http');
  t = await startTestService({
    env: {
      FLEET_NAMESPACE: NS,
      FLEET_DOMAIN: DOMAIN,
      FLEET_IMAGE: image,
      LS_DATABASE_URL: TEST_DATABASE_URL(),
      DOCKER_SOCKET: testEnv('DOCKER_SOCKET', '/var/run/docker.sock'),
      DOCKER_NETWORK_MODE: 'host',
      LS_PORT_BASE: String(base),
      TRAEFIK_PROVIDER: 'file',
      TRAEFIK_DYNAMIC_DIR: ROUTES,
      TRAEFIK_URL,
    },
  });
  for (const [key, value] of [
    ['fleet.restartBackoffSeconds', 1],
    ['fleet.maxRestarts', 3],
    ['fleet.memoryMb', 128],
  ] as const) {
    expect((await t.json('PUT', `/api/settings/${key}`, { value })).status).toBe(200);
  }
  const created = await t.json('POST', '/api/annotators', { name: 'Drift Alice', email: `alice-${NS}@drift.test` });
  alice = created.body.id;
  aliceSub = created.body.subdomain;
  expect((await t.json('POST', `/api/annotators/${alice}/start`)).status).toBe(200);
  await converge('first start', alice, upAgain(alice, aliceSub));
}, 240_000);

afterAll(async () => {
  await t?.close();
  const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (await docker.listVolumes()).Volumes ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  for (const f of existsSync(ROUTES) ? readdirSync(ROUTES) : []) if (f.startsWith(`fleet-ls-${NS}-`)) rmSync(path.join(ROUTES, f), { force: true });
  const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
  for (const id of [1, 2, 3]) await dbs.drop(id).catch(() => {});
  await dbs.close();
});

describe('drift is repaired by the next passes', () => {
  it('a deleted route file: written again, the route answers again, status active with its url', async () => {
    const file = path.join(ROUTES, `${names.instance(alice)}.yml`);
    const original = readFileSync(file, 'utf8');
    unlinkSync(file);
    // Written again — not just answering: Traefik serves a deleted file's route until its watch
    // (and providersThrottleDuration) catches up, so the first pass can find it "up" before the
    // drift sweep (every 30 s) has looked.
    const ms = await converge('route repaired', alice, async () => existsSync(file) && (await upAgain(alice, aliceSub)()));
    expect(readFileSync(file, 'utf8')).toBe(original);
    const evs = await t.db.selectFrom('containerEvents').select(['eventType', 'message']).where('annotatorId', '=', alice).orderBy('id').execute();
    expect(evs.map((e) => e.eventType)).toEqual(expect.arrayContaining(['route_repaired', 'route_answering']));
    expect(ms).toBeLessThan(90_000);
  }, 180_000);

  it('an edited route file (pointing elsewhere): rewritten as desired', async () => {
    const file = path.join(ROUTES, `${names.instance(alice)}.yml`);
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace(/"url": "http:\/\/127\.0\.0\.1:\d+"/, '"url": "http://127.0.0.1:9"'));
    expect(readFileSync(file, 'utf8')).not.toBe(original);
    await converge('route rewritten', alice, async () => readFileSync(file, 'utf8') === original && (await upAgain(alice, aliceSub)()));
  }, 180_000);

  it('a killed container: back to running, the restart counted', async () => {
    const name = names.instance(alice);
    await docker.getContainer(name).kill();
    await converge('back after kill', alice, async () => (await docker.getContainer(name).inspect()).State.Running && (await upAgain(alice, aliceSub)()));
    expect((await row(alice)).restartCount).toBeGreaterThanOrEqual(1);
  }, 180_000);

  it('a paused container: unpaused, back to running', async () => {
    const name = names.instance(alice);
    await docker.getContainer(name).pause();
    // Paused: the fleet notices (restart counted), unpauses, and the route answers again.
    const before = (await row(alice)).restartCount;
    await converge('back after pause', alice, async () => {
      const st = (await docker.getContainer(name).inspect()).State;
      return st.Running && !st.Paused && (await row(alice)).restartCount > before && (await upAgain(alice, aliceSub)());
    });
  }, 180_000);

  it('a stale error statusReason while healthy is replaced', async () => {
    await t.db.updateTable('annotators').set({ statusReason: 'error: an old failure' }).where('id', '=', alice).execute();
    await converge('reason replaced', alice, async () => /^Label Studio is up/.test((await status(alice)).statusReason));
  }, 60_000);

  it('a container that cannot start: error after fleet.maxRestarts with the reason, not retried forever', async () => {
    expect((await t.json('POST', `/api/annotators/${alice}/stop`)).status).toBe(200);
    await converge('alice stopped', alice, async () => (await row(alice)).status === 'stopped');
    expect((await t.json('PUT', '/api/settings/fleet.image', { value: await stubImage('crash') })).status).toBe(200);
    const bob = (await t.json('POST', '/api/annotators', { name: 'Drift Bob', email: `bob-${NS}@drift.test` })).body.id as number;
    expect((await t.json('POST', `/api/annotators/${bob}/start`)).status).toBe(200);
    await converge('bob in error', bob, async () => (await row(bob)).status === 'error', 120_000);
    const b = await row(bob);
    expect(b.statusReason).toMatch(/gave up after \d+ restart\(s\)|keeps crashing/);
    expect(b.restartCount).toBeLessThanOrEqual(3);
    expect(await status(bob)).toMatchObject({ status: 'error', url: null });
    // Its container is removed, and nothing is retried afterwards.
    const after = await t.db.selectFrom('containerEvents').select((eb) => eb.fn.countAll().as('n')).where('annotatorId', '=', bob).executeTakeFirstOrThrow();
    for (let i = 0; i < 3; i++) await t.service.reconciler.runOnce({ wait: true });
    const later = await t.db.selectFrom('containerEvents').select((eb) => eb.fn.countAll().as('n')).where('annotatorId', '=', bob).executeTakeFirstOrThrow();
    expect(Number(later.n)).toBe(Number(after.n));
    expect((await docker.listContainers({ all: true, filters: JSON.stringify({ name: [names.instance(bob)] }) })).filter((c) => c.Names.includes(`/${names.instance(bob)}`))).toEqual([]);
  }, 240_000);
});
