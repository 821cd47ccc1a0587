/**
 * Cross-site request refusal (CSRF): a state-changing request that a browser sent on behalf of
 * another site is refused with 403, unless it authenticates with a credential browsers never
 * attach on their own (a header: X-Webhook-Secret, an `Authorization: Bearer` key).
 *
 * The decision follows the Fetch Metadata algorithm of Go's net/http CrossOriginProtection
 * (Go 1.25), which needs no token and so keeps the documented curl flow working:
 *   1. GET, HEAD and OPTIONS are safe: allowed.
 *   2. `Sec-Fetch-Site` present (every current browser sends it): allowed only when
 *      `same-origin` or `none` (typed by the user). `same-site` is refused on purpose: annotators'
 *      Label Studio instances are sibling subdomains of the fleet domain, and SameSite=Lax
 *      cookies travel between siblings.
 *   3. Otherwise `Origin` present: allowed only when its host (and port) is the request's Host.
 *   4. Neither header: not a browser (curl, scripts, Label Studio): allowed.
 *
 * In: the request's method and headers, and `credential` (app.ts sets it: how the request
 * authenticates). Out: nothing, or a 403 AppError in the error shape.
 */
import type { MiddlewareHandler } from 'hono';
import { AppError } from '../errors.ts';

/**
 * How a request authenticates, the one signal this guard reads. `cookie`: the session cookie
 * (ambient: a browser attaches it to any site's request); `header`: a credential in a header,
 * which another site cannot make a browser send; `none`: no credential (sign-in, public routes).
 */
export type Credential = 'cookie' | 'header' | 'none';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True when the request may change state on behalf of whoever its credential names. */
export function isSameOriginOrNonBrowser(method: string, header: (name: string) => string | undefined): boolean {
  if (SAFE_METHODS.has(method)) return true;
  const site = header('sec-fetch-site');
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  const origin = header('origin');
  if (origin === undefined) return true;
  let originHost: string;
  try {
    originHost = new URL(origin).host; // "null" (sandboxed frames, privacy redirects) throws: refused
  } catch {
    return false;
  }
  return originHost !== '' && originHost === header('host')?.toLowerCase();
}

export function refuseCrossSite(): MiddlewareHandler<{ Variables: { credential: Credential } }> {
  return async (c, next) => {
    if (c.get('credential') !== 'header' && !isSameOriginOrNonBrowser(c.req.method, (n) => c.req.header(n))) {
      throw new AppError(403, 'Cross-site request refused', {
        reason: 'state-changing requests must come from this origin (Origin / Sec-Fetch-Site); see README "Security"',
      });
    }
    return next();
  };
}
