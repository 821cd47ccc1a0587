/**
 * README "Deploy with Docker Compose", followed on this machine: `docker compose up` on
 * docker-compose.yml (with docker-compose.test.yml: host networking on 127.0.0.1 ports) builds
 * the service and Label Studio images, starts PostgreSQL and Traefik, and yields a working fleet:
 * sign in through the published port, start an annotator, see it active with its route answering.
 *
 * No registry is reachable here, so the base images are local stand-ins
 * (scripts/compose/standins.sh), passed through the compose file's image variables.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, freePortBase, waitUntil } from '../helpers/process.ts';
import { testEnv } from '../helpers/env.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PROJECT = 'lfcomposetest';
const NAMESPACE = 'composetest';
const dir = mkdtempSync(path.join(tmpdir(), 'labelfleet-compose-'));
let env: Record<string, string>;
let compose: (...args: string[]) => Promise<string>;
let api: string;
let web: string;

beforeAll(async () => {
  const standins = Object.fromEntries(
    (await run('bash', [path.join(ROOT, 'scripts/compose/standins.sh')], { maxBuffer: 16 << 20 })).stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=', 2) as [string, string]),
  );
  const [apiPort, httpPort, pingPort, pgPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const traefikConfig = path.join(dir, 'traefik.yml');
  // The deployment's traefik/traefik.yml, on 127.0.0.1 ports (host network) and without the bridge network.
  writeFileSync(
    traefikConfig,
    `global: {checkNewVersion: false, sendAnonymousUsage: false}
entryPoints:
  web: {address: "127.0.0.1:${httpPort}"}
  traefik: {address: "127.0.0.1:${pingPort}"}
ping: {entryPoint: traefik}
api: {dashboard: false}
providers:
  docker: {endpoint: "unix:///var/run/docker.sock", exposedByDefault: false, constraints: "Label(\`labelfleet.managed\`,\`true\`) && Label(\`labelfleet.namespace\`,\`${NAMESPACE}\`)", watch: true}
`,
  );
  env = {
    ...(process.env as Record<string, string>),
    DOCKER_BUILDKIT: '0',
    COMPOSE_PROJECT_NAME: PROJECT,
    POSTGRES_IMAGE: standins.POSTGRES_IMAGE!,
    TRAEFIK_IMAGE: standins.TRAEFIK_IMAGE!,
    NODE_IMAGE: standins.NODE_IMAGE!,
    LS_BASE_IMAGE: standins.LS_BASE_IMAGE!,
    FLEET_IMAGE: `labelfleet/ls:${PROJECT}`,
    FLEET_VERSION: PROJECT,
    FLEET_SECRET_KEY: 'compose-test-secret-key-compose-test-secret-key',
    ADMIN_PASSWORD: 'compose-admin-password',
    FLEET_API_PORT: String(apiPort),
    FLEET_HTTP_PORT: String(httpPort),
    LF_PG_PORT: String(pgPort),
    LF_TRAEFIK_CONFIG: traefikConfig,
    FLEET_NAMESPACE: NAMESPACE,
    LS_PORT_BASE: String(await freePortBase(27_300, 3)),
    S3_ENDPOINT: testEnv('AWS_ENDPOINT_URL'),
    AWS_ACCESS_KEY_ID: testEnv('AWS_ACCESS_KEY_ID'),
    AWS_SECRET_ACCESS_KEY: testEnv('AWS_SECRET_ACCESS_KEY'),
  };
  const bin = standins.COMPOSE_BIN!;
  compose = async (...args) =>
    (await run(bin, ['-f', 'docker-compose.yml', '-f', 'docker-compose.test.yml', ...args], { cwd: ROOT, env, maxBuffer: 64 << 20 })).stdout;
  api = `http://127.0.0.1:${apiPort}`;
  web = `http://127.0.0.1:${httpPort}`;
  await compose('down', '--volumes', '--remove-orphans').catch(() => {});
  await removeFleetResources();
  // What README says to run (the images are built on the way).
  await compose('up', '--detach', '--build', '--wait');
}, 1_800_000);

/**
 * Removes the annotator containers and volumes the fleet made in this test's namespace. Each run's
 * fleet database is new, so it is a new installation: what an earlier run left would be another
 * installation's, which the fleet rightly refuses to take over (README "Faults", ownership).
 */
async function removeFleetResources() {
  const filter = `label=labelfleet.namespace=${NAMESPACE}`;
  const list = async (args: string[]) => (await run('docker', args).catch(() => ({ stdout: '' }))).stdout.trim();
  const ids = await list(['ps', '-aq', '--filter', filter]);
  if (ids) await run('docker', ['rm', '-f', '-v', ...ids.split('\n')]).catch(() => {});
  const volumes = await list(['volume', 'ls', '-q', '--filter', filter]);
  if (volumes) await run('docker', ['volume', 'rm', '-f', ...volumes.split('\n')]).catch(() => {});
}

afterAll(async () => {
  await removeFleetResources();
  await compose?.('down', '--volumes', '--remove-orphans').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}, 300_000);

describe('docker compose up', () => {
  it('starts a fleet: sign in on the published port, start an annotator, reach it through Traefik', async () => {
    const ps = JSON.parse(`[${(await compose('ps', '--all', '--format', 'json')).trim().split('\n').join(',')}]`) as { Service: string; State: string; Health: string; ExitCode: number }[];
    const byService = Object.fromEntries(ps.map((s) => [s.Service, s]));
    expect(byService.postgres).toMatchObject({ State: 'running', Health: 'healthy' });
    expect(byService.traefik).toMatchObject({ State: 'running', Health: 'healthy' });
    expect(byService.fleet).toMatchObject({ State: 'running', Health: 'healthy' });
    expect(byService['ls-image']).toMatchObject({ State: 'exited', ExitCode: 0 });
    // The service runs as `node`, with the Docker socket's group (docker/entrypoint.sh).
    const status1 = await compose('exec', '-T', 'fleet', 'cat', '/proc/1/status');
    expect(/^Uid:\s+(\d+)/m.exec(status1)![1]).toBe('1000');
    const socketGid = (await run('stat', ['-c', '%g', '/var/run/docker.sock'])).stdout.trim();
    expect(/^Groups:\s+(.*)$/m.exec(status1)![1]!.trim().split(/\s+/)).toContain(socketGid);

    const { csrfToken } = (await (await fetch(`${api}/api/auth/csrf`)).json()) as { csrfToken: string };
    const login = await fetch(`${api}/api/auth/callback/credentials`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'admin@fleet.local', password: 'compose-admin-password', csrfToken }).toString(),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${api}${p}`, { method, headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const created = await call('POST', '/api/annotators', { name: 'Compose Person', email: 'compose@example.com' });
    expect(created.status).toBe(201);
    expect((await call('POST', `/api/annotators/${created.body.id}/start`)).status).toBe(200);
    const status = await waitUntil(
      'the annotator to become active',
      async () => {
        const s = await call('GET', `/api/annotators/${created.body.id}/status`);
        if (s.body.status === 'error') throw new Error(`start failed: ${s.body.statusReason}`);
        return s.body.status === 'active' ? s.body : null;
      },
      900_000,
      2_000,
    );
    // The status URL carries the published Traefik port, and the route answers through it.
    expect(status.url).toBe(`http://${created.body.subdomain}.fleet.localhost:${env.FLEET_HTTP_PORT}`);
    // fetch() drops a Host header (forbidden by the Fetch standard): ask as a browser would, by host.
    const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get(`${web}/health/`, { headers: { host: `${created.body.subdomain}.fleet.localhost:${env.FLEET_HTTP_PORT}` } }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', reject);
    });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'UP' });
  }, 1_200_000);
});
