/**
 * The fleet on Docker, end to end: the real Docker Engine, the real Label Studio image
 * (FLEET_IMAGE), the real Traefik (TRAEFIK_URL) and PostgreSQL, all on 127.0.0.1, as
 * `npm run env:up` brings them up. Label Studio containers use host networking on
 * LS_PORT_BASE + annotator id, and the service under test listens on a real port so the
 * containers can POST their token back.
 *
 * 1. The Backend contract (test/helpers/backend-contract.ts) for the Docker backend, with both route
 *    providers. The backend does not care what runs in the container, so these use a tiny HTTP
 *    server image built FROM the fleet image (it keeps the image's HEALTHCHECK): dozens of
 *    Label Studio first boots would take many minutes on two cores.
 * 2. One real Label Studio, shared by the scenarios in order (each builds on the previous one):
 *    start → reach it through Traefik with the reported token → kill/remove it behind the fleet's
 *    back → stop → start again, killing the service mid-start → same data → a half-done start
 *    converges → spec change deferred during a batch, password reset recreates at once (file
 *    routes) → a start that cannot become healthy ends in error → orphans removed by
 *    `fleet reconcile` → delete leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../../orchestrator/backends/docker.ts';
import type { InstanceSpec } from '../../orchestrator/backends/types.ts';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { httpGet } from '../../orchestrator/http-probe.ts';
import { fleetNames, LABELS } from '../../orchestrator/instance-spec.ts';
import { INSTALLATION_LABEL, markText, readInstallation } from '../../orchestrator/ownership.ts';
import { dockerLabelRoutes } from '../../orchestrator/routing/docker-labels.ts';
import { fileRoutes } from '../../orchestrator/routing/file-provider.ts';
import { SecretBox } from '../../src/crypto.ts';
import { createLogger } from '../../src/logger.ts';
import { metrics } from '../../src/metrics.ts';
import { createService, type Service } from '../../src/service.ts';
import { describeBackendContract, pollingWaitFor, type BackendContractHarness } from '../helpers/backend-contract.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { TEST_DATABASE_URL, testEnv } from '../helpers/env.ts';
import { freePort, freePortBase, runFleet, sleep, waitUntil } from '../helpers/process.ts';
import { signIn, testConfig, TEST_SECRET_KEY } from '../helpers/service.ts';

const RUN = randomBytes(3).toString('hex');
const DOCKER_SOCKET = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
const FLEET_IMAGE = testEnv('FLEET_IMAGE');
const TRAEFIK_URL = testEnv('TRAEFIK_URL');
const TRAEFIK_API_URL = testEnv('TRAEFIK_API_URL');
const TRAEFIK_DYNAMIC_DIR = testEnv('TRAEFIK_DYNAMIC_DIR');
const docker = new Docker({ socketPath: DOCKER_SOCKET });

async function inspectOrNull(name: string) {
  try {
    return await docker.getContainer(name).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/** Containers (any state) carrying exactly this name. */
async function containersNamed(name: string) {
  const all = await docker.listContainers({ all: true, filters: JSON.stringify({ name: [name] }) });
  return all.filter((c) => c.Names.some((n) => n === `/${name}`));
}

// ============================================================================ 1. Backend contract

/** A stand-in instance image: the fleet image with a static HTTP server instead of Label Studio. */
async function stubImage(): Promise<string> {
  const tag = `labelfleet/contract-stub:${FLEET_IMAGE.replace(/[^a-zA-Z0-9_.-]/g, '-')}`.slice(0, 120);
  const images = await docker.listImages({ filters: JSON.stringify({ reference: [tag] }) });
  if (images.length) return tag;
  const dockerfile = [
    `FROM ${FLEET_IMAGE}`,
    'USER root',
    'RUN mkdir -p /opt/stub/health && echo \'{"status": "UP"}\' > /opt/stub/health/index.html',
    'USER 1001',
    'WORKDIR /opt/stub',
    'HEALTHCHECK --interval=1s --timeout=2s --start-period=30s --retries=3 CMD ["python3", "/opt/labelfleet/labelfleet_ls.py", "health"]',
    'ENTRYPOINT ["sh", "-c", "exec python3 -m http.server \\"${LS_PORT:-8080}\\" --bind 127.0.0.1"]',
    '',
  ].join('\n');
  execFileSync('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile, env: { ...process.env, DOCKER_BUILDKIT: '0', DOCKER_HOST: `unix://${DOCKER_SOCKET}` } });
  return tag;
}

function contractSetup(provider: 'docker' | 'file') {
  return async (): Promise<BackendContractHarness> => {
    const namespace = `ct${provider[0]}${RUN}`;
    const base = await freePortBase(26_000 + (provider === 'file' ? 100 : 0), 12);
    const config = testConfig({
      FLEET_NAMESPACE: namespace,
      DOCKER_SOCKET,
      DOCKER_NETWORK_MODE: 'host',
      LS_PORT_BASE: String(base),
      TRAEFIK_PROVIDER: provider,
      TRAEFIK_DYNAMIC_DIR,
      TRAEFIK_API_URL,
    });
    const names = fleetNames(config);
    const routes =
      provider === 'file'
        ? fileRoutes({ dir: TRAEFIK_DYNAMIC_DIR, entrypoint: 'web', parseName: names.parseInstance })
        : dockerLabelRoutes({ entrypoint: 'web' });
    const backend = new DockerBackend(config, routes, docker);
    const image = await stubImage();
    let next = 0;
    const lookalikes: string[] = [];
    return {
      backend,
      runsInstances: true,
      newAnnotatorId: () => ++next,
      spec(annotatorId, overrides = {}): InstanceSpec {
        const spec = {
          annotatorId,
          subdomain: `contract-${annotatorId}`,
          image,
          env: { LS_PORT: String(base + annotatorId) },
          port: base + annotatorId,
          memoryMb: 128,
          cpus: 0.2,
          specHash: `stub-${annotatorId}`,
        };
        return { ...spec, ...overrides };
      },
      waitFor: pollingWaitFor({ timeoutMs: 60_000, intervalMs: 500 }),
      async inspect(annotatorId) {
        const name = names.instance(annotatorId);
        const found = await containersNamed(name);
        const routesFound =
          provider === 'file'
            ? existsSync(path.join(TRAEFIK_DYNAMIC_DIR, `${name}.yml`))
              ? 1
              : 0
            : found.filter((c) => c.Labels[`traefik.http.routers.${name}.rule`] === `Host(\`contract-${annotatorId}.fleet.localhost\`)`).length;
        return { instances: found.length, routes: routesFound, version: found[0]?.Id };
      },
      async createLookalike(annotatorId) {
        const name = names.instance(annotatorId);
        lookalikes.push(name);
        await docker.createContainer({ name, Image: image, Env: ['LS_PORT=1'], HostConfig: { NetworkMode: 'none' } });
      },
      async close() {
        for (const name of lookalikes) await docker.getContainer(name).remove({ force: true }).catch(() => {});
        for (const v of (await docker.listVolumes()).Volumes ?? []) {
          if (v.Name.startsWith(`fleet-ls-${namespace}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
        }
      },
    };
  };
}

describeBackendContract('docker, routes as container labels', contractSetup('docker'));
describeBackendContract('docker, routes as dynamic-config files', contractSetup('file'));

describe('docker backend details', () => {
  it('maps container states and health text', async () => {
    const { instanceState, healthFromStatusText } = await import('../../orchestrator/backends/docker.ts');
    expect(instanceState('running')).toBe('running');
    expect(instanceState('restarting')).toBe('starting');
    expect(instanceState('exited', 0)).toBe('stopped');
    expect(instanceState('exited', 137)).toBe('stopped');
    expect(instanceState('exited', 65)).toBe('failed');
    expect(instanceState('dead')).toBe('failed');
    expect(healthFromStatusText('Up 3 minutes (healthy)')).toBe('healthy');
    expect(healthFromStatusText('Up 3 minutes (unhealthy)')).toBe('unhealthy');
    expect(healthFromStatusText('Up 3 seconds (health: starting)')).toBe('unknown');
  });
});

// ============================================================================ 2. One real Label Studio

const NS = `e2e${RUN}`;
const DOMAIN = `${NS}.fleet.localhost`;
let database: TestDatabase;
let service: Service | undefined;
let cookie = '';
let port = 0;
let base = 0;
const names = fleetNames({ FLEET_NAMESPACE: NS });

function fleetEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    FLEET_CALLBACK_URL: `http://127.0.0.1:${port}`,
    FLEET_NAMESPACE: NS,
    FLEET_DOMAIN: DOMAIN,
    FLEET_IMAGE,
    DOCKER_SOCKET,
    DOCKER_NETWORK_MODE: 'host',
    LS_PORT_BASE: String(base),
    TRAEFIK_PROVIDER: 'docker',
    TRAEFIK_URL,
    // Starts ask Traefik's API whether the route is loaded (test/e2e/drift.test.ts runs without it: through the router).
    TRAEFIK_API_URL,
    TRAEFIK_DYNAMIC_DIR,
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    RECONCILE_INTERVAL_MS: '2000',
    ...extra,
  };
}

async function startService(extra: Record<string, string> = {}, opts: { reconcile?: boolean } = {}): Promise<Service> {
  const config = testConfig(fleetEnv(extra));
  const s = await createService(config, { database: await reopen(), logger: createLogger(config.LOG_LEVEL), secrets: new SecretBox(TEST_SECRET_KEY) });
  await s.start({ reconcile: opts.reconcile ?? true });
  cookie = await signIn(s.app);
  service = s;
  return s;
}

/** service.stop() closes the database handle, so each service gets its own. */
async function reopen() {
  const { openDatabase } = await import('../../src/db/index.ts');
  return openDatabase({ url: database.url, dataDir: '/nonexistent', poolSize: 5 });
}

async function stopService() {
  await service?.stop();
  service = undefined;
}

async function api(method: string, p: string, body?: unknown) {
  const res = await service!.app.request(p, {
    method,
    headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const row = (id: number) => database.handle.db.selectFrom('annotators').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const eventsOf = (id: number) => database.handle.db.selectFrom('containerEvents').selectAll().where('annotatorId', '=', id).orderBy('id').execute();

async function waitStatus(id: number, status: string, timeoutMs: number) {
  return waitUntil(
    `annotator ${id} ${status}`,
    async () => {
      const s = await api('GET', `/api/annotators/${id}/status`);
      if (s.body.status === 'error' && status !== 'error') throw new Error(`annotator ${id} is in error: ${s.body.statusReason}`);
      return s.body.status === status ? s.body : undefined;
    },
    timeoutMs,
  );
}

/** A request through Traefik, addressed by Host header, always to 127.0.0.1. */
function viaTraefik(subdomain: string, p: string, headers: Record<string, string> = {}) {
  return httpGet(`${TRAEFIK_URL}${p}`, { host: `${subdomain}.${DOMAIN}`, headers, timeoutMs: 10_000 });
}

function rawRequest(method: string, url: string, opts: { host: string; headers?: Record<string, string>; body?: string }) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(url, { method, headers: { host: opts.host, ...opts.headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Logs in to Label Studio's web UI through Traefik: true when it redirects away from the form. */
async function lsLogin(subdomain: string, email: string, password: string): Promise<boolean> {
  const host = `${subdomain}.${DOMAIN}`;
  const form = await rawRequest('GET', `${TRAEFIK_URL}/user/login/`, { host });
  const csrf = /csrftoken=([^;]+)/.exec(String(form.headers['set-cookie'] ?? ''))?.[1];
  const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(form.body)?.[1];
  if (!csrf || !token) throw new Error(`no CSRF token on the login form (HTTP ${form.status})`);
  const res = await rawRequest('POST', `${TRAEFIK_URL}/user/login/`, {
    host,
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `csrftoken=${csrf}` },
    body: new URLSearchParams({ csrfmiddlewaretoken: token, email, password }).toString(),
  });
  return res.status === 302 && !String(res.headers.location ?? '').includes('/user/login');
}

/** labelfleet_container_events_total{kind} as the service in this process counted it. */
const containerEventCount = async (kind: 'start' | 'restart' | 'failure') =>
  (await metrics.containerEvents.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;

const tokenOf = async (id: number) => service!.ctx.secrets.decrypt((await row(id)).apiTokenEnc!);

describe('the fleet on Docker with a real Label Studio', () => {
  let alice = 0;
  let aliceSub = '';
  let alicePassword = '';
  let projectId = 0;
  const ALICE_EMAIL = `alice-${RUN}@e2e.test`;

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    base = await freePortBase(24_000, 10);
    await startService();
    // Quick restarts in tests; a roomy memory limit for Label Studio's first boot.
    await api('PUT', '/api/settings/fleet.restartBackoffSeconds', { value: 1 });
    await api('PUT', '/api/settings/fleet.memoryMb', { value: 1536 });
  });

  afterAll(async () => {
    await stopService().catch(() => {});
    const leftovers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${NS}`] }) });
    for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    for (const name of [names.instance(999)]) await docker.getContainer(name).remove({ force: true }).catch(() => {});
    for (const v of (await docker.listVolumes()).Volumes ?? []) {
      if (v.Name.startsWith(`fleet-ls-${NS}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
    }
    for (const f of existsSync(TRAEFIK_DYNAMIC_DIR) ? readdirSync(TRAEFIK_DYNAMIC_DIR) : []) {
      if (f.startsWith(`fleet-ls-${NS}-`)) (await import('node:fs')).rmSync(path.join(TRAEFIK_DYNAMIC_DIR, f), { force: true });
    }
    const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: NS });
    for (const id of [1, 2, 3, 4, 5]) await dbs.drop(id).catch(() => {});
    await dbs.close();
    await database?.drop();
  });

  it('starts an annotator: database, container, route, token, then active; reachable through Traefik with the reported token', async () => {
    const created = await api('POST', '/api/annotators', { name: 'Alice E2E', email: ALICE_EMAIL });
    expect(created.status).toBe(201);
    alice = created.body.id;
    aliceSub = created.body.subdomain;
    const pw = await api('POST', `/api/annotators/${alice}/password`);
    expect(pw.status).toBe(200);
    alicePassword = pw.body.password;

    // Made ahead with its database, not started, for the first start's spec (the password issued
    // since included): the start runs that very container.
    const madeAhead = await waitUntil(
      'the container made ahead of the first start',
      async () => {
        const info = await inspectOrNull(names.instance(alice));
        return info?.State.Status === 'created' && info.Config.Env.some((e) => e.startsWith('ANNOTATOR_PASSWORD=')) ? info : undefined;
      },
      120_000,
      250,
    );

    const started = await api('POST', `/api/annotators/${alice}/start`);
    expect(started).toEqual({ status: 200, body: { success: true, status: 'starting' } });
    const early = await api('GET', `/api/annotators/${alice}/status`);
    expect(early.body).toMatchObject({ status: 'starting', url: null });

    const status = await waitStatus(alice, 'active', 300_000);
    expect(status).toEqual({
      status: 'active',
      containerId: names.instance(alice),
      containerIp: '127.0.0.1',
      subdomain: aliceSub,
      url: `http://${aliceSub}.${DOMAIN}`,
      phase: null,
      statusReason: expect.stringContaining('Label Studio is up'),
    });

    // The container is the fleet's: labels, restart policy, limits, media volume, host network.
    const info = (await inspectOrNull(names.instance(alice)))!;
    expect(info.Id).toBe(madeAhead.Id);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.managed]: 'true',
      [LABELS.namespace]: NS,
      [LABELS.annotatorId]: String(alice),
      [LABELS.port]: String(base + alice),
      [LABELS.specHash]: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(info.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
    expect(info.HostConfig.Memory).toBe(1536 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    expect(info.HostConfig.NetworkMode).toBe('host');
    expect(info.Mounts).toEqual(expect.arrayContaining([expect.objectContaining({ Type: 'volume', Name: names.volume(alice), Destination: '/label-studio/data' })]));

    // Its own database and role exist.
    expect(await service!.ctx.instanceDatabases.exists(alice)).toEqual({ role: true, database: true });

    // Through Traefik, by Host header, with the token the instance reported.
    const health = await viaTraefik(aliceSub, '/health/');
    expect(health.status).toBe(200);
    const token = await tokenOf(alice);
    expect((await viaTraefik(aliceSub, '/api/projects/', {})).status).toBe(401);
    const projects = await viaTraefik(aliceSub, '/api/projects/', { authorization: `Token ${token}` });
    expect(projects.status).toBe(200);
    const create = await rawRequest('POST', `${TRAEFIK_URL}/api/projects/`, {
      host: `${aliceSub}.${DOMAIN}`,
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'E2E persistence' }),
    });
    expect(create.status).toBe(201);
    projectId = JSON.parse(create.body).id;

    // The annotator's own login (their email and the issued password) works; the fleet knows their LS user.
    expect(await lsLogin(aliceSub, ALICE_EMAIL, alicePassword)).toBe(true);
    expect(await lsLogin(aliceSub, ALICE_EMAIL, 'not-the-password')).toBe(false);
    expect((await row(alice)).lsUserId).toEqual(expect.any(Number));

    // Every transition and phase left an event with a reason.
    const evs = await eventsOf(alice);
    const kinds = evs.map((e) => `${e.eventType}:${e.fromStatus}->${e.toStatus}`);
    expect(kinds).toContain('status_change:created->starting');
    expect(kinds).toContain('token_reported:starting->starting');
    expect(kinds.at(-1)).toBe('status_change:starting->active');
    const phases = evs.filter((e) => e.eventType === 'start_progress').map((e) => (e.details as { phase: string }).phase);
    expect(phases, JSON.stringify(evs.map((e) => [e.eventType, e.message, e.createdAt]))).toEqual(['container', 'healthy', 'token', 'route']);
    expect(evs.every((e) => e.message)).toBe(true);
  });

  it('brings a container back that was killed, or removed, behind its back', async () => {
    const name = names.instance(alice);
    const before = (await inspectOrNull(name))!;
    const restartsBefore = await containerEventCount('restart');
    const restartEventsBefore = (await eventsOf(alice)).filter((e) => e.eventType === 'container_restarted').length;
    await docker.getContainer(name).kill();
    await waitUntil('Label Studio back after kill', async () => (await viaTraefik(aliceSub, '/health/')).status === 200, 240_000, 2000);
    expect((await inspectOrNull(name))!.Id).toBe(before.Id); // restarted, not replaced

    const lastEventBeforeRemoval = (await eventsOf(alice)).at(-1)?.id ?? 0;
    await docker.getContainer(name).remove({ force: true });
    const back = await waitUntil(
      'container recreated after removal',
      async () => {
        const i = await inspectOrNull(name);
        return i && i.Id !== before.Id && i.State.Running ? i : undefined;
      },
      60_000,
    );
    expect(back.Config.Labels[LABELS.specHash]).toBe(before.Config.Labels[LABELS.specHash]);
    await waitUntil('Label Studio back after removal', async () => (await viaTraefik(aliceSub, '/health/')).status === 200, 240_000, 2000);
    const evs = await eventsOf(alice);
    // The pass may see the container while Docker removes it (failed (removing), exited) or once it is gone
    // (missing): each is a restart, counted, with what was found in its reason.
    const afterRemoval = evs.filter((e) => e.id > lastEventBeforeRemoval && e.eventType === 'container_restarted');
    expect(afterRemoval.map((e) => e.message)).toContainEqual(expect.stringMatching(/^container (is missing|(failed|exited|dead|removing)( \(.*\))?); restart \d of 5$/));
    const restarted = evs.filter((e) => e.eventType === 'container_restarted').length - restartEventsBefore;
    expect(restarted).toBeGreaterThanOrEqual(1);
    expect(await containerEventCount('restart')).toBe(restartsBefore + restarted);
    expect((await row(alice)).status).toBe('active');
    expect((await containersNamed(name)).length).toBe(1);
  });

  it('stops, then starts again — with the service killed mid-start — and finds the same data', async () => {
    const stopped = await api('POST', `/api/annotators/${alice}/stop`);
    expect(stopped).toEqual({ status: 200, body: { success: true } });
    const s = await waitStatus(alice, 'stopped', 60_000);
    expect(s.url).toBeNull();
    const info = (await inspectOrNull(names.instance(alice)))!;
    expect(info.State.Running).toBe(false);
    expect((await viaTraefik(aliceSub, '/health/')).status).not.toBe(200);

    const generation = (await row(alice)).startGeneration;
    expect((await api('POST', `/api/annotators/${alice}/start`)).status).toBe(200);
    await waitUntil('the new container', async () => (await row(alice)).startPhase === 'healthy', 60_000, 200);
    await stopService(); // killed mid-start: no pass runs until a new process comes up
    await startService();

    await waitStatus(alice, 'active', 300_000);
    const a = await row(alice);
    expect(a.startGeneration).toBe(generation + 1);
    expect((await containersNamed(names.instance(alice))).length).toBe(1);
    const projects = await viaTraefik(aliceSub, `/api/projects/${projectId}/`, { authorization: `Token ${await tokenOf(alice)}` });
    expect(projects.status).toBe(200);
    expect(JSON.parse(projects.body).title).toBe('E2E persistence');
  });

  it('converges from a half-done start (container created, phase not recorded) without a second container', async () => {
    const before = (await inspectOrNull(names.instance(alice)))!;
    await stopService();
    const now = new Date();
    await database.handle.db
      .updateTable('annotators')
      .set({ status: 'starting', startPhase: 'container', phaseStartedAt: now, startRequestedAt: now, routedAt: null })
      .where('id', '=', alice)
      .execute();
    const s = await startService({}, { reconcile: false });
    for (let i = 0; i < 5 && (await row(alice)).status !== 'active'; i++) await s.reconciler.runOnce({ wait: true });
    expect((await row(alice)).status).toBe('active');
    const after = (await containersNamed(names.instance(alice)));
    expect(after.map((c) => c.Id)).toEqual([before.Id]);
    await stopService();
    await startService();
  });

  it('defers a spec change during a batch, but recreates at once for a password reset (now on file routes)', async () => {
    const before = (await inspectOrNull(names.instance(alice)))!;
    const { db } = database.handle;
    const wf = await db.insertInto('workflows').values({ name: `wf-${RUN}`, s3SourcePath: 'in/', s3ExportPath: 'out/', isActive: false }).returning('id').executeTakeFirstOrThrow();
    const asg = await db.insertInto('assignments').values({ workflowId: wf.id, annotatorId: alice, status: 'in_progress' }).returning('id').executeTakeFirstOrThrow();
    try {
      await stopService();
      const s = await startService({ TRAEFIK_PROVIDER: 'file' }, { reconcile: false });
      const report = await s.reconciler.runOnce({ wait: true });
      expect(report).not.toBe('busy');
      expect((await inspectOrNull(names.instance(alice)))!.Id).toBe(before.Id); // deferred: a batch is in progress

      const pw = await api('POST', `/api/annotators/${alice}/password`);
      expect(pw.status).toBe(200);
      await s.reconciler.runOnce({ wait: true });
      const recreated = (await inspectOrNull(names.instance(alice)))!;
      expect(recreated.Id).not.toBe(before.Id);
      expect(recreated.Config.Labels['traefik.enable']).toBeUndefined(); // routes are files now
      expect(existsSync(path.join(TRAEFIK_DYNAMIC_DIR, `${names.instance(alice)}.yml`))).toBe(true);
      const evs = await eventsOf(alice);
      expect(evs.at(-1)).toMatchObject({ eventType: 'container_recreated', message: "the annotator's password changed" });
      await stopService();
      await startService({ TRAEFIK_PROVIDER: 'file' });

      await waitUntil('Label Studio back through the file route', async () => (await viaTraefik(aliceSub, '/health/')).status === 200, 240_000, 2000);
      const recreatedAt = Date.parse(recreated.Created);
      await waitUntil('token reported by the new container', async () => ((await row(alice)).tokenReportedAt?.getTime() ?? 0) > recreatedAt, 120_000);
      expect(await lsLogin(aliceSub, ALICE_EMAIL, pw.body.password)).toBe(true);
      expect(await lsLogin(aliceSub, ALICE_EMAIL, alicePassword)).toBe(false);
      expect((await row(alice)).status).toBe('active');
    } finally {
      await db.updateTable('assignments').set({ status: 'cancelled' }).where('id', '=', asg.id).execute();
    }
  });

  it('stops a start in progress: the container is stopped, nothing keeps starting', async () => {
    const created = await api('POST', '/api/annotators', { name: 'Called Off', email: `calledoff-${RUN}@e2e.test` });
    const id = created.body.id as number;
    expect((await api('POST', `/api/annotators/${id}/start`)).status).toBe(200);
    await waitUntil('its container', async () => (await row(id)).startPhase === 'healthy', 60_000, 200);
    expect((await api('POST', `/api/annotators/${id}/stop`)).status).toBe(200);
    const s = await waitStatus(id, 'stopped', 60_000);
    expect(s).toMatchObject({ status: 'stopped', url: null, phase: null });
    const info = (await inspectOrNull(names.instance(id)))!;
    expect(info.State.Running).toBe(false);
    const kinds = (await eventsOf(id)).map((e) => `${e.fromStatus}->${e.toStatus}:${e.message}`);
    expect(kinds.slice(-2)).toEqual(['starting->stopping:start called off by admin', 'stopping->stopped:container stopped']);
    // A later pass leaves it stopped.
    await sleep(3000);
    expect((await inspectOrNull(names.instance(id)))!.State.Running).toBe(false);
    expect((await row(id)).status).toBe('stopped');
  });

  it('ends a start whose container keeps crashing in error, before its deadline, removing the container', async () => {
    await api('PUT', '/api/settings/fleet.startTimeoutSeconds', { value: 120 });
    const created = await api('POST', '/api/annotators', { name: 'Never Healthy', email: `never-${RUN}@e2e.test` });
    const id = created.body.id as number;
    // Something else holds the instance's port: the entrypoint refuses to start, again and again,
    // and Docker restarts it each time. Past fleet.maxRestarts of those the start is given up at
    // once (issue 10: a crash loop is not waited out until the start deadline).
    const squatter: Server = createServer((sock) => sock.destroy());
    await new Promise<void>((r) => squatter.listen(base + id, '127.0.0.1', () => r()));
    try {
      const failuresBefore = await containerEventCount('failure');
      const t0 = Date.now();
      expect((await api('POST', `/api/annotators/${id}/start`)).status).toBe(200);
      const s = await waitStatus(id, 'error', 150_000);
      expect((Date.now() - t0) / 1000).toBeLessThan(120);
      expect(s.statusReason).toMatch(/container keeps crashing \(\d+ restarts by the platform\)/);
      expect(await inspectOrNull(names.instance(id))).toBeNull();
      const last = (await eventsOf(id)).at(-1)!;
      expect(last).toMatchObject({ eventType: 'status_change', fromStatus: 'starting', toStatus: 'error' });
      expect(await containerEventCount('failure')).toBe(failuresBefore + 1);
    } finally {
      squatter.close();
      await api('PUT', '/api/settings/fleet.startTimeoutSeconds', { value: 900 });
    }
  });

  it('removes orphans (a fleet-labelled container and a route no annotator owns): `fleet reconcile` prints it', async () => {
    await stopService();
    const orphan = names.instance(999);
    const owner = await readInstallation(database.handle.db);
    await docker.createContainer({
      name: orphan,
      Image: FLEET_IMAGE,
      Entrypoint: ['sleep', '600'],
      // Ours (this installation's mark), but no annotator 999 exists: an orphan to sweep.
      Labels: { [LABELS.managed]: 'true', [LABELS.namespace]: NS, [LABELS.annotatorId]: '999', [INSTALLATION_LABEL]: owner.installationId },
      HostConfig: { NetworkMode: 'none' },
    });
    await docker.getContainer(orphan).start();
    const orphanRoute = path.join(TRAEFIK_DYNAMIC_DIR, `${names.instance(998)}.yml`);
    writeFileSync(orphanRoute, `# ${markText(owner, 998)}\n{"http": {}}\n`);

    const env = { ...fleetEnv({ TRAEFIK_PROVIDER: 'file' }), FLEET_SECRET_KEY: TEST_SECRET_KEY, NODE_ENV: 'test', LOG_LEVEL: 'silent' };
    const out = await runFleet(['reconcile'], env);
    expect(out.stderr).toBe('');
    expect(out.stdout).toContain(`annotators: orphan ${orphan}: removed (no such annotator)`);
    expect(out.stdout).toContain('annotators: orphan instance of annotator 998: removed (no such annotator)');
    expect(out.stdout).toMatch(/reconcile pass: \d+ action\(s\)/);
    expect(await inspectOrNull(orphan)).toBeNull();
    expect(existsSync(orphanRoute)).toBe(false);
    // The annotators that do exist were left alone.
    expect((await inspectOrNull(names.instance(alice)))!.State.Running).toBe(true);
    await startService({ TRAEFIK_PROVIDER: 'file' });
  });

  it('delete leaves no container, route, volume, role or database', async () => {
    const byEmail = async (email: string) => (await database.handle.db.selectFrom('annotators').select('id').where('email', '=', email).executeTakeFirstOrThrow()).id;
    const never = await byEmail(`never-${RUN}@e2e.test`);
    const calledOff = await byEmail(`calledoff-${RUN}@e2e.test`);
    for (const id of [alice, never, calledOff]) expect((await api('DELETE', `/api/annotators/${id}`)).status).toBe(200);
    await waitUntil(
      'clean-up of deleted annotators',
      async () => {
        const rows = await database.handle.db.selectFrom('annotators').select(['id', 'cleanedUpAt']).where('id', 'in', [alice, never, calledOff]).execute();
        return rows.every((r) => r.cleanedUpAt !== null);
      },
      60_000,
    );
    for (const id of [alice, calledOff]) expect(await containersNamed(names.instance(id))).toEqual([]);
    expect(existsSync(path.join(TRAEFIK_DYNAMIC_DIR, `${names.instance(alice)}.yml`))).toBe(false);
    const volumes = ((await docker.listVolumes()).Volumes ?? []).map((v) => v.Name);
    expect(volumes).not.toContain(names.volume(alice));
    for (const id of [alice, never, calledOff]) expect(await service!.ctx.instanceDatabases.exists(id)).toEqual({ role: false, database: false });
    // Traefik notices the removed route file within a moment; then the host has no router at all.
    await waitUntil('the route to disappear from Traefik', async () => (await viaTraefik(aliceSub, '/health/')).status === 404, 30_000, 500);
    const evs = await eventsOf(alice);
    expect(evs.at(-1)).toMatchObject({ eventType: 'cleaned_up', message: expect.stringContaining('dropped') });
  });
});
