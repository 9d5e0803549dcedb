/**
 * Whose `X-Forwarded-For` is believed (`http.trustedProxies`).
 *
 * The client address of a request is found by walking its chain of addresses from the nearest hop outwards: the
 * socket's peer, then the entries of `X-Forwarded-For` from right to left. A trusted address is one of our proxies,
 * which appended the address it saw (nginx: `$proxy_add_x_forwarded_for`); the first address that is not trusted
 * is the client. A client can put anything at the left of the header, but nothing right of what our own proxy
 * appends, so the rightmost untrusted address cannot be forged. When every address of the chain is trusted, the
 * leftmost one is the client. Fastify walks the chain (its `trustProxy` option, given the predicate built here)
 * and `request.ip` is the result, so the access log, the audit log and the login limiter all see the client.
 */
import { BlockList, isIP } from 'node:net';
import { parseAddressRange } from '../config/address-range.ts';

/** True when `address` (as a socket or `X-Forwarded-For` gives it) is a trusted proxy. */
export type ProxyTrust = (address: string | undefined) => boolean;

/**
 * The predicate for the ranges of `entries` (validated configuration: a bad entry throws TypeError), or null for
 * an empty list (trust nobody). An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a dual-stack listener reports)
 * matches IPv4 ranges.
 */
export function proxyTrust(entries: readonly string[]): ProxyTrust | null {
  if (entries.length === 0) return null;
  const trusted = new BlockList();
  for (const entry of entries) {
    const range = parseAddressRange(entry);
    if (range === null) throw new TypeError(`not an IP address or CIDR range: ${entry}`);
    trusted.addSubnet(range.address, range.prefix, range.family);
  }
  return (address) => {
    const version = address === undefined ? 0 : isIP(address);
    return version !== 0 && trusted.check(address as string, version === 4 ? 'ipv4' : 'ipv6');
  };
}
