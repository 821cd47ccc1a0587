/**
 * Fault suite (issue 10): Traefik, then the Docker Engine, stopped and started while annotators are
 * active. The suite runs its own of both — a Traefik (test/helpers/traefik.ts; file provider) and a
 * dockerd (test/helpers/dockerd.ts; own socket and data root) — never the machine's, and one
 * `fleet serve` that stays up throughout. After each fault every annotator must be `active` again
 * with its url answering through Traefik. The figure is the time from the component's start to
 * the last route answering (and, for dockerd, the restarts the fleet counted).
 *
 * Instances run the stand-in image (test/helpers/stub-image.ts, copied into the suite's dockerd),
 * so a start is seconds. Run alone (npm run chaos), under `flock /tmp/lf-docker.lock`.
 */
import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { httpGet } from '../../orchestrator/http-probe.ts';
import { webhookSecret } from '../../orchestrator/instance-spec.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { freePort, freePortBase, sleep, startFleet } from '../helpers/process.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';
import { stubImage } from '../helpers/stub-image.ts';
import { startTraefik, type TestTraefik } from '../helpers/traefik.ts';
import { startDockerd, type TestDockerd } from '../helpers/dockerd.ts';
import './meta.ts';

const NS = `ct${randomBytes(3).toString('hex')}`;
const DOMAIN = `${NS}.fleet.localhost`;
const COUNT = 3;
let dockerd: TestDockerd;
let docker: Docker;
let t: TestService;
let traefik: TestTraefik;
let service: ReturnType<typeof startFleet> | undefined;
let annotators: { id: number; sub: string }[] = [];

const viaTraefik = (sub: string) =>
  httpGet(`${traefik.url}/health/`, { host: `${sub}.${DOMAIN}`, timeoutMs: 3000 }).catch(() => ({ status: 0, body: '' }));

/** Reports the API token whenever a start waits for it (as the entrypoint does), until `done` or the bound. */
async function until(what: string, done: () => Promise<boolean>, timeoutMs = 180_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    const waiting = await t.db.selectFrom('annotators').select(['id', 'startGeneration']).where('status', '=', 'starting').where('startPhase', '=', 'token').where('tokenReportedAt', 'is', null).execute();
    for (const a of waiting) {
      await t.json('POST', `/api/annotators/${a.id}/token`, { token: `tok-${a.id}` }, { 'x-webhook-secret': webhookSecret(t.ctx.secrets, a.id, a.startGeneration) });
    }
    if (await done()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms; service output: ${service?.output.text.slice(-2000)}`);
    await sleep(250);
  }
}

/** Every annotator `active` with its url, and the url answering through Traefik. */
async function allUp(): Promise<boolean> {
  for (const a of annotators) {
    const s = (await t.json('GET', `/api/annotators/${a.id}/status`)).body;
    if (s.status !== 'active' || s.url === null || (await viaTraefik(a.sub)).status !== 200) return false;
  }
  return true;
}

const containerIds = async () =>
  (await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) })).map((c) => `${c.Names[0]}:${c.Id}:${c.State}`).sort();

function setCounts(task: { meta: object }, counts: Record<string, number>) {
  (task.meta as { counts?: Record<string, number> }).counts = counts;
}

beforeAll(async () => {
  traefik = await startTraefik();
  dockerd = await startDockerd();
  docker = dockerd.docker;
  const base = await freePortBase(28_400, 20);
  const image = await stubImage('http');
  await dockerd.loadImage(image);
  const shared = {
    FLEET_NAMESPACE: NS,
    FLEET_DOMAIN: DOMAIN,
    FLEET_IMAGE: image,
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    DOCKER_SOCKET: dockerd.socket,
    DOCKER_NETWORK_MODE: 'host',
    LS_PORT_BASE: String(base),
    TRAEFIK_PROVIDER: 'file',
    TRAEFIK_DYNAMIC_DIR: traefik.dynamicDir,
    TRAEFIK_URL: traefik.url,
  };
  t = await startTestService({ env: shared });
  for (const [key, value] of [
    ['fleet.restartBackoffSeconds', 1],
    ['fleet.memoryMb', 128],
  ] as const) {
    expect((await t.json('PUT', `/api/settings/${key}`, { value })).status).toBe(200);
  }
  service = startFleet(['serve'], {
    ...shared,
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: t.database.url,
    FLEET_SECRET_KEY: TEST_SECRET_KEY,
    ADMIN_EMAIL: 'admin@fleet.local',
    ADMIN_PASSWORD: 'admin',
    RECONCILE_INTERVAL_MS: '500',
    PORT: String(await freePort()),
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  for (let i = 0; i < COUNT; i++) {
    const res = await t.json('POST', '/api/annotators', { name: `Traefik ${i}`, email: `t${i}-${NS}@chaos.test` });
    expect(res.status).toBe(201);
    annotators.push({ id: res.body.id, sub: res.body.subdomain });
    expect((await t.json('POST', `/api/annotators/${res.body.id}/start`)).status).toBe(200);
  }
  await until('every annotator active with its route', allUp);
}, 600_000);

afterAll(async () => {
  const child: ChildProcess | undefined = service?.child;
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await service!.exited;
  }
  await t?.close();
  const left = !docker ? [] : await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (docker ? (await docker.listVolumes()).Volumes : undefined) ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
  for (const a of annotators) await dbs.drop(a.id).catch(() => {});
  await dbs.close();
  const dir = traefik?.dynamicDir;
  if (dir && existsSync(dir)) for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { force: true });
  await traefik?.close();
  await dockerd?.close();
  annotators = [];
});

describe(`Traefik (the suite's own) stopped ~5 s and started while ${COUNT} annotators are active`, () => {
  it('all converge to active with their urls answering through Traefik; nothing restarted or recreated', async ({ task }) => {
    const before = await containerIds();
    expect(before).toHaveLength(COUNT);
    await traefik.stop();
    // Away: no url answers.
    for (const a of annotators) expect((await viaTraefik(a.sub)).status).toBe(0);
    await sleep(5000);
    expect(service!.child.exitCode).toBeNull();
    const started = Date.now();
    await traefik.start();
    const convergeMs = await until('every annotator active with its route again', allUp, 120_000);
    const restarts = await t.db.selectFrom('annotators').select('restartCount').execute();
    expect(restarts.map((r) => r.restartCount)).toEqual(Array(COUNT).fill(0));
    expect(await containerIds()).toEqual(before);
    expect(readdirSync(traefik.dynamicDir).filter((f) => f.startsWith(`fleet-ls-${NS}-`))).toHaveLength(COUNT);
    setCounts(task, { annotators: COUNT, active: COUNT, restarts: 0, recreated: 0, convergeMs, fromTraefikStartMs: Date.now() - started });
  }, 300_000);
});

describe(`the Docker Engine (the suite's own) stopped ~5 s and started while ${COUNT} annotators are active`, () => {
  it('all converge to active with their urls answering through Traefik; each container brought back once', async ({ task }) => {
    expect((await containerIds()).filter((c) => c.endsWith(':running'))).toHaveLength(COUNT);
    await dockerd.stop();
    for (const a of annotators) expect((await viaTraefik(a.sub)).status).not.toBe(200);
    await sleep(5000);
    // The fleet lives through it: its passes fail (logged, counted) and go on.
    expect(service!.child.exitCode).toBeNull();
    const started = Date.now();
    await dockerd.start();
    const convergeMs = await until('every annotator active with its route again', allUp, 180_000);
    const after = await containerIds();
    expect(after.filter((c) => c.endsWith(':running'))).toHaveLength(COUNT);
    expect(after).toHaveLength(COUNT);
    const rows = await t.db.selectFrom('annotators').select(['status', 'restartCount']).execute();
    expect(rows.map((r) => r.status)).toEqual(Array(COUNT).fill('active'));
    // Docker's restart policy or the fleet brings each back; the fleet counts at most one restart each.
    const restarts = rows.reduce((n, r) => n + r.restartCount, 0);
    expect(rows.every((r) => r.restartCount <= 1)).toBe(true);
    setCounts(task, { annotators: COUNT, active: COUNT, containers: after.length, restarts, convergeMs, fromDockerdStartMs: Date.now() - started });
  }, 300_000);
});
