/**
 * Who is asking: the address the sign-in throttle keys a client by.
 *
 * In: the TCP peer address (@hono/node-server puts the socket in `c.env.incoming`), the
 * `X-Forwarded-For` header, and TRUST_PROXY_HOPS — how many proxies of yours stand in front of
 * the service. With 0 (the default) the header is ignored: anyone can write it. With N, the
 * rightmost N hops of the chain `X-Forwarded-For…, peer` were appended by your proxies, and the
 * client is the entry just before them (a shorter chain: its leftmost entry), as Express's
 * `trust proxy = N` reads it.
 *
 * Out: an IPv4 address (IPv4-mapped IPv6 unwrapped), an IPv6 /64 prefix (`2001:db8:0:1::/64`:
 * one subscriber usually holds a whole /64, so single addresses would give an attacker 2^64
 * clients), or `unknown` when there is no socket (in-process requests in tests).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Context } from 'hono';

export function clientAddress(c: Context, trustProxyHops: number): string {
  const picked = pickClient(c, trustProxyHops);
  return picked ? normalizeAddress(picked) : 'unknown';
}

/** The client's address as clientAddress picks it, before normalizing; undefined without a socket. */
function pickClient(c: Context, trustProxyHops: number): string | undefined {
  const peer = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress;
  const chain = trustProxyHops > 0 ? (c.req.header('x-forwarded-for') ?? '').split(',').map((s) => s.trim()).filter(Boolean) : [];
  if (peer) chain.push(peer);
  return chain[chain.length - 1 - trustProxyHops] ?? chain[0];
}

/**
 * Whether the request comes from this machine, by both of what a remote browser cannot fake: the
 * client (as clientAddress picks it) is a loopback address, and the host it asked for is one
 * (`localhost`, 127.0.0.0/8, `[::1]`) — a DNS-rebinding page on this machine asks for its own
 * name. A request with no socket (in-process) is this machine's.
 */
export function fromThisMachine(c: Context, trustProxyHops: number): boolean {
  const picked = pickClient(c, trustProxyHops);
  return isLoopback(new URL(c.req.url).hostname) && (picked === undefined || isLoopback(picked));
}

function isLoopback(host: string): boolean {
  const a = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return a === 'localhost' || a === '::1' || (isIPv4(a) && a.startsWith('127.'));
}

/** See clientAddress: IPv4 as is, IPv6 as its /64, anything else (not an IP) as given, lower-cased. */
export function normalizeAddress(address: string): string {
  const a = address.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return a.slice(0, 64);
  const [head, tail] = a.split('%')[0]!.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
