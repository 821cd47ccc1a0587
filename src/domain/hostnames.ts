/**
 * Host names in settings, in their ASCII form. Traefik's Host rule, DNS, TLS certificates and
 * Label Studio's own settings take ASCII host names only: an internationalised name such as
 * `bücher.localhost` is accepted by a URL parser but leaves Traefik's router disabled. So every
 * host name a setting carries is converted once, at start, to its IDNA ASCII form (punycode,
 * `xn--bcher-kva.localhost`; node:url domainToASCII, UTS #46) and checked, and the rest of the
 * fleet only ever sees that form — in the route rule and in every URL alike.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export type HostnameResult = { ok: true; value: string } | { ok: false; message: string };

/**
 * A host name setting in ASCII form. In: a name (any case, Unicode allowed, a trailing dot
 * allowed) or an IP address. Out: the lower-case ASCII name without trailing dot (or the IP as
 * given), or the reason it is not a host name. Rules (RFC 1123 §2.1, RFC 1035 §2.3.4): labels of
 * 1–63 letters, digits and inner hyphens, at most 253 characters in all; `underscore` also allows
 * `_` in labels (container and service names, e.g. `ls_db`, which Docker's DNS resolves).
 */
export function asciiHostname(raw: string, opts: { underscore?: boolean; maxLength?: number } = {}): HostnameResult {
  const input = raw.trim();
  if (isIP(input)) return { ok: true, value: input };
  const name = input.endsWith('.') ? input.slice(0, -1) : input;
  // URL delimiters: the URL host parser behind domainToASCII would cut the name at them ("a/b" → "a").
  const ascii = name === '' || /[\s/\\?#@:%[\]]/.test(name) ? '' : domainToASCII(name);
  if (ascii === '') return { ok: false, message: `"${raw}" is not a host name` };
  const max = opts.maxLength ?? 253;
  if (ascii.length > max) return { ok: false, message: `"${raw}" is longer than ${max} characters in its ASCII form (${ascii})` };
  const label = opts.underscore ? /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/ : /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  const bad = ascii.split('.').find((l) => !label.test(l));
  if (bad !== undefined) {
    return { ok: false, message: `"${raw}" is not a host name: the label "${bad}" must be 1-63 letters, digits or inner hyphens${opts.underscore ? ' (or underscores)' : ''}` };
  }
  return { ok: true, value: ascii };
}

/**
 * A URL setting with its host name in ASCII form (asciiHostname), everything else kept byte for
 * byte (path, port, credentials, trailing slash). A URL without `//` authority is returned as it is.
 */
export function asciiUrl(raw: string): HostnameResult {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([\s\S]*)$/i.exec(raw);
  if (!m) return { ok: true, value: raw };
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const userinfo = authority.slice(0, at + 1);
  const hostPort = authority.slice(at + 1);
  if (hostPort.startsWith('[')) return { ok: true, value: raw }; // an IPv6 literal
  const colon = hostPort.lastIndexOf(':');
  const host = colon >= 0 ? hostPort.slice(0, colon) : hostPort;
  const port = colon >= 0 ? hostPort.slice(colon) : '';
  if (host === '') return { ok: true, value: raw }; // e.g. postgres:///db?host=/var/run/postgresql
  let decoded: string;
  try {
    decoded = decodeURIComponent(host);
  } catch {
    return { ok: false, message: `the host "${host}" is not a host name` };
  }
  const h = asciiHostname(decoded, { underscore: true });
  if (!h.ok) return { ok: false, message: `the host ${h.message.replace(/^"[^"]*" is /, `"${decoded}" is `)}` };
  return { ok: true, value: `${scheme}${userinfo}${h.value}${port}${rest}` };
}
