/**
 * Absolute URLs for `Location` headers: a configured public URL wins; otherwise `X-Forwarded-Proto` and
 * `X-Forwarded-Host` (first value, when trusted) or the request's own scheme and `Host`. Relative URLs when
 * configured so.
 *
 * Forwarded headers are trusted when `trustForwardedHeaders` is on and, if trusted proxies are configured, the
 * peer is one of them. Without a proxy list they are taken from anyone: they only shape the URLs sent back to the
 * same client, so a client that forges them misleads nobody but itself.
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { ProxyTrust } from './trusted-proxies.ts';

export interface UrlOptions {
  readonly publicUrl: string | null;
  readonly relativeUrls: boolean;
  readonly trustForwardedHeaders: boolean;
  /** The configured trusted proxies (`http.trustedProxies`); null when none are. */
  readonly trustedProxy?: ProxyTrust | null;
}

export class UrlBuilder {
  private readonly publicBase: string | null;

  constructor(private readonly options: UrlOptions) {
    this.publicBase = options.publicUrl ? options.publicUrl.replace(/\/+$/, '') : null;
  }

  /** The base (`scheme://host[:port]`) for this request, or '' for relative URLs. */
  base(request: FastifyRequest): string {
    if (this.options.relativeUrls) return '';
    if (this.publicBase !== null) return this.publicBase;
    const headers = request.headers;
    // The socket's own scheme: Fastify's `request.protocol` follows X-Forwarded-Proto from trusted proxies even
    // when trustForwardedHeaders is off.
    let proto = (request.raw.socket as TLSSocket).encrypted ? 'https' : 'http';
    let host = headers.host ?? '';
    if (this.trustsForwardedHeaders(request)) {
      const fProto = first(headers['x-forwarded-proto']);
      const fHost = first(headers['x-forwarded-host']);
      if (fProto === 'http' || fProto === 'https') proto = fProto;
      if (fHost && /^[A-Za-z0-9.:[\]-]+$/.test(fHost)) host = fHost;
    }
    if (!/^[A-Za-z0-9.:[\]-]+$/.test(host)) return '';
    return `${proto}://${host}`;
  }

  private trustsForwardedHeaders(request: FastifyRequest): boolean {
    const { trustForwardedHeaders, trustedProxy } = this.options;
    return trustForwardedHeaders && (!trustedProxy || trustedProxy(request.raw.socket.remoteAddress));
  }

  /** The absolute base for this request, even when Location URLs are relative (token realms must be absolute). */
  absoluteBase(request: FastifyRequest): string {
    const base = this.options.relativeUrls
      ? new UrlBuilder({ ...this.options, relativeUrls: false }).base(request)
      : this.base(request);
    return base || `${request.protocol}://${request.hostname}`;
  }

  /** An absolute (or, when configured, relative) URL for `path`. */
  url(request: FastifyRequest, path: string): string {
    return `${this.base(request)}${path}`;
  }
}

function first(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s?.split(',')[0]?.trim() || undefined;
}
