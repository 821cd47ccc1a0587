/**
 * Routes as Docker labels, read by Traefik's docker provider (traefik/traefik.yml: exposedByDefault
 * false, constraint labelfleet.managed=true). The route lives and dies with the container, so
 * ensure/remove/list have nothing to do. With host networking Traefik (running on the host)
 * reaches the container at 127.0.0.1:<port>; on the fleet network at the container's address.
 */
import type { RouteProvider, RouteTarget } from './types.ts';

/** Traefik's rule syntax: back-quoted host names. A host never contains a back quote (DNS labels). */
export const hostRule = (host: string) => `Host(\`${host}\`)`;

export function dockerLabelRoutes(opts: { entrypoint: string; network?: string }): RouteProvider {
  return {
    kind: 'docker',
    containerLabels(t: RouteTarget) {
      const labels: Record<string, string> = {
        'traefik.enable': 'true',
        [`traefik.http.routers.${t.name}.rule`]: hostRule(t.host),
        [`traefik.http.routers.${t.name}.entrypoints`]: opts.entrypoint,
        [`traefik.http.routers.${t.name}.service`]: t.name,
        [`traefik.http.services.${t.name}.loadbalancer.server.port`]: String(t.upstream.port),
      };
      if (opts.network) labels['traefik.docker.network'] = opts.network;
      return labels;
    },
    ensure: async () => {},
    state: async () => 'ok' as const,
    remove: async () => {},
    list: async () => [],
  };
}
