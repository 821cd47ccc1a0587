/**
 * `npm run bench -- fleet`: five annotators started at once on the real Docker Engine, Label Studio
 * image and Traefik (`npm run env:up`), driven through a real `fleet serve` process over loopback.
 *
 * The annotators are created first and started once the fleet has made their databases (and, on
 * Docker, their containers, not started) ahead of the start and 3 s more have passed (as for an
 * annotator created a while before; migration 0041), then all at once.
 * Per annotator, from POST /start (sent) to status active (the service's status-change event), split into:
 *   - lsBoot: the container's start (Docker's State.StartedAt) → /health/ UP, probed by this script
 *     every 25 ms on 127.0.0.1, each probe sent without waiting for the one before (Label
 *     Studio's own boot: migrations, user, server; also the entrypoint's port check before it; the
 *     UP is the moment the first 200 arrives, so a slow answer counts as boot, not overhead);
 *   - overhead = total − lsBoot: everything the fleet adds before the container runs and after
 *     Label Studio answers, itself split into
 *       beforeContainer (POST → container started: Docker's start of the container made ahead,
 *         or its create and start; the start's password is set meanwhile),
 *       tokenReport (health UP → the instance's token report accepted: the image's reporter),
 *       activation (token report → active: route check, status change).
 *   Beside it, from health UP: Docker reporting the container healthy (its events) and Traefik's
 *   API showing the route loaded (polled every 25 ms), the two things the route waits for.
 * Plus the service's memory (RSS and peak), its CPU from the POSTs until all are active (mostly its
 * polls while Label Studio boots) and the load average before and after. Targets: all
 * active, RSS < 250 MB (issue 3), overhead < 0.5 s per annotator (issue 15). Figures only; nothing
 * here asserts.
 * BENCH_TRAEFIK_PROVIDER=file uses the file route provider instead of container labels;
 * BENCH_TRAEFIK_API=off leaves TRAEFIK_API_URL unset (route checked through Traefik);
 * BENCH_FLEET_COUNT sets how many annotators start (default 5); BENCH_FLEET_AHEAD=off starts them
 * right after their creation, without waiting for their databases; BENCH_FLEET_BUNDLE runs a bundle built
 * earlier (a baseline from another commit) instead of building this one; BENCH_FLEET_LOG=<file>
 * writes the service's debug log there. Each annotator's timeline lists its container events in
 * seconds after the POST, those after /health/ answered as "<s>+boot" (Label Studio's boot left out).
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { Socket } from 'node:net';
import Docker from 'dockerode';
import { sql } from 'kysely';
import { InstanceDatabases } from '../../orchestrator/databases.ts';
import { httpGet } from '../../orchestrator/http-probe.ts';
import { fleetNames, LABELS } from '../../orchestrator/instance-spec.ts';
import { traefikRouteLoad } from '../../orchestrator/routing/traefik-api.ts';
import { createTestDatabase } from '../../test/helpers/db.ts';
import { TEST_DATABASE_URL, testEnv } from '../../test/helpers/env.ts';
import { buildBundle, freePort, sleep, START_NODE_ARGS, startFleet, waitUntil } from '../../test/helpers/process.ts';
import { processCpuSeconds, processMemoryMb } from './lib.ts';

/** How long the annotators rest between their databases being made and their start (ms). */
const SETTLE_MS = 3000;
/** How often this script asks each instance's /health/ and Traefik's API (ms). */
const PROBE_MS = 25;
/** BENCH_FLEET_COUNT: how many annotators start at once (default 5; fewer boots finish sooner on a shared machine). */
const COUNT = Math.max(1, Math.min(20, Number(process.env.BENCH_FLEET_COUNT) || 5));
const ACTIVE_TIMEOUT_MS = 15 * 60_000;

const round = (ms: number) => Math.round(ms) / 1000;

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(true));
    s.connect(port, '127.0.0.1');
  });
}

async function freeBase(from: number): Promise<number> {
  for (let base = from; base < from + 3000; base += 50) {
    let ok = true;
    for (let i = 1; i <= COUNT && ok; i++) ok = await portIsFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range for Label Studio');
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { min: round(s[0] ?? 0), median: round(s[Math.floor(s.length / 2)] ?? 0), max: round(s.at(-1) ?? 0), mean: round(mean) };
};

export default async function bench() {
  // BENCH_TRAEFIK_PROVIDER=file measures the file provider (routes without waiting for Docker's health check).
  const provider = process.env.BENCH_TRAEFIK_PROVIDER === 'file' ? 'file' : 'docker';
  const loadBefore = loadavg().map((l) => Math.round(l * 10) / 10);
  const run = randomBytes(3).toString('hex');
  const namespace = `bench${run}`;
  const names = fleetNames({ FLEET_NAMESPACE: namespace });
  const dockerSocket = testEnv('DOCKER_SOCKET', '/var/run/docker.sock');
  const docker = new Docker({ socketPath: dockerSocket });
  const database = await createTestDatabase();
  const port = await freePort();
  const lsBase = await freeBase(27_000);
  const env = {
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: process.env.BENCH_FLEET_LOG ? 'debug' : 'warn',
    NODE_ENV: 'test',
    FLEET_SECRET_KEY: 'bench-secret-key-bench-secret-key-0123456789',
    FLEET_CALLBACK_URL: `http://127.0.0.1:${port}`,
    FLEET_NAMESPACE: namespace,
    FLEET_DOMAIN: `${namespace}.fleet.localhost`,
    FLEET_IMAGE: testEnv('FLEET_IMAGE'),
    DOCKER_SOCKET: dockerSocket,
    DOCKER_NETWORK_MODE: 'host',
    LS_PORT_BASE: String(lsBase),
    TRAEFIK_PROVIDER: provider,
    TRAEFIK_DYNAMIC_DIR: testEnv('TRAEFIK_DYNAMIC_DIR'),
    TRAEFIK_URL: testEnv('TRAEFIK_URL'),
    // The route phase asks Traefik's API whether the route is loaded; BENCH_TRAEFIK_API=off measures the request through Traefik instead.
    ...(process.env.BENCH_TRAEFIK_API === 'off' ? {} : { TRAEFIK_API_URL: testEnv('TRAEFIK_API_URL') }),
    LS_DATABASE_URL: TEST_DATABASE_URL(),
    RECONCILE_INTERVAL_MS: '5000',
  };
  // BENCH_FLEET_BUNDLE: a bundle built earlier (e.g. from the commit before a change, for a baseline in the same session).
  const bundle = process.env.BENCH_FLEET_BUNDLE;
  const proc = bundle ? startFleet(['serve'], env, undefined, bundle, START_NODE_ARGS) : startFleet(['serve'], env, undefined, buildBundle());
  const base = `http://127.0.0.1:${port}`;
  const dbs = new InstanceDatabases({ LS_DATABASE_URL: TEST_DATABASE_URL(), FLEET_NAMESPACE: namespace });
  const ids: number[] = [];
  try {
    await waitUntil('fleet serve to answer', async () => (await fetch(`${base}/api/health`)).ok, 60_000, 200);
    const { csrfToken } = (await (await fetch(`${base}/api/auth/csrf`)).json()) as { csrfToken: string };
    const login = await fetch(`${base}/api/auth/callback/credentials`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'admin@fleet.local', password: 'admin', csrfToken }).toString(),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { cookie, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    };
    await api('PUT', '/api/settings/fleet.memoryMb', { value: 1536 });
    // Several first boots on a busy shared machine can take longer than the default limits.
    await api('PUT', '/api/settings/fleet.healthTimeoutSeconds', { value: 3600 });
    await api('PUT', '/api/settings/fleet.startTimeoutSeconds', { value: 3600 });

    const subdomains = new Map<number, string>();
    for (let i = 1; i <= COUNT; i++) {
      const r = await api('POST', '/api/annotators', { name: `Bench ${i}`, email: `bench${i}-${run}@bench.local` });
      if (r.status !== 201) throw new Error(`create annotator: ${r.status} ${JSON.stringify(r.body)}`);
      ids.push(r.body.id);
      subdomains.set(r.body.id, r.body.subdomain);
    }
    // Started once their databases were made ahead; BENCH_FLEET_AHEAD=off starts them at once (a
    // bundle from before migration 0041 makes none; the start then makes them).
    const preparedAhead = process.env.BENCH_FLEET_AHEAD !== 'off';
    if (preparedAhead) {
      await waitUntil('databases made ahead of the start', async () => {
        const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM annotators WHERE database_prepared_at IS NULL AND id = ANY(${ids})`.execute(database.handle.db);
        return rows[0]!.n === 0;
      }, 120_000, 100);
      // As for an annotator created a while before: the service is done with them when they start.
      await sleep(SETTLE_MS);
    }

    // Docker's health_status events of this namespace's containers: when each turned healthy.
    const dockerHealthyAt = new Map<number, number>();
    const dockerEvents = (await docker.getEvents({ filters: JSON.stringify({ type: ['container'], event: ['health_status'], label: [`${LABELS.namespace}=${namespace}`] }) })) as NodeJS.ReadableStream & { destroy(): void };
    let eventBuffer = '';
    dockerEvents.on('data', (chunk: Buffer) => {
      eventBuffer += chunk.toString();
      let nl;
      while ((nl = eventBuffer.indexOf('\n')) >= 0) {
        const line = eventBuffer.slice(0, nl);
        eventBuffer = eventBuffer.slice(nl + 1);
        try {
          const e = JSON.parse(line) as { status?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } };
          const id = Number(e.Actor?.Attributes?.[LABELS.annotatorId]);
          if (/healthy/.test(e.status ?? '') && !/unhealthy/.test(e.status ?? '') && !dockerHealthyAt.has(id)) dockerHealthyAt.set(id, Math.round((e.timeNano ?? 0) / 1e6));
        } catch {
          // a partial line: completed by the next chunk
        }
      }
    });

    // Probe each instance's /health/ independently, every PROBE_MS, to time Label Studio's own
    // boot; then Traefik's API, to time the route being loaded.
    const healthUpAt = new Map<number, number>();
    const routeLoadedAt = new Map<number, number>();
    const traefikApi = process.env.BENCH_TRAEFIK_API === 'off' ? undefined : testEnv('TRAEFIK_API_URL');
    let probing = true;
    // One loop per instance, so a probe left hanging by one booting Label Studio (it may accept a
    // connection and answer seconds later) never makes another's times late; a new probe goes out
    // every PROBE_MS while fewer than MAX_IN_FLIGHT of this instance's are unanswered.
    const MAX_IN_FLIGHT = 4;
    const probeLoop = async (id: number) => {
      const target = { annotatorId: id, name: names.instance(id), host: `${subdomains.get(id)}.${env.FLEET_DOMAIN}`, upstream: { host: '127.0.0.1', port: lsBase + id } };
      let inFlight = 0;
      const send = (probe: Promise<void>) => {
        inFlight++;
        void probe.finally(() => inFlight--);
      };
      while (probing && !(healthUpAt.has(id) && (routeLoadedAt.has(id) || !traefikApi))) {
        if (inFlight >= MAX_IN_FLIGHT) {
          // wait for one to answer
        } else if (!healthUpAt.has(id)) {
          send(httpGet(`http://127.0.0.1:${lsBase + id}/health/`, { timeoutMs: 5000 }).then((res) => {
            if (res.status === 200 && /"UP"/.test(res.body) && !healthUpAt.has(id)) healthUpAt.set(id, Date.now());
          }));
        } else {
          send(traefikRouteLoad(traefikApi!, provider, target).then((load) => {
            if (load === 'loaded' && !routeLoadedAt.has(id)) routeLoadedAt.set(id, Date.now());
          }));
        }
        await sleep(PROBE_MS);
      }
    };
    const prober = Promise.all(ids.map(probeLoop));

    const postedAt = new Map<number, number>();
    const cpuBefore = processCpuSeconds(proc.child.pid!);
    const t0 = Date.now();
    await Promise.all(
      ids.map(async (id) => {
        postedAt.set(id, Date.now());
        const r = await api('POST', `/api/annotators/${id}/start`);
        if (r.status !== 200) throw new Error(`start ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      }),
    );
    const memorySamples: number[] = [];
    const activeAt = new Map<number, number>();
    const finalStatus = new Map<number, string>();
    while (finalStatus.size < ids.length && Date.now() - t0 < ACTIVE_TIMEOUT_MS) {
      for (const id of ids.filter((i) => !finalStatus.has(i))) {
        const s = await api('GET', `/api/annotators/${id}/status`);
        if (s.body?.status === 'active') {
          activeAt.set(id, Date.now());
          finalStatus.set(id, 'active');
        } else if (s.body?.status === 'error') finalStatus.set(id, `error: ${s.body.statusReason}`);
      }
      memorySamples.push(processMemoryMb(proc.child.pid!).rss);
      await sleep(250);
    }
    const cpuStartS = processCpuSeconds(proc.child.pid!) - cpuBefore;
    const windowS = (Date.now() - t0) / 1000;
    probing = false;
    await prober;
    dockerEvents.destroy();
    const memory = processMemoryMb(proc.child.pid!);

    const per = [];
    for (const id of ids) {
      const info = await docker.getContainer(names.instance(id)).inspect().catch(() => null);
      const startedAt = info ? Date.parse(info.State.StartedAt) : NaN;
      const events = await database.handle.db
        .selectFrom('containerEvents')
        .select(['eventType', 'toStatus', 'createdAt', 'details'])
        .where('annotatorId', '=', id)
        .orderBy('id')
        .execute();
      const tokenAt = events.find((e) => e.eventType === 'token_reported')?.createdAt.getTime();
      const phaseAt = (phase: string) =>
        events.find((e) => e.eventType === 'start_progress' && (e.details as { phase?: string } | null)?.phase === phase)?.createdAt.getTime() ?? NaN;
      // Active when the service made it so (its status change, same host clock), not when this
      // script's 250 ms status poll saw it.
      const activatedAt = events.find((e) => e.eventType === 'status_change' && e.toStatus === 'active')?.createdAt.getTime() ?? activeAt.get(id) ?? NaN;
      const total = activatedAt - postedAt.get(id)!;
      const upAt = healthUpAt.get(id) ?? NaN;
      const lsBoot = upAt - startedAt;
      per.push({
        annotatorId: id,
        status: finalStatus.get(id) ?? 'timeout',
        totalS: round(total),
        lsBootS: round(lsBoot),
        overheadS: round(total - lsBoot),
        beforeContainerS: round(startedAt - postedAt.get(id)!),
        databaseReadyS: round(phaseAt('container') - postedAt.get(id)!),
        containerRunningS: round(phaseAt('healthy') - postedAt.get(id)!),
        fleetSawHealthyS: round(phaseAt('token') - (healthUpAt.get(id) ?? NaN)),
        tokenReportS: round((tokenAt ?? NaN) - upAt),
        activationS: round(activatedAt - (tokenAt ?? NaN)),
        // After health UP: Docker healthy, Traefik's route loaded, token report, active.
        afterUpS: {
          dockerHealthy: round((dockerHealthyAt.get(id) ?? NaN) - upAt),
          routeLoaded: round((routeLoadedAt.get(id) ?? NaN) - upAt),
          tokenReported: round((tokenAt ?? NaN) - upAt),
          active: round(activatedAt - upAt),
        },
        // Every container event of the start, in seconds after the POST (phase changes, token, status).
        timeline: events.map((e) => {
          const at = e.createdAt.getTime();
          const afterBoot = at > (healthUpAt.get(id) ?? Infinity);
          const what = e.eventType === 'status_change' ? e.toStatus : ((e.details as { phase?: string } | null)?.phase ?? '');
          return `${round(at - postedAt.get(id)! - (afterBoot ? lsBoot : 0))}${afterBoot ? '+boot' : ''} ${e.eventType}${what ? `:${what}` : ''}`;
        }),
        // Whether the container that ran was made before the POST (ahead of the start).
        containerMadeAhead: info ? Date.parse(info.Created) < postedAt.get(id)! : null,
        restartsByDocker: info?.RestartCount ?? null,
        specHash: info?.Config.Labels[LABELS.specHash] ?? null,
      });
    }
    const ok = per.filter((p) => p.status === 'active');
    const overheads = ok.map((p) => p.overheadS * 1000);
    return {
      annotators: COUNT,
      databasesMadeAhead: preparedAhead,
      traefikProvider: provider,
      routeCheck: process.env.BENCH_TRAEFIK_API === 'off' ? 'through Traefik' : "Traefik's API",
      allActive: ok.length === COUNT,
      wallClockS: round(Math.max(...[...activeAt.values()]) - t0),
      perAnnotator: per,
      totalS: stats(ok.map((p) => p.totalS * 1000)),
      lsBootS: stats(ok.map((p) => p.lsBootS * 1000)),
      overheadS: stats(overheads),
      overheadPartsS: {
        beforeContainer: stats(ok.map((p) => p.beforeContainerS * 1000)),
        tokenReport: stats(ok.map((p) => p.tokenReportS * 1000)),
        activation: stats(ok.map((p) => p.activationS * 1000)),
      },
      afterHealthUpS: {
        dockerHealthy: stats(ok.map((p) => p.afterUpS.dockerHealthy * 1000)),
        routeLoaded: stats(ok.map((p) => p.afterUpS.routeLoaded * 1000)),
        tokenReported: stats(ok.map((p) => p.afterUpS.tokenReported * 1000)),
        active: stats(ok.map((p) => p.afterUpS.active * 1000)),
      },
      serviceMemoryMb: { rss: memory.rss, peak: memory.peak, maxSampledRss: Math.max(...memorySamples) },
      // The service's CPU (user + system, /proc) from the POSTs until all were active, mostly the
      // polls while Label Studio boots; per annotator, and per second of that window.
      serviceCpuS: { total: Math.round(cpuStartS * 100) / 100, perAnnotator: Math.round((cpuStartS / COUNT) * 100) / 100, perSecond: Math.round((cpuStartS / windowS) * 1000) / 1000 },
      loadAverage: { before: loadBefore, after: loadavg().map((l) => Math.round(l * 10) / 10) },
      targets: { allActive: true, overheadPerAnnotatorS: 0.5, rssMb: 250 },
      met: { allActive: ok.length === COUNT, overhead: overheads.length > 0 && Math.max(...overheads) < 500, rss: memory.peak < 250 },
    };
  } finally {
    // The fleet's own clean-up is tested in test/e2e/fleet-docker.test.ts; here, sweep by namespace.
    proc.child.kill('SIGTERM');
    await proc.exited;
    if (process.env.BENCH_FLEET_LOG) (await import('node:fs')).writeFileSync(process.env.BENCH_FLEET_LOG, proc.output.text);
    // … and sweep whatever a failed run may have left.
    const left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.namespace}=${namespace}`] }) });
    for (const c of left) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    for (const v of (await docker.listVolumes()).Volumes ?? []) {
      if (v.Name.startsWith(`fleet-ls-${namespace}-`)) await docker.getVolume(v.Name).remove().catch(() => {});
    }
    for (const id of ids) await dbs.drop(id).catch(() => {});
    if (provider === 'file') {
      const { rmSync } = await import('node:fs');
      for (const id of ids) rmSync(`${testEnv('TRAEFIK_DYNAMIC_DIR')}/${names.instance(id)}.yml`, { force: true });
    }
    await dbs.close();
    await database.drop();
  }
}
