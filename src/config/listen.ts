/** Listen addresses (`HOST:PORT`, `[v6]:PORT`, `:PORT`) as configured for the registry and the metrics. */

/** Splits `HOST:PORT` (`[v6]:PORT` for IPv6); an empty host is every IPv4 address, `0.0.0.0`. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  return { host, port: Number(listen.slice(i + 1)) };
}

/** `HOST:PORT` other processes on this machine can reach the listener at: a wildcard host becomes loopback. */
export function reachableAddress(listen: string): string {
  const { host, port } = parseListen(listen);
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return reachable.includes(':') ? `[${reachable}]:${port}` : `${reachable}:${port}`;
}
