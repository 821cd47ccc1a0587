/**
 * An in-memory Backend for tests of the reconciler's fault paths (issue 10), after JupyterHub's
 * test spawners (slow, never-ready, failing). It is held to the same contract suite as Docker and
 * ECS (test/integration/backend-memory.test.ts), so what the reconciler sees from it is what a real
 * backend may show; the fault suite (test/chaos) proves the same paths on the real parts.
 *
 * What it models:
 * - A "platform" (`platform`, read by tests without the backend, as `docker ps` would be): instances
 *   keyed by name `fleet-ls-<namespace>-<id>`, each with labels (managed, namespace, annotator id,
 *   spec hash, installation), a state, an incarnation (changes when rolled to a new spec) and a
 *   route `<subdomain>.<domain>`. Ownership as the real backends: list() shows only this fleet's
 *   namespace and installation; ensure() on an instance marked by another installation throws
 *   ForeignResourceError; remove() leaves foreign ones alone.
 * - Real HTTP: every live instance listens on its own 127.0.0.1 port and answers GET /health/ with
 *   200 {"status":"UP"} once ready (503 before); `routerUrl` is a router that answers /health/ for
 *   the Host of a route whose instance is ready (set it as TRAEFIK_URL). `onReady` is the entrypoint's
 *   token report: called once per incarnation when it becomes ready.
 * - Faults, chosen by options: `slowMs` (an instance stays 'starting' that long after each start),
 *   `neverReady` (running, /health/ never answers UP), `ensureFailures` (the next n ensure() calls
 *   throw, as a Docker daemon that refuses), `exitAfterMs` (every started instance exits — state
 *   'failed', as a crashing container — that long after it became ready, so restarts are needed),
 *   `ensureDelayMs` (ensure() answers that late, as a Docker daemon busy with other starts).
 *   Options can be changed between calls (`backend.faults`).
 *
 * What it does not model: images, pulls, resource limits, volumes' contents, Label Studio itself
 * (no API beyond /health/), networks, the platform restarting an instance by itself (restartCount
 * stays 0), and latency of the platform's own calls (every method but a delayed ensure answers at once).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Backend, InstanceSpec, InstanceState, ObservedInstance } from '../../orchestrator/backends/types.ts';
import { ForeignResourceError, foreignMessage, isOurs, type Owner } from '../../orchestrator/ownership.ts';

export interface MemoryFaults {
  /** An instance stays 'starting' this long after each (re)start before it runs (ms). */
  slowMs?: number;
  /** Instances run but never become ready: /health/ answers 503 for good. */
  neverReady?: boolean;
  /** The next n calls of ensure() throw (then it works again). */
  ensureFailures?: number;
  /** Every instance exits ('failed') this long after it became ready (ms). */
  exitAfterMs?: number;
  /** ensure() answers this late (ms): a platform busy with other starts. */
  ensureDelayMs?: number;
}

export interface MemoryInstance {
  name: string;
  labels: { managed: boolean; namespace: string; annotatorId: number; specHash: string; installation?: string };
  state: Exclude<InstanceState, 'missing'>;
  /** Changes whenever the instance is created again (rolled to a new spec). */
  incarnation: number;
  spec: InstanceSpec;
  ready: boolean;
  server?: http.Server;
  port?: number;
  timers: NodeJS.Timeout[];
  message?: string;
}

export interface MemoryRoute {
  host: string;
  annotatorId: number;
  installation?: string;
}

export interface MemoryBackendOptions {
  namespace: string;
  /** FLEET_DOMAIN: routes are `<subdomain>.<domain>`. */
  domain: string;
  faults?: MemoryFaults;
}

let incarnations = 0;

export class MemoryBackend implements Backend {
  readonly kind = 'memory' as const;
  /** The platform as it is, read by tests directly (not through the backend). */
  readonly platform = { instances: new Map<string, MemoryInstance>(), routes: new Map<string, MemoryRoute>() };
  faults: MemoryFaults;
  /** The entrypoint's token report: called once per incarnation when the instance becomes ready. */
  onReady?: (spec: InstanceSpec) => Promise<void>;
  /** Calls made, by method name (tests assert that nothing is retried forever). */
  readonly calls: Record<string, number> = {};
  private owner?: Owner;
  private router?: http.Server;
  private routerPort = 0;

  constructor(private readonly opts: MemoryBackendOptions) {
    this.faults = { ...opts.faults };
  }

  /** Starts the router (127.0.0.1, a free port). Call once before use; `close()` stops everything. */
  async start(): Promise<this> {
    this.router = http.createServer((req, res) => {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      const route = this.platform.routes.get(host);
      const inst = route ? this.platform.instances.get(this.name(route.annotatorId)) : undefined;
      if (!inst || inst.state !== 'running') return void res.writeHead(404).end('404 page not found');
      answerHealth(inst, req, res);
    });
    this.routerPort = await listen(this.router);
    return this;
  }

  /** The router's base URL (TRAEFIK_URL for the service under test). */
  get routerUrl(): string {
    return `http://127.0.0.1:${this.routerPort}`;
  }

  async close(): Promise<void> {
    for (const inst of this.platform.instances.values()) await halt(inst);
    this.platform.instances.clear();
    this.platform.routes.clear();
    if (this.router) await new Promise((r) => this.router!.close(() => r(undefined)));
  }

  setOwner(owner: Owner): void {
    this.owner = owner;
  }

  /** `fleet-ls-<namespace>-<id>`, as the Docker backend names containers. */
  name(annotatorId: number): string {
    return `fleet-ls-${this.opts.namespace}-${annotatorId}`;
  }

  hostOf(subdomain: string): string {
    return `${subdomain}.${this.opts.domain}`;
  }

  private count(method: string) {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
  }

  /** The ownership rule of orchestrator/ownership.ts, applied to an instance's label or a route's mark. */
  private ours(resource: MemoryInstance | MemoryRoute): boolean {
    return isOurs(this.owner, 'labels' in resource ? resource.labels.installation : resource.installation);
  }

  private fleetInstance(annotatorId: number): MemoryInstance | undefined {
    const inst = this.platform.instances.get(this.name(annotatorId));
    return inst && inst.labels.managed && inst.labels.namespace === this.opts.namespace && this.ours(inst) ? inst : undefined;
  }

  async ensure(spec: InstanceSpec): Promise<ObservedInstance> {
    this.count('ensure');
    if (this.faults.ensureDelayMs) await new Promise((r) => setTimeout(r, this.faults.ensureDelayMs));
    if ((this.faults.ensureFailures ?? 0) > 0) {
      this.faults.ensureFailures!--;
      throw new Error(`memory backend: creating ${this.name(spec.annotatorId)} failed (injected fault)`);
    }
    const name = this.name(spec.annotatorId);
    let inst = this.platform.instances.get(name);
    if (inst && !this.ours(inst)) {
      throw new ForeignResourceError(
        foreignMessage(`instance ${name}`, inst.labels.installation, 'Use another FLEET_NAMESPACE or remove it by hand.'),
      );
    }
    if (inst && inst.labels.specHash !== spec.specHash) {
      await halt(inst);
      this.platform.instances.delete(name);
      inst = undefined;
    }
    if (!inst) {
      inst = {
        name,
        labels: { managed: true, namespace: this.opts.namespace, annotatorId: spec.annotatorId, specHash: spec.specHash, installation: this.owner?.installationId },
        state: 'stopped',
        incarnation: ++incarnations,
        spec,
        ready: false,
        timers: [],
      };
      this.platform.instances.set(name, inst);
    }
    const host = this.hostOf(spec.subdomain);
    for (const [h, r] of this.platform.routes) if (r.annotatorId === spec.annotatorId && h !== host) this.platform.routes.delete(h);
    this.platform.routes.set(host, { host, annotatorId: spec.annotatorId, installation: this.owner?.installationId });
    if (inst.state !== 'running' && inst.state !== 'starting') await this.boot(inst);
    return this.view(inst);
  }

  /** Starts the instance: its listener now, 'running' after slowMs, ready unless neverReady, exits after exitAfterMs. */
  private async boot(inst: MemoryInstance): Promise<void> {
    await halt(inst);
    inst.message = undefined;
    inst.server = http.createServer((req, res) => answerHealth(inst, req, res));
    inst.port = await listen(inst.server);
    const { slowMs = 0, neverReady = false, exitAfterMs } = this.faults;
    const run = () => {
      inst.state = 'running';
      if (neverReady) return;
      inst.ready = true;
      void this.onReady?.(inst.spec).catch(() => undefined);
      if (exitAfterMs !== undefined) {
        inst.timers.push(
          setTimeout(() => {
            inst.state = 'failed';
            inst.ready = false;
            inst.message = 'exited with code 1 (injected fault)';
            void halt(inst, false);
          }, exitAfterMs),
        );
      }
    };
    if (slowMs > 0) {
      inst.state = 'starting';
      inst.timers.push(setTimeout(run, slowMs));
    } else run();
  }

  async stop(annotatorId: number): Promise<void> {
    this.count('stop');
    const inst = this.fleetInstance(annotatorId);
    if (!inst || inst.state === 'stopped') return;
    await halt(inst);
    inst.state = 'stopped';
  }

  async remove(annotatorId: number, _opts?: { purgeData?: boolean }): Promise<void> {
    this.count('remove');
    const name = this.name(annotatorId);
    const inst = this.platform.instances.get(name);
    if (inst && inst.labels.managed && this.ours(inst)) {
      await halt(inst);
      this.platform.instances.delete(name);
    }
    for (const [h, r] of this.platform.routes) if (r.annotatorId === annotatorId && this.ours(r)) this.platform.routes.delete(h);
  }

  async observe(annotatorId: number): Promise<ObservedInstance> {
    this.count('observe');
    const inst = this.fleetInstance(annotatorId);
    return inst ? this.view(inst) : { annotatorId, state: 'missing', health: 'unknown' };
  }

  async list(): Promise<ObservedInstance[]> {
    this.count('list');
    const out = new Map<number, ObservedInstance>();
    for (const inst of this.platform.instances.values()) {
      const id = inst.labels.annotatorId;
      if (inst.name === this.name(id) && this.fleetInstance(id) === inst) out.set(id, this.view(inst));
    }
    for (const r of this.platform.routes.values()) {
      if (!out.has(r.annotatorId) && this.ours(r)) out.set(r.annotatorId, { annotatorId: r.annotatorId, state: 'missing', health: 'unknown' });
    }
    return [...out.values()];
  }

  async routeState(spec: InstanceSpec): Promise<'ok' | 'missing' | 'changed'> {
    const hosts = [...this.platform.routes.values()].filter((r) => r.annotatorId === spec.annotatorId);
    if (!hosts.length) return 'missing';
    return hosts.length === 1 && hosts[0]!.host === this.hostOf(spec.subdomain) ? 'ok' : 'changed';
  }

  async repairRoute(spec: InstanceSpec): Promise<void> {
    for (const [h, r] of this.platform.routes) if (r.annotatorId === spec.annotatorId) this.platform.routes.delete(h);
    const host = this.hostOf(spec.subdomain);
    this.platform.routes.set(host, { host, annotatorId: spec.annotatorId, installation: this.owner?.installationId });
  }

  private view(inst: MemoryInstance): ObservedInstance {
    const live = inst.state === 'running' || inst.state === 'starting';
    return {
      annotatorId: inst.labels.annotatorId,
      state: inst.state,
      instanceId: inst.name,
      ...(live && inst.port ? { address: { host: '127.0.0.1', port: inst.port }, ip: '127.0.0.1' } : {}),
      health: inst.state !== 'running' ? 'unknown' : inst.ready ? 'healthy' : 'unknown',
      specHash: inst.labels.specHash,
      restartCount: 0,
      ...(inst.message ? { message: inst.message } : {}),
    };
  }
}

function answerHealth(inst: MemoryInstance, req: http.IncomingMessage, res: http.ServerResponse) {
  if (!req.url?.startsWith('/health')) return void res.writeHead(404).end();
  if (inst.state === 'running' && inst.ready) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status": "UP"}');
  res.writeHead(503, { 'content-type': 'application/json' }).end('{"status": "DOWN"}');
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** Stops the instance's timers and its listener (the process ends); state is the caller's. */
async function halt(inst: MemoryInstance, clearTimers = true): Promise<void> {
  if (clearTimers) for (const t of inst.timers.splice(0)) clearTimeout(t);
  inst.ready = false;
  const server = inst.server;
  inst.server = undefined;
  inst.port = undefined;
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(() => r(undefined)));
  }
}
