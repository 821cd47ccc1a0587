/**
 * Whether Traefik has loaded an instance's route, read from Traefik's own API
 * (`GET /api/http/routers/<name>@<provider>` and `/api/http/services/<name>@<provider>`, served
 * on its `traefik` entrypoint when `api.insecure` or an API router is configured; TRAEFIK_API_URL).
 * Two small requests to Traefik instead of a request through Traefik to a Label Studio that may
 * be starved of CPU while it finishes booting: the start's route phase comes after Label Studio
 * answered /health/ directly, so what is left to wait for is Traefik loading the route.
 * Source: https://doc.traefik.io/traefik/operations/api/#endpoints
 */
import { httpGet } from '../http-probe.ts';
import { hostRule } from './docker-labels.ts';
import type { RouteTarget } from './types.ts';

/** 'loaded': router enabled on the wanted host, its service enabled with the wanted server; 'unavailable': the API gave no usable answer. */
export type RouteLoad = 'loaded' | 'not-loaded' | 'unavailable';

interface TraefikRouter {
  status?: string;
  rule?: string;
  service?: string;
}
interface TraefikService {
  status?: string;
  loadBalancer?: { servers?: Array<{ url?: string }> };
  serverStatus?: Record<string, string>;
}

/**
 * The decision on two API answers (pure). The docker provider's server URL carries the address
 * Traefik picked for the container (its IP on the network, or loopback with host networking), so
 * only its port is compared there; the file provider's must be the upstream exactly. A server the
 * service's own health check marks other than UP is not loaded.
 */
export function routeLoadFrom(
  provider: 'docker' | 'file',
  target: RouteTarget,
  router: TraefikRouter | null,
  service: TraefikService | null,
): 'loaded' | 'not-loaded' {
  if (!router || !service) return 'not-loaded';
  if (router.status !== 'enabled' || router.rule !== hostRule(target.host)) return 'not-loaded';
  if (router.service !== target.name && router.service !== `${target.name}@${provider}`) return 'not-loaded';
  if (service.status !== 'enabled') return 'not-loaded';
  const wanted = `http://${target.upstream.host}:${target.upstream.port}`;
  const server = (service.loadBalancer?.servers ?? []).find((s) => {
    if (!s.url) return false;
    if (provider === 'file') return s.url.replace(/\/+$/, '') === wanted;
    try {
      return Number(new URL(s.url).port || 80) === target.upstream.port;
    } catch {
      return false;
    }
  });
  if (!server?.url) return 'not-loaded';
  const health = service.serverStatus?.[server.url];
  return health === undefined || health === 'UP' ? 'loaded' : 'not-loaded';
}

const parse = <T>(body: string): T | undefined => {
  try {
    const v = JSON.parse(body) as unknown;
    return v && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Asks Traefik's API at `apiUrl` whether `target`'s route is loaded (see routeLoadFrom). 404 is
 * 'not-loaded' (not there yet); no answer within `timeoutMs`, another status or a body that is not
 * JSON is 'unavailable' (the caller checks through the router instead).
 */
export async function traefikRouteLoad(apiUrl: string, provider: 'docker' | 'file', target: RouteTarget, timeoutMs = 1000): Promise<RouteLoad> {
  const base = apiUrl.replace(/\/+$/, '');
  const name = encodeURIComponent(`${target.name}@${provider}`);
  const [router, service] = await Promise.all([
    httpGet(`${base}/api/http/routers/${name}`, { timeoutMs }),
    httpGet(`${base}/api/http/services/${name}`, { timeoutMs }),
  ]);
  const read = <T>(res: { status: number; body: string }): T | null | 'unavailable' => {
    if (res.status === 404) return null;
    if (res.status !== 200) return 'unavailable';
    return parse<T>(res.body) ?? 'unavailable';
  };
  const r = read<TraefikRouter>(router);
  const s = read<TraefikService>(service);
  if (r === 'unavailable' || s === 'unavailable') return 'unavailable';
  return routeLoadFrom(provider, target, r, s);
}
