/** Fastify options of the HTTP server from `http.*`: TLS, and whose forwarded addresses are believed. */
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { ProxyTrust } from './trusted-proxies.ts';

/** Fastify options for believing `trust`ed proxies; `https` when serving TLS. */
export function serverOptions(https: HttpsServerOptions | null, trust: ProxyTrust | null) {
  return {
    ...(https ? { https } : {}),
    ...(trust ? { trustProxy: (address: string) => trust(address) } : {}),
  };
}
