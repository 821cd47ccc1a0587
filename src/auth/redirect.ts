/**
 * Where sign-in sends the browser next (NextAuth's `callbackUrl` → the `url` it answers): only
 * somewhere on this service's own origin.
 *
 * In: the caller's callbackUrl (any string, or undefined) and the service's origin as the request
 * reached it. Out: a path beginning with exactly one "/" (query and fragment kept), or "/" when
 * the target is elsewhere or unparsable. Parsing is the WHATWG URL parser browsers use, so
 * `//evil.example`, `/\evil.example`, tabs or newlines inside the scheme, `javascript:` and
 * absolute URLs of other origins all resolve to another origin and are refused, and a path that
 * resolves to `//…` (e.g. `/.//evil.example`) is collapsed so a browser cannot read it as a host.
 */
export function sameOriginPath(callbackUrl: string | undefined, selfOrigin: string): string {
  if (!callbackUrl) return '/';
  let target: URL;
  let self: URL;
  try {
    self = new URL(selfOrigin);
    target = new URL(callbackUrl, self);
  } catch {
    return '/';
  }
  if (target.origin !== self.origin) return '/';
  return `/${target.pathname.replace(/^\/+/, '')}${target.search}${target.hash}`;
}
