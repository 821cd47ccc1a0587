/**
 * Where outbound webhooks may connect: a pure decision over one IP address (ipaddr.js parses and
 * classifies it, IPv4-mapped IPv6 counting as the IPv4 it carries).
 *
 * - Never: link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services live there,
 *   e.g. 169.254.169.254), the AWS metadata service's IPv6 address fd00:ec2::254, unspecified,
 *   broadcast and multicast addresses — whatever the setting says. A NAT64 address (64:ff9b::/96)
 *   is judged by the IPv4 address it embeds too.
 * - Otherwise: only what the setting `webhooks.allowedNetworks` allows — a list whose items are
 *   CIDRs ("10.0.0.0/8", "127.0.0.1/32", "::1/128") or the word "public" (any address ipaddr.js
 *   classifies as global unicast).
 */
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

export interface NetworkPolicy {
  public: boolean;
  cidrs: Cidr[];
}

const NEVER: Cidr[] = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128'].map((c) => ipaddr.parseCIDR(c));
const NEVER_RANGES = new Set(['linkLocal', 'unspecified', 'broadcast', 'multicast']);

/**
 * Parses the setting's value: an array of "public" and CIDR strings. Returns null when the value
 * is not such an array (callers fall back to the default) — one bad item invalidates the list.
 */
export function parseNetworkPolicy(value: unknown): NetworkPolicy | null {
  if (!Array.isArray(value) || value.length > 256) return null;
  const policy: NetworkPolicy = { public: false, cidrs: [] };
  for (const item of value) {
    if (item === 'public') policy.public = true;
    else if (typeof item === 'string' && isCidr(item)) policy.cidrs.push(ipaddr.parseCIDR(item));
    else return null;
  }
  return policy;
}

/** Whether `s` is a CIDR ipaddr.js accepts ("10.0.0.0/8", "::1/128"). */
export function isCidr(s: string): boolean {
  try {
    ipaddr.parseCIDR(s);
    return true;
  } catch {
    return false;
  }
}

const inCidr = (a: Address, [net, bits]: Cidr) => a.kind() === net.kind() && a.match(net as never, bits);

/** Why `address` may not be connected to, or null when it may. A string that is not an IP address is refused. */
export function refusal(address: string, policy: NetworkPolicy): string | null {
  let a: Address;
  try {
    a = ipaddr.process(address);
  } catch {
    return `${address} is not an IP address`;
  }
  const embedded = a.kind() === 'ipv6' && a.range() === 'rfc6052' ? ipaddr.IPv4.parse((a as ipaddr.IPv6).toByteArray().slice(12).join('.')) : null;
  for (const x of embedded ? [a, embedded] : [a]) {
    if (NEVER_RANGES.has(x.range()) || NEVER.some((c) => inCidr(x, c))) {
      return `${address} is a ${x.range() === 'unicast' || x.range() === 'uniqueLocal' ? 'cloud metadata' : x.range()} address: never a webhook destination`;
    }
  }
  if (policy.public && a.range() === 'unicast') return null;
  if (policy.cidrs.some((c) => inCidr(a, c))) return null;
  return `${address} (${a.range()}) is not in webhooks.allowedNetworks`;
}
