/**
 * Changes (issue 3, Docker backend):
 * - `remove(id, { purgeData })`: purgeData also deletes the instance's own data store (Docker: the
 *   named media volume). Callers pass it only when the annotator is deleted with the setting
 *   `fleet.deleteDatabaseOnDelete`; ECS may ignore it (it keeps no per-instance volume).
 * - `list()` returns only this fleet's instances (FLEET_NAMESPACE), and also routes left without an
 *   instance (state 'missing'), so orphan clean-up sees them.
 * - `observe`'s address is what the fleet itself probes (GET /health/); in tests 127.0.0.1:<port>.
 *   New optional `ip`: the instance's IP, shown as the annotator's containerIp.
 *
 * One shape for every place an annotator's Label Studio can run (design.md "Backend interface").
 * Docker: a container `fleet-ls-<id>` plus its Traefik route. ECS: a service plus its target group
 * and listener rule. Every method is idempotent and keyed by annotator id, so a restarted process
 * finds its instances again; "not found" from the platform means gone, not an error.
 */

import type { Owner } from '../ownership.ts';

export interface InstanceSpec {
  annotatorId: number;
  subdomain: string;
  image: string;
  /** Environment for the Label Studio entrypoint, secrets included (never logged). */
  env: Record<string, string>;
  /** Port Label Studio listens on inside the instance. */
  port: number;
  memoryMb: number;
  cpus: number;
  /** Hash of image, env and limits: a changed hash means the instance must be recreated. */
  specHash: string;
}

export type InstanceState = 'running' | 'starting' | 'stopped' | 'failed' | 'missing';

export interface ObservedInstance {
  annotatorId: number;
  state: InstanceState;
  /** Platform id: container name/id, or ECS service ARN. */
  instanceId?: string;
  /** Where the fleet reaches Label Studio directly (not through the router). */
  address?: { host: string; port: number };
  /** The instance's IP address, reported as the annotator's containerIp (optional). */
  ip?: string;
  health: 'healthy' | 'unhealthy' | 'unknown';
  specHash?: string;
  restartCount?: number;
  message?: string;
}

export interface Backend {
  /** 'memory': the in-memory test backend (test/helpers/memory-backend.ts), never built by createBackend. */
  readonly kind: 'docker' | 'ecs' | 'memory';
  /** Creates whatever is missing (instance, route) and makes it run the spec. */
  ensure(spec: InstanceSpec): Promise<ObservedInstance>;
  /**
   * Creates the instance without starting it when nothing of it exists yet (no image pull): what
   * `ensure` would do first, done ahead of a start — when a created annotator's database is made
   * ahead of its first start, with the spec of that start — so the start only starts it. Best
   * effort: `ensure` creates whatever this did not, and replaces an instance of another spec.
   * Optional: a backend without a cheap create leaves it out (nothing is then made ahead).
   * Resolves true when an instance is there now (made, or found), false when none was made (the
   * image not on this host).
   */
  create?(spec: InstanceSpec): Promise<boolean>;
  /** Stops the instance, keeping what a quick restart needs (data, route/rule). */
  stop(annotatorId: number): Promise<void>;
  /** Removes the instance and its route; gone already is success. */
  remove(annotatorId: number, opts?: { purgeData?: boolean }): Promise<void>;
  observe(annotatorId: number): Promise<ObservedInstance>;
  /** Everything carrying this fleet's label/tag (its namespace), routes included, for orphan clean-up. */
  list(): Promise<ObservedInstance[]>;
  /**
   * The instance's route as configured, compared with what `spec` wants: 'ok', 'missing' or
   * 'changed' (edited by hand, or another target). Optional: a backend whose routes cannot drift
   * apart from the instance (ECS rules are checked by ensure) leaves it out.
   */
  routeState?(spec: InstanceSpec): Promise<'ok' | 'missing' | 'changed'>;
  /**
   * This installation (orchestrator/ownership.ts): from then on the backend marks what it creates
   * and leaves resources marked by another installation alone. Optional: ECS does not mark yet.
   */
  setOwner?(owner: Owner): void;
  /**
   * Whether the router has loaded the instance's route (asked of the router's own API, not through
   * it): true/false, undefined when it cannot tell — the caller then requests through the router.
   * Optional: ECS's load balancer rules are in place once ensure returned.
   */
  routeLoaded?(spec: InstanceSpec): Promise<boolean | undefined>;
  /** Writes the instance's route again as `spec` wants it, touching nothing else (present with routeState). */
  repairRoute?(spec: InstanceSpec): Promise<void>;
}
