/**
 * Traefik routing for `<subdomain>.<FLEET_DOMAIN>`: either labels on the container (docker
 * provider) or one dynamic-config file per annotator (file provider). Both are keyed by the
 * instance name, so writing a route twice changes nothing and a restarted fleet finds its routes.
 */

import type { Owner } from '../ownership.ts';

export interface RouteTarget {
  annotatorId: number;
  /** Router and service name: the instance name (`fleet-ls-[<ns>-]<id>`). */
  name: string;
  /** The public host name the router matches. */
  host: string;
  /** Where Traefik forwards to. */
  upstream: { host: string; port: number };
}

export interface RouteProvider {
  readonly kind: 'docker' | 'file';
  /** The installation whose routes these are (file provider: marks files and leaves others' alone). */
  setOwner?(owner: Owner): void;
  /** Labels the container carries for this route (docker provider); none for the file provider. */
  containerLabels(target: RouteTarget): Record<string, string>;
  /** Makes the route exist as described (file provider: written atomically); idempotent. */
  ensure(target: RouteTarget): Promise<void>;
  /**
   * The route as configured compared with `target`: 'ok', 'missing' or 'changed'. Labels live on
   * the container and cannot be edited after it is created, so the docker provider answers 'ok'
   * (a container with other labels has another spec hash and is recreated anyway).
   */
  state(target: RouteTarget): Promise<'ok' | 'missing' | 'changed'>;
  /** Removes the route of that instance name; gone already is success. */
  remove(name: string): Promise<void>;
  /** The routes this provider holds outside containers (file provider), for orphan clean-up. */
  list(): Promise<Array<{ annotatorId: number; name: string }>>;
}
