/**
 * The SSRF guard of webhook deliveries: an endpoint may not reach the registry's own network (loopback, private,
 * link-local and cloud metadata addresses...) unless its host is in `webhooks.allowedHosts`.
 *
 * The check resolves the host name and checks EVERY address it resolves to (a name with one public and one private
 * address is refused), then returns the address the delivery must connect to: the delivery pins it (a custom
 * `lookup`), so a name that resolves differently a moment later (DNS rebinding) cannot redirect the connection.
 */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { parseAddressRange } from '../config/address-range.ts';

/** The endpoint's URL is not allowed (scheme, host, or one of its addresses). */
export class AddressRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressRefusedError';
  }
}

/** The endpoint's host name did not resolve (a failure worth retrying, unlike a refusal). */
export class AddressResolutionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressResolutionError';
  }
}

export interface CheckedAddress {
  /** The address to connect to. */
  readonly address: string;
  readonly family: 4 | 6;
}

/** Ranges a webhook may not reach (IPv4-mapped IPv6 addresses of the IPv4 ones match too: see `BlockList`). */
const FORBIDDEN_RANGES: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this network", including the unspecified 0.0.0.0
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT (and Alibaba's metadata 100.100.100.200)
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata 169.254.169.254
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments (Oracle metadata 192.0.0.192)
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'],
  ['::', 96, 'ipv6'], // IPv4-compatible (deprecated)
  ['64:ff9b::', 96, 'ipv6'], // NAT64: reaches any IPv4 address, private ones included
  ['64:ff9b:1::', 48, 'ipv6'],
  ['fc00::', 7, 'ipv6'], // unique local (AWS metadata fd00:ec2::254)
  ['fe80::', 10, 'ipv6'],
  ['fec0::', 10, 'ipv6'], // site-local (deprecated)
  ['ff00::', 8, 'ipv6'], // multicast
];

/** Names of cloud metadata services, refused whatever they resolve to. */
const FORBIDDEN_NAMES: ReadonlySet<string> = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
]);

const forbidden = new BlockList();
for (const [network, prefix, family] of FORBIDDEN_RANGES) forbidden.addSubnet(network, prefix, family);

/** `[::1]` -> `::1`; names lowercased, without a trailing dot. */
function normalizeHost(host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return bare.toLowerCase().replace(/\.$/, '');
}

function family(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}

/** True when `address` is in a range webhooks may not reach. */
export function isForbiddenAddress(address: string): boolean {
  return forbidden.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

export class AddressGuard {
  readonly #names = new Set<string>();
  readonly #addresses = new BlockList();

  /**
   * `allowedHosts`: host names (matched as written in the URL, case-insensitively), IP addresses and CIDR ranges
   * (matched against the URL's literal address or the addresses a name resolves to) that are allowed although
   * they would be refused.
   */
  constructor(allowedHosts: readonly string[]) {
    for (const entry of allowedHosts) {
      const host = normalizeHost(entry);
      const range = parseAddressRange(host);
      if (range === null) this.#names.add(host);
      else this.#addresses.addSubnet(range.address, range.prefix, range.family);
    }
  }

  /**
   * Resolves `url`'s host and checks it: resolves to the address to connect to (the first one resolved), or
   * throws `AddressRefusedError` (scheme not http/https, a forbidden name, or any resolved address forbidden and
   * not allowed) or `AddressResolutionError` (the name does not resolve).
   */
  async check(url: URL): Promise<CheckedAddress> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AddressRefusedError(
        `scheme ${url.protocol.replace(/:$/, '')} is not allowed; use http or https`,
      );
    }
    const host = normalizeHost(url.hostname);
    if (host === '') throw new AddressRefusedError('the URL has no host');
    const nameAllowed = this.#names.has(host);
    if (!nameAllowed && FORBIDDEN_NAMES.has(host)) {
      throw new AddressRefusedError(`host ${host} is a cloud metadata service`);
    }
    let addresses: CheckedAddress[];
    if (isIP(host) !== 0) {
      addresses = [{ address: host, family: family(host) }];
    } else {
      try {
        const resolved = await lookup(host, { all: true, verbatim: true });
        addresses = resolved.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
      } catch (error) {
        throw new AddressResolutionError(`cannot resolve ${host}: ${(error as Error).message}`);
      }
      if (addresses.length === 0) throw new AddressResolutionError(`${host} resolves to no address`);
    }
    if (!nameAllowed) {
      for (const { address } of addresses) {
        const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
        if (isForbiddenAddress(address) && !this.#addresses.check(address, type)) {
          throw new AddressRefusedError(
            host === address
              ? `address ${address} is loopback, private, link-local or reserved; list it in webhooks.allowedHosts to allow it`
              : `host ${host} resolves to ${address}, a loopback, private, link-local or reserved address; list the host in webhooks.allowedHosts to allow it`,
          );
        }
      }
    }
    return addresses[0] as CheckedAddress;
  }
}
