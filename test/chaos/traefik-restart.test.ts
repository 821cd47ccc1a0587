/**
 * Fault suite (issue 10): Traefik stopped and started while annotators are active. The suite runs
 * a Traefik of its own (test/helpers/traefik.ts; file provider) — never the machine's — and one
 * `fleet serve` that stays up throughout. While Traefik is away the annotators' urls cannot answer;
 * once it is back every annotator must be `active` with its url answering through it again, with
 * nothing restarted or recreated on the fleet's side (the containers are the same). The figure is
 * the time from Traefik's start to the last route answering.
 *
 * Instances run the stand-in image (test/helpers/stub-image.ts), so a start is seconds. Real
 * Docker and PostgreSQL: run under `flock /tmp/lf-docker.lock` (npm run chaos).
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
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePort, freePortBase, sleep, startFleet } from '../helpers/process.ts';
import { startTestService, TEST_SECRET_KEY, type TestService } from '../helpers/service.ts';
import { stubImage } from '../helpers/stub-image.ts';
import { startTraefik, type TestTraefik } from '../helpers/traefik.ts';
import './meta.ts';

const NS = `ct${randomBytes(3).toString('hex')}`;
const DOMAIN = `${NS}.fleet.localhost`;
const COUNT = 3;
const DOCKER_SOCKET = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
const docker = new Docker({ socketPath: DOCKER_SOCKET });
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
  const base = await freePortBase(28_400, 20);
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
  const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`labelfleet.namespace=${NS}`] }) });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const v of (await docker.listVolumes()).Volumes ?? []) {
    if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
  }
  const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
  for (const a of annotators) await dbs.drop(a.id).catch(() => {});
  await dbs.close();
  const dir = traefik?.dynamicDir;
  if (dir && existsSync(dir)) for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { force: true });
  await traefik?.close();
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
