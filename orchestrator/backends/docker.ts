/**
 * The Docker backend (dockerode): one container `fleet-ls-[<ns>-]<id>` per annotator, labelled as
 * the fleet's (labelfleet.managed, .namespace, .annotator-id, .spec-hash, .port), restart policy
 * unless-stopped, memory/CPU limits, a named volume for Label Studio's media, on the fleet network
 * (DOCKER_NETWORK_MODE=bridge) or on the host network with port LS_PORT_BASE + id (tests). Its
 * Traefik route is labels on the container or a dynamic-config file (orchestrator/routing).
 *
 * Every method is idempotent and finds its objects by name, so a fleet restarted at any line
 * carries on where it stopped; Docker's "no such container" is "missing", never an error.
 *
 * Ownership (orchestrator/ownership.ts): containers and volumes also carry labelfleet.installation.
 * A container or volume of the same name that another installation made is never adopted,
 * removed, stopped or listed: ensure() throws ForeignResourceError, observe() reports it missing.
 */
import Docker from 'dockerode';
import type { Config } from '../../src/config.ts';
import { DATA_DIR_IN_IMAGE, fleetNames, LABELS, publicHost, type FleetNames } from '../instance-spec.ts';
import { ForeignResourceError, foreignMessage, INSTALLATION_LABEL, isOurs, type Owner } from '../ownership.ts';
import { traefikRouteLoad } from '../routing/traefik-api.ts';
import type { RouteProvider, RouteTarget } from '../routing/types.ts';
import type { Backend, InstanceSpec, InstanceState, ObservedInstance } from './types.ts';

type DockerConfig = Pick<
  Config,
  'DOCKER_SOCKET' | 'DOCKER_NETWORK_MODE' | 'DOCKER_NETWORK' | 'FLEET_NAMESPACE' | 'FLEET_DOMAIN'
> & Partial<Pick<Config, 'TRAEFIK_API_URL'>>;

const statusOf = (err: unknown) => (err as { statusCode?: number } | null)?.statusCode;
const isMissing = (err: unknown) => statusOf(err) === 404;
const dockerMessage = (err: unknown) => {
  const e = err as { json?: { message?: string }; message?: string };
  return e?.json?.message ?? e?.message ?? String(err);
};

/** Container states Docker cannot start again: the container is removed and created anew. */
const UNSTARTABLE = new Set(['dead', 'removing']);
/** How long ensure() waits for a removed container's name to become free. */
const REMOVE_WAIT_MS = 15_000;

/** Seconds `docker stop` waits for Label Studio before killing it. */
const STOP_GRACE_SECONDS = 10;

const SECOND_NS = 1e9;
/** How long one health probe waits, during a boot, for Label Studio to answer (seconds). */
const BOOT_WAIT_SECONDS = 60;
/**
 * The container health check's script (bash; no Python start-up). Traefik's docker provider routes
 * only to containers Docker reports healthy, so the moment Docker flips to healthy is when a booted
 * Label Studio gets its route. Docker 20.10 probes every Interval and ignores StartInterval (Docker
 * >= 25), which left a booted instance waiting up to one Interval for its route. So until the
 * first success of this boot, one probe waits for Label Studio itself: it tries /health/ every
 * 0.1 s (a refused connect costs no fork) for up to BOOT_WAIT_SECONDS and succeeds as soon as
 * Label Studio answers. Then it writes the boot's identity (PID 1's start time, /proc/1/stat
 * field 22) to a marker, and later probes are one request bounded by `timeout 5`, as before. A
 * container restarted by Docker has a new PID 1, so it waits afresh. Should /tmp not be
 * writable, every probe waits (a failing check then takes up to BOOT_WAIT_SECONDS).
 */
export const HEALTH_SCRIPT = [
  'up() { exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT:-8080}" && printf \'GET /health/ HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\' >&3 && timeout 4 grep -q \'"UP"\' <&3; } 2>/dev/null',
  'export -f up',
  's=$(</proc/1/stat); s=${s##*) }; set -- $s; boot=${20}',
  'm=/tmp/.labelfleet-healthy',
  'if [[ -r $m && "$(<$m)" == "$boot" ]]; then exec timeout 5 bash -c up; fi',
  `end=$((SECONDS + ${BOOT_WAIT_SECONDS}))`,
  'until up; do (( SECONDS < end )) || exit 1; sleep 0.1; done',
  'echo "$boot" >$m 2>/dev/null; exit 0',
].join('\n');

/**
 * The container health check (HEALTH_SCRIPT). Every 2 s once healthy, 10 retries so a Label Studio
 * busy for a few seconds is not declared unhealthy (and restarted) too eagerly; Timeout above the
 * boot wait. StartInterval is used by Docker >= 25 during the start period and ignored by older
 * engines.
 */
export const HEALTHCHECK: Docker.HealthConfig = {
  Test: ['CMD', 'bash', '-c', HEALTH_SCRIPT],
  Interval: 2 * SECOND_NS,
  Timeout: (BOOT_WAIT_SECONDS + 5) * SECOND_NS,
  StartPeriod: 600 * SECOND_NS,
  StartInterval: 1 * SECOND_NS,
  Retries: 10,
};

/** Maps Docker's container state to the backend-neutral one. */
export function instanceState(status: string, exitCode?: number): InstanceState {
  switch (status) {
    case 'running':
      return 'running';
    case 'restarting':
      return 'starting';
    case 'created':
    case 'paused':
      return 'stopped';
    case 'exited':
      // 0: clean exit; 137/143: killed/terminated by a stop.
      return exitCode === undefined || [0, 137, 143].includes(exitCode) ? 'stopped' : 'failed';
    case 'removing':
    case 'dead':
      // Neither can be started again: ensure() removes and recreates it.
      return 'failed';
    default:
      return 'failed';
  }
}

/** `docker ps`'s Status text carries the health: "Up 5 minutes (healthy)". */
export function healthFromStatusText(status: string): ObservedInstance['health'] {
  if (/\(healthy\)/.test(status)) return 'healthy';
  if (/\(unhealthy\)/.test(status)) return 'unhealthy';
  return 'unknown';
}

export class DockerBackend implements Backend {
  readonly kind = 'docker' as const;
  readonly docker: Docker;
  readonly names: FleetNames;
  #networkReady = false;
  #owner: Owner | undefined;
  /** Containers create() made and nothing started yet, by name: their id and spec hash (ensure() starts them without an inspect). */
  #madeAhead = new Map<string, { id: string; specHash: string }>();

  constructor(
    private readonly config: DockerConfig,
    private readonly routes: RouteProvider,
    docker?: Docker,
  ) {
    this.docker = docker ?? new Docker({ socketPath: config.DOCKER_SOCKET });
    this.names = fleetNames(config);
  }

  /** This installation (called by the composition root once the fleet database is open). */
  setOwner(owner: Owner): void {
    this.#owner = owner;
    this.routes.setOwner?.(owner);
  }

  #ours(labels: Record<string, string> | undefined | null): boolean {
    return isOurs(this.#owner, labels?.[INSTALLATION_LABEL]);
  }

  #ownerLabels(): Record<string, string> {
    return this.#owner ? { [INSTALLATION_LABEL]: this.#owner.installationId } : {};
  }

  #foreign(what: string, labels: Record<string, string> | undefined | null): ForeignResourceError {
    return new ForeignResourceError(
      foreignMessage(
        what,
        labels?.[INSTALLATION_LABEL],
        'Give each fleet on this Docker host its own FLEET_NAMESPACE; if it is a leftover of a fleet that is gone, remove it (docker rm / docker volume rm) and start the annotator again.',
      ),
    );
  }

  get hostNetwork() {
    return this.config.DOCKER_NETWORK_MODE === 'host';
  }

  #routeTarget(annotatorId: number, subdomain: string, port: number): RouteTarget {
    const name = this.names.instance(annotatorId);
    return {
      annotatorId,
      name,
      host: publicHost(this.config, subdomain),
      // Host networking: Traefik runs on the host and reaches the instance on loopback.
      upstream: this.hostNetwork ? { host: '127.0.0.1', port } : { host: name, port },
    };
  }

  async #inspect(name: string): Promise<Docker.ContainerInspectInfo | null> {
    try {
      return await this.docker.getContainer(name).inspect();
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async #ensureNetwork(): Promise<void> {
    if (this.hostNetwork || this.#networkReady) return;
    const name = this.config.DOCKER_NETWORK;
    try {
      await this.docker.getNetwork(name).inspect();
    } catch (err) {
      if (!isMissing(err)) throw err;
      try {
        await this.docker.createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: { [LABELS.managed]: 'true' } });
      } catch (createErr) {
        if (statusOf(createErr) !== 409) throw createErr;
      }
    }
    this.#networkReady = true;
  }

  async #volumeLabels(name: string): Promise<Record<string, string> | null> {
    try {
      return (await this.docker.getVolume(name).inspect()).Labels ?? {};
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async #ensureVolume(annotatorId: number): Promise<string> {
    const name = this.names.volume(annotatorId);
    const existing = await this.#volumeLabels(name);
    if (existing && !this.#ours(existing)) throw this.#foreign(`Docker volume ${name}`, existing);
    // Creating an existing volume would return it unchanged: one Docker call fewer before a start.
    if (existing) return name;
    await this.docker.createVolume({
      Name: name,
      Labels: {
        [LABELS.managed]: 'true',
        [LABELS.namespace]: this.names.namespace,
        [LABELS.annotatorId]: String(annotatorId),
        ...this.#ownerLabels(),
      },
    });
    return name;
  }

  async #pull(image: string): Promise<void> {
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      throw new Error(`image ${image} is not on this Docker host and could not be pulled: ${dockerMessage(err)}`);
    }
  }

  /**
   * Creates the container (and its volume, unless `volume` is that of an ensure already under
   * way); with `pull` false a missing image is left to a later call, which pulls it.
   */
  async #create(spec: InstanceSpec, target: RouteTarget, { pull = true, volume: ensuring }: { pull?: boolean; volume?: Promise<string> } = {}): Promise<string | undefined> {
    const name = target.name;
    const volume = await (ensuring ?? this.#ensureVolume(spec.annotatorId));
    const labels = {
      [LABELS.managed]: 'true',
      [LABELS.namespace]: this.names.namespace,
      [LABELS.annotatorId]: String(spec.annotatorId),
      [LABELS.specHash]: spec.specHash,
      [LABELS.port]: String(spec.port),
      ...this.#ownerLabels(),
      ...this.routes.containerLabels(target),
    };
    const options: Docker.ContainerCreateOptions = {
      name,
      Image: spec.image,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: labels,
      Healthcheck: HEALTHCHECK,
      HostConfig: {
        NetworkMode: this.hostNetwork ? 'host' : this.config.DOCKER_NETWORK,
        RestartPolicy: { Name: 'unless-stopped' },
        Memory: Math.round(spec.memoryMb * 1024 * 1024),
        NanoCpus: Math.round(spec.cpus * 1e9),
        Mounts: [{ Type: 'volume', Source: volume, Target: DATA_DIR_IN_IMAGE }],
      },
    };
    if (!this.hostNetwork) {
      options.ExposedPorts = { [`${spec.port}/tcp`]: {} };
      options.NetworkingConfig = { EndpointsConfig: { [this.config.DOCKER_NETWORK]: { Aliases: [name] } } };
    }
    try {
      return (await this.docker.createContainer(options)).id;
    } catch (err) {
      if (statusOf(err) === 409) return undefined; // created meanwhile under the same name: ensure() re-inspects it
      if (isMissing(err) && /image/i.test(dockerMessage(err))) {
        if (!pull) return undefined;
        await this.#pull(spec.image);
        return (await this.docker.createContainer(options)).id;
      }
      throw new Error(`creating container ${name} failed: ${dockerMessage(err)}`);
    }
  }

  /**
   * Creates the instance's container (and volume) without starting it, when there is none and the
   * image is on this host (no pull): the first half of ensure(), done ahead of the start (a
   * created annotator's, with its first start's spec) so the start is one Docker call. A container
   * already there, whatever its state or spec, is left to ensure(). Idempotent; concurrent with
   * ensure() too (Docker's 409 on the name).
   */
  async create(spec: InstanceSpec): Promise<boolean> {
    await this.#ensureNetwork();
    const target = this.#routeTarget(spec.annotatorId, spec.subdomain, spec.port);
    // The volume is made while the name is looked up.
    const volume = this.#ensureVolume(spec.annotatorId);
    const [existing] = await Promise.all([this.#inspect(target.name), volume]);
    if (existing) return true;
    const id = await this.#create(spec, target, { pull: false, volume });
    if (id) this.#madeAhead.set(target.name, { id, specHash: spec.specHash });
    return id !== undefined || (await this.#inspect(target.name)) !== null;
  }

  async ensure(spec: InstanceSpec): Promise<ObservedInstance> {
    await this.#ensureNetwork();
    const target = this.#routeTarget(spec.annotatorId, spec.subdomain, spec.port);
    const container = this.docker.getContainer(target.name);
    if (await this.#startMadeAhead(target.name, spec)) {
      await this.routes.ensure(target);
      return this.observe(spec.annotatorId);
    }
    let info = await this.#inspect(target.name);
    if (info && !this.#ours(info.Config.Labels)) throw this.#foreign(`container ${target.name}`, info.Config.Labels);
    if (info && (info.Config.Labels?.[LABELS.specHash] !== spec.specHash || UNSTARTABLE.has(info.State.Status))) {
      await this.#removeAndWait(target.name, info.State.Status);
      info = null;
    }
    if (!info) {
      await this.#create(spec, target);
      info = await this.#inspect(target.name);
      if (!info) throw new Error(`container ${target.name} vanished right after it was created`);
      if (!this.#ours(info.Config.Labels)) throw this.#foreign(`container ${target.name}`, info.Config.Labels);
      if (info.Config.Labels?.[LABELS.specHash] !== spec.specHash) {
        throw new Error(`container ${target.name} was created concurrently with another spec; will retry`);
      }
    }
    if (info.State.Paused) {
      try {
        await container.unpause();
      } catch (err) {
        if (statusOf(err) !== 304 && !/not paused/i.test(dockerMessage(err))) throw new Error(`unpausing container ${target.name} failed: ${dockerMessage(err)}`);
      }
    } else if (!info.State.Running && !info.State.Restarting) {
      try {
        await container.start();
      } catch (err) {
        if (statusOf(err) !== 304) throw new Error(`starting container ${target.name} failed: ${dockerMessage(err)}`);
      }
    }
    await this.routes.ensure(target);
    return this.observe(spec.annotatorId);
  }

  /**
   * Starts the container create() made for `spec` without inspecting it first: started by its id,
   * so it is that very container — ours, with this spec — or none. True when started; false (the
   * caller inspects and decides) when there is none to start this way or the start failed.
   */
  async #startMadeAhead(name: string, spec: InstanceSpec): Promise<boolean> {
    const made = this.#madeAhead.get(name);
    this.#madeAhead.delete(name);
    if (!made || made.specHash !== spec.specHash) return false;
    try {
      await this.docker.getContainer(made.id).start();
      return true;
    } catch (err) {
      return statusOf(err) === 304;
    }
  }

  async routeState(spec: InstanceSpec): Promise<'ok' | 'missing' | 'changed'> {
    return this.routes.state(this.#routeTarget(spec.annotatorId, spec.subdomain, spec.port));
  }

  /**
   * Whether Traefik has loaded the instance's route, from Traefik's API (TRAEFIK_API_URL,
   * orchestrator/routing/traefik-api.ts): true/false; undefined when no API is configured or it
   * gave no usable answer (the caller then requests through the router).
   */
  async routeLoaded(spec: InstanceSpec): Promise<boolean | undefined> {
    if (!this.config.TRAEFIK_API_URL) return undefined;
    const load = await traefikRouteLoad(this.config.TRAEFIK_API_URL, this.routes.kind, this.#routeTarget(spec.annotatorId, spec.subdomain, spec.port));
    return load === 'unavailable' ? undefined : load === 'loaded';
  }

  async repairRoute(spec: InstanceSpec): Promise<void> {
    await this.routes.ensure(this.#routeTarget(spec.annotatorId, spec.subdomain, spec.port));
  }

  /**
   * Force-removes a container and waits (up to REMOVE_WAIT_MS) until its name is free. Docker's
   * "removal already in progress" (409) is waited out the same way; a container that stays
   * (Docker stuck in "Removal In Progress", or `dead`) is an error the caller counts as a failed
   * restart.
   */
  async #removeAndWait(name: string, state: string): Promise<void> {
    this.#madeAhead.delete(name);
    try {
      await this.docker.getContainer(name).remove({ force: true });
    } catch (err) {
      if (!isMissing(err) && statusOf(err) !== 409) throw new Error(`removing container ${name} (${state}) failed: ${dockerMessage(err)}`);
    }
    const deadline = Date.now() + REMOVE_WAIT_MS;
    while (await this.#inspect(name)) {
      if (Date.now() > deadline) {
        throw new Error(`container ${name} is stuck in state "${state}": Docker did not remove it within ${REMOVE_WAIT_MS / 1000}s`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stop(annotatorId: number): Promise<void> {
    const info = await this.#inspect(this.names.instance(annotatorId));
    if (!info || !this.#ours(info.Config.Labels)) return; // gone, or not ours to stop
    try {
      await this.docker.getContainer(this.names.instance(annotatorId)).stop({ t: STOP_GRACE_SECONDS });
    } catch (err) {
      // 304: already stopped; 404: gone.
      if (statusOf(err) !== 304 && !isMissing(err)) throw err;
    }
  }

  async remove(annotatorId: number, opts: { purgeData?: boolean } = {}): Promise<void> {
    const name = this.names.instance(annotatorId);
    this.#madeAhead.delete(name);
    const info = await this.#inspect(name);
    if (info && !this.#ours(info.Config.Labels)) return; // another installation's: its route and volume too
    try {
      if (info) await this.docker.getContainer(name).remove({ force: true });
    } catch (err) {
      // 409 "removal already in progress" means it is going away: fine.
      if (!isMissing(err) && statusOf(err) !== 409) throw err;
    }
    await this.routes.remove(name);
    if (opts.purgeData) {
      const labels = await this.#volumeLabels(this.names.volume(annotatorId));
      if (labels && !this.#ours(labels)) return;
      try {
        await this.docker.getVolume(this.names.volume(annotatorId)).remove();
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
  }

  /** Where the fleet probes the instance: loopback with host networking, else its name on the fleet network. */
  #address(name: string, port: number) {
    return this.hostNetwork ? { host: '127.0.0.1', port } : { host: name, port };
  }

  #containerIp(info: Docker.ContainerInspectInfo): string | undefined {
    if (this.hostNetwork) return '127.0.0.1';
    const ip = info.NetworkSettings?.Networks?.[this.config.DOCKER_NETWORK]?.IPAddress;
    return ip || undefined;
  }

  async observe(annotatorId: number): Promise<ObservedInstance> {
    const name = this.names.instance(annotatorId);
    const info = await this.#inspect(name);
    if (!info) return { annotatorId, state: 'missing', health: 'unknown' };
    if (!this.#ours(info.Config.Labels)) {
      return { annotatorId, state: 'missing', health: 'unknown', message: `${name} belongs to another installation` };
    }
    const port = Number(info.Config.Labels?.[LABELS.port]) || 8080;
    const state = instanceState(info.State.Status, info.State.ExitCode);
    const hs = info.State.Health?.Status;
    const message =
      state === 'running'
        ? undefined
        : info.State.OOMKilled
          ? 'killed: out of memory'
          : `${info.State.Status}${info.State.Status === 'exited' ? ` with code ${info.State.ExitCode}` : ''}${info.State.Error ? `: ${info.State.Error}` : ''}`;
    return {
      annotatorId,
      state,
      instanceId: name,
      address: this.#address(name, port),
      health: hs === 'healthy' ? 'healthy' : hs === 'unhealthy' ? 'unhealthy' : 'unknown',
      specHash: info.Config.Labels?.[LABELS.specHash],
      restartCount: info.RestartCount,
      message,
      ip: this.#containerIp(info),
    };
  }

  async list(): Promise<ObservedInstance[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: JSON.stringify({ label: [`${LABELS.managed}=true`, `${LABELS.namespace}=${this.names.namespace}`] }),
    });
    const out = new Map<number, ObservedInstance>();
    for (const c of containers) {
      if (!this.#ours(c.Labels)) continue; // another installation sharing this namespace: not ours to sweep
      const fromLabel = Number(c.Labels[LABELS.annotatorId]);
      const annotatorId = Number.isInteger(fromLabel) && fromLabel > 0 ? fromLabel : this.names.parseInstance(c.Names[0] ?? '');
      if (!annotatorId) continue;
      const port = Number(c.Labels[LABELS.port]) || 8080;
      const name = (c.Names[0] ?? '').replace(/^\//, '');
      const exit = /Exited \((\d+)\)/.exec(c.Status);
      out.set(annotatorId, {
        annotatorId,
        state: instanceState(c.State, exit ? Number(exit[1]) : undefined),
        instanceId: name,
        address: this.#address(name, port),
        health: healthFromStatusText(c.Status),
        specHash: c.Labels[LABELS.specHash],
        message: c.Status,
      });
    }
    for (const route of await this.routes.list()) {
      if (!out.has(route.annotatorId)) {
        out.set(route.annotatorId, { annotatorId: route.annotatorId, state: 'missing', health: 'unknown', message: 'route without a container' });
      }
    }
    return [...out.values()].sort((a, b) => a.annotatorId - b.annotatorId);
  }
}
