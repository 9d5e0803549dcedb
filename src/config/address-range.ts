/**
 * IP addresses and CIDR ranges as configuration values (`http.trustedProxies`): `192.0.2.7`, `10.0.0.0/8`,
 * `2001:db8::1`, `2001:db8::/32`.
 */
import { isIP } from 'node:net';

export interface AddressRange {
  readonly family: 'ipv4' | 'ipv6';
  /** The network address as written (host bits may be set; they are ignored). */
  readonly address: string;
  /** Prefix length: 1-32 for IPv4, 1-128 for IPv6; a plain address is a /32 or /128. */
  readonly prefix: number;
}

/**
 * Parses an address or a CIDR range; null when `entry` is neither. Zone ids (`fe80::1%eth0`) and a prefix of 0
 * (everyone) are refused: a range that trusts the whole Internet is a mistake, not a setting.
 */
export function parseAddressRange(entry: string): AddressRange | null {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const version = address.includes('%') ? 0 : isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const text = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(text)) return null;
    prefix = Number(text);
    if (prefix < 1 || prefix > max) return null;
  }
  return { family: version === 4 ? 'ipv4' : 'ipv6', address, prefix };
}
