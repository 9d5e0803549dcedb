/**
 * How the HTTP server treats connections: the timeouts and the connection ceiling of `http.*`, and whose
 * forwarded addresses are believed. Node's and Fastify's defaults are replaced explicitly, each for a reason:
 *
 * | limit                    | Node 20-24                       | Fastify 5 | Berth                                        |
 * | ------------------------ | -------------------------------- | --------- | -------------------------------------------- |
 * | complete request headers | 60 s, checked every 30 s         | -         | `http.headersTimeout` (30 s), checked each s |
 * | whole request            | `requestTimeout` 300 s           | 0 (none)  | none: an upload that keeps flowing goes on   |
 * | socket idle              | none                             | none      | none: hashing a large upload may take long   |
 * | idle keep-alive          | 5 s                              | 72 s      | `http.keepAliveTimeout` (75 s)               |
 * | stalled request body     | none                             | none      | `http.bodyIdleTimeout` (60 s), raw-body.ts   |
 * | TLS handshake            | 120 s                            | -         | `http.headersTimeout`                        |
 * | open connections         | unlimited                        | -         | `http.maxConnections` (4096)                 |
 */
import type { Server } from 'node:net';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { ProxyTrust } from './trusted-proxies.ts';

/** Fastify options for the timeouts of `http` and for believing `trust`ed proxies; `https` when serving TLS. */
export function serverOptions(
  http: Config['http'],
  https: HttpsServerOptions | null,
  trust: ProxyTrust | null,
) {
  const node = {
    headersTimeout: http.headersTimeout,
    requestTimeout: 0,
    // Node looks for connections past headersTimeout on this interval (30 s by default, which would let a slow
    // client hold a connection for up to twice the timeout).
    connectionsCheckingInterval: Math.min(1000, http.headersTimeout),
  };
  return {
    ...(https ? { https: { ...https, ...node, handshakeTimeout: http.headersTimeout } } : { http: node }),
    keepAliveTimeout: http.keepAliveTimeout,
    requestTimeout: 0,
    connectionTimeout: 0,
    ...(trust ? { trustProxy: trust } : {}),
  };
}

/**
 * Caps the open connections of `server` at `max`: Node closes connections beyond it as soon as they are
 * accepted. Warns when that happens, at most once a minute, with the number of connections closed meanwhile.
 */
export function limitConnections(server: Server, max: number, log: FastifyBaseLogger): void {
  server.maxConnections = max;
  let dropped = 0;
  let lastWarning = Number.NEGATIVE_INFINITY;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - lastWarning < 60_000) return;
    log.warn({ dropped, maxConnections: max }, 'connection limit reached: new connections are closed');
    lastWarning = now;
    dropped = 0;
  });
}
