/**
 * Every upstream the cache knows (the configuration file's and the API's), and the routing of a request's
 * repository name to an upstream:
 * - `/v2/<namespace>/<path>`: the upstream caching into `<namespace>` (`<path>` is its repository);
 * - `?ns=<host>` (the distribution-spec's registry proxying): the upstream with that host, cached as
 *   `<namespace>/<name>`;
 * - mirror mode (dockerd's `registry-mirrors` sends `/v2/library/alpine/...`): the upstream marked `mirror`, for
 *   reads of names that are not local repositories, cached as `<namespace>/<name>`.
 *
 * The list is read from the database at most every `refreshMs` (and at once after a change through this
 * process), so an upstream added on one instance is used by the others within that time.
 */
import type { Logger } from '../logger.ts';
import { silentLogger } from '../logger.ts';
import type { StoredUpstream, UpstreamStore } from '../metadata/upstream-store.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import {
  type Upstream,
  upstreamAdmits,
  upstreamHosts,
  upstreamRepository,
  upstreamSettingsSchema,
  type configUpstreamSchema,
} from './upstream.ts';
import type { z } from 'zod';

export type ConfigUpstream = z.output<typeof configUpstreamSchema>;

/** Where a request's repository is cached from. */
export interface ProxyRoute {
  readonly upstream: Upstream;
  /** The local repository the content is cached in. */
  readonly localName: string;
  /** The upstream's repository. */
  readonly remoteName: string;
  /** Whether the upstream's include and exclude globs admit the repository. */
  readonly admitted: boolean;
  /** How the request found the upstream: its namespace, a `?ns=` host, or the mirror. */
  readonly via: 'namespace' | 'ns' | 'mirror';
}

export interface UpstreamDirectoryOptions {
  /** How long the stored upstreams are used before being read again (default 5 s). */
  readonly refreshMs?: number;
  readonly logger?: Logger;
}

export class UpstreamDirectory {
  readonly #configured: readonly Upstream[];
  #stored: readonly Upstream[] = [];
  #readAt = -Infinity;
  #reading: Promise<void> | null = null;
  readonly #refreshMs: number;
  readonly #logger: Logger;

  constructor(
    configured: readonly ConfigUpstream[],
    private readonly store: UpstreamStore,
    private readonly secrets: SecretBox,
    options: UpstreamDirectoryOptions = {},
  ) {
    this.#configured = configured.map((c) => {
      const { name, namespace, username, password, ...settings } = c;
      return {
        name,
        namespace,
        settings,
        credentials: username !== null ? { username, password: password ?? '' } : null,
        source: 'config' as const,
      };
    });
    checkDistinct(this.#configured);
    this.#refreshMs = options.refreshMs ?? 5_000;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The configured upstreams (available without the database). */
  get configured(): readonly Upstream[] {
    return this.#configured;
  }

  /** Every upstream: the configuration's, then the stored ones. */
  async all(): Promise<readonly Upstream[]> {
    await this.#refresh();
    return this.#stored.length === 0 ? this.#configured : [...this.#configured, ...this.#stored];
  }

  /** Reads the stored upstreams again on next use (after a change through the API). */
  invalidate(): void {
    this.#readAt = -Infinity;
  }

  /** The upstream whose namespace holds the local repository `name`, with the upstream's repository. */
  async forRepository(name: string): Promise<ProxyRoute | null> {
    const all = await this.all();
    let best: Upstream | null = null;
    for (const u of all) {
      if (name.startsWith(`${u.namespace}/`) && (!best || u.namespace.length > best.namespace.length))
        best = u;
    }
    if (!best) return null;
    return routeOf(best, name, name.slice(best.namespace.length + 1), 'namespace');
  }

  /**
   * The route of a request for `name`: by namespace, by `?ns=` host (`nsHost`), or through the mirror for reads
   * (`read`) of names for which `isLocal` says no local repository exists. Null: a local repository.
   */
  async resolve(
    name: string,
    nsHost: string | undefined,
    read: boolean,
    isLocal: (name: string) => Promise<boolean>,
  ): Promise<ProxyRoute | null> {
    const all = await this.all();
    if (all.length === 0) return null;
    const byNamespace = await this.forRepository(name);
    if (byNamespace) return byNamespace;
    if (nsHost !== undefined) {
      const host = nsHost.toLowerCase();
      const upstream = all.find((u) => upstreamHosts(u).has(host));
      if (upstream) {
        const route = routeOf(
          upstream,
          `${upstream.namespace}/${upstreamRepository(upstream, name)}`,
          name,
          'ns',
        );
        if (route.admitted) return route;
      }
    }
    const mirror = all.find((u) => u.settings.mirror);
    if (mirror && read && !(await isLocal(name))) {
      const route = routeOf(
        mirror,
        `${mirror.namespace}/${upstreamRepository(mirror, name)}`,
        name,
        'mirror',
      );
      if (route.admitted) return route;
    }
    return null;
  }

  async #refresh(): Promise<void> {
    if (performance.now() - this.#readAt < this.#refreshMs) return;
    this.#reading ??= this.#read().finally(() => (this.#reading = null));
    await this.#reading;
  }

  async #read(): Promise<void> {
    const rows = await this.store.list();
    const stored: Upstream[] = [];
    for (const row of rows) {
      try {
        stored.push(await this.#fromRow(row));
      } catch (e) {
        // One unusable row (a key that changed) must not take the others down.
        this.#logger.error(
          { err: e, upstream: row.name },
          'upstream skipped: its stored settings are unusable',
        );
      }
    }
    this.#stored = stored;
    this.#readAt = performance.now();
  }

  async #fromRow(row: StoredUpstream): Promise<Upstream> {
    const settings = upstreamSettingsSchema.parse(row.settings);
    const password = row.sealedPassword !== null ? await this.secrets.open(row.sealedPassword) : null;
    return {
      name: row.name,
      namespace: row.namespace,
      settings,
      credentials: row.username !== null ? { username: row.username, password: password ?? '' } : null,
      source: 'api',
    };
  }
}

function routeOf(upstream: Upstream, localName: string, rest: string, via: ProxyRoute['via']): ProxyRoute {
  const remoteName = upstreamRepository(upstream, rest);
  return { upstream, localName, remoteName, admitted: upstreamAdmits(upstream, remoteName), via };
}

/** Configured upstreams must not share a name or a namespace, and at most one may be the mirror. */
function checkDistinct(upstreams: readonly Upstream[]): void {
  const names = new Set<string>();
  const namespaces = new Set<string>();
  let mirrors = 0;
  for (const u of upstreams) {
    if (names.has(u.name)) throw new Error(`proxy.upstreams: the name ${u.name} is used twice`);
    if (namespaces.has(u.namespace))
      throw new Error(`proxy.upstreams: the namespace ${u.namespace} is used twice`);
    names.add(u.name);
    namespaces.add(u.namespace);
    if (u.settings.mirror) mirrors++;
  }
  if (mirrors > 1) throw new Error('proxy.upstreams: at most one upstream may be the mirror');
}
