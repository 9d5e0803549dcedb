/**
 * Where a `/v2` request's repository name goes when the pull-through cache is on: to a cached repository (by
 * namespace, by `?ns=` host, or through the mirror), or to the local repository it names.
 */
import type { MetadataStore } from '../metadata/store.ts';
import type { UpstreamDirectory } from './upstream-directory.ts';

/** A request's repository as the cache sees it. */
export interface CachedName {
  /** The local repository that holds the cached content. */
  readonly localName: string;
  /** The upstream's name, for messages. */
  readonly upstream: string;
  /** The upstream's URL, for messages. */
  readonly url: string;
  /** Whether the route came from `?ns=` (the response then carries `OCI-Namespace`). */
  readonly byNamespaceHost: boolean;
}

export class ProxyRouter {
  constructor(
    private readonly directory: UpstreamDirectory,
    private readonly metadata: MetadataStore,
  ) {}

  /**
   * The cached repository a request for `name` goes to, or null for a local repository. `nsHost` is the
   * request's `?ns=`; `read` tells a GET or HEAD (only reads go through the mirror).
   */
  async route(name: string, nsHost: string | undefined, read: boolean): Promise<CachedName | null> {
    const route = await this.directory.resolve(name, nsHost, read, (n) => this.metadata.repositoryExists(n));
    if (!route) return null;
    return {
      localName: route.localName,
      upstream: route.upstream.name,
      url: route.upstream.settings.urls[0] as string,
      byNamespaceHost: route.via === 'ns',
    };
  }

  /**
   * The cached repository whose rights decide a token's pull of `name` when `name` is a mirror name (what
   * dockerd asks a token for), or null.
   */
  async aliasOf(name: string): Promise<string | null> {
    const route = await this.route(name, undefined, true);
    return route && route.localName !== name ? route.localName : null;
  }
}
