import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeLoadFrom, traefikRouteLoad } from '../../orchestrator/routing/traefik-api.ts';
import type { RouteTarget } from '../../orchestrator/routing/types.ts';

const target: RouteTarget = { annotatorId: 7, name: 'fleet-ls-t-7', host: 'alice.fleet.localhost', upstream: { host: '127.0.0.1', port: 20007 } };
const router = { status: 'enabled', rule: 'Host(`alice.fleet.localhost`)', service: 'fleet-ls-t-7' };
const service = { status: 'enabled', loadBalancer: { servers: [{ url: 'http://127.0.0.1:20007' }] } };

describe('routeLoadFrom', () => {
  it('is loaded when the router is enabled on the host and its service has the wanted server', () => {
    expect(routeLoadFrom('file', target, router, service)).toBe('loaded');
    expect(routeLoadFrom('docker', target, { ...router, service: 'fleet-ls-t-7@docker' }, service)).toBe('loaded');
    expect(routeLoadFrom('file', target, router, { ...service, serverStatus: { 'http://127.0.0.1:20007': 'UP' } })).toBe('loaded');
  });

  it('is not loaded while the router or service is absent, disabled, or routes elsewhere', () => {
    const cases: Array<[typeof router | null, typeof service | null]> = [
      [null, service],
      [router, null],
      [{ ...router, status: 'disabled' }, service],
      [{ ...router, rule: 'Host(`bob.fleet.localhost`)' }, service],
      [{ ...router, service: 'fleet-ls-t-8' }, service],
      [router, { ...service, status: 'warning' }],
      [router, { ...service, loadBalancer: { servers: [] } }],
      [router, { ...service, loadBalancer: { servers: [{ url: 'http://127.0.0.1:20008' }] } }],
      [router, { ...service, serverStatus: { 'http://127.0.0.1:20007': 'DOWN' } } as typeof service],
    ];
    for (const [r, s] of cases) expect(routeLoadFrom('file', target, r, s)).toBe('not-loaded');
  });

  it('compares the whole upstream for file routes and only the port for Docker-label routes (Traefik picks the address)', () => {
    const elsewhere = { ...service, loadBalancer: { servers: [{ url: 'http://172.18.0.5:20007' }] } };
    expect(routeLoadFrom('file', target, router, elsewhere)).toBe('not-loaded');
    expect(routeLoadFrom('docker', target, router, elsewhere)).toBe('loaded');
    expect(routeLoadFrom('docker', target, router, { ...service, loadBalancer: { servers: [{ url: 'http://172.18.0.5:8080' }] } })).toBe('not-loaded');
  });
});

describe('traefikRouteLoad against an HTTP server playing Traefik', () => {
  let server: Server;
  let base = '';
  /** What the server answers per path: [status, body]. */
  const answers = new Map<string, [number, string]>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const [status, body] = answers.get(req.url ?? '') ?? [404, '404 page not found'];
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const routerPath = '/api/http/routers/fleet-ls-t-7%40file';
  const servicePath = '/api/http/services/fleet-ls-t-7%40file';

  it('reads the router and the service by <name>@<provider>', async () => {
    answers.set(routerPath, [200, JSON.stringify(router)]);
    answers.set(servicePath, [200, JSON.stringify(service)]);
    expect(await traefikRouteLoad(base, 'file', target)).toBe('loaded');
    expect(await traefikRouteLoad(`${base}/`, 'file', target)).toBe('loaded');
    expect(await traefikRouteLoad(base, 'docker', target)).toBe('not-loaded'); // not under @docker: 404
  });

  it('is not loaded on 404 and unavailable on any other failure', async () => {
    answers.delete(routerPath);
    expect(await traefikRouteLoad(base, 'file', target)).toBe('not-loaded');
    answers.set(routerPath, [500, '{}']);
    expect(await traefikRouteLoad(base, 'file', target)).toBe('unavailable');
    answers.set(routerPath, [200, 'not json']);
    expect(await traefikRouteLoad(base, 'file', target)).toBe('unavailable');
    answers.set(routerPath, [401, '']);
    expect(await traefikRouteLoad(base, 'file', target)).toBe('unavailable');
    // Nothing listening: refused at once.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await traefikRouteLoad(`http://127.0.0.1:${port}`, 'file', target)).toBe('unavailable');
  });
});
