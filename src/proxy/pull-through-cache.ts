/**
 * The pull-through cache: manifests and blobs of a cached namespace are served from the registry when it has
 * them, and otherwise fetched from the upstream, stored, and served.
 *
 * - A manifest by tag is trusted for the upstream's `recheckInterval` after it was last compared with the
 *   upstream (recorded in the database, so every instance honours the same interval). Then a HEAD upstream
 *   tells whether the tag moved: the same digest serves the cached manifest; a new one is fetched by digest,
 *   verified, stored as its exact bytes (a sparse manifest: its layers come when clients ask for them) and the
 *   local tag moves. When the upstream fails (5xx, 429, timeout, network, refused credentials), what is cached
 *   is served with a `Warning`, and with nothing cached the answer is 429 with the upstream's `Retry-After`, or
 *   503.
 * - A manifest by digest is served locally when present, otherwise fetched and verified.
 * - A blob is served locally when the repository has it, mounted when another repository has it, and
 *   otherwise fetched once (see `blob-flight.ts` within a process). Across instances sharing a database, a
 *   lease per digest lets one instance fetch while the others wait for its commit and then serve from storage.
 *
 * Why the lease is per digest, not per repository: a layer shared by many images is fetched once for all of
 * them. Why the others wait rather than fetch too: the point of the cache is that the upstream sends each blob
 * once; the wait is bounded by the lease, which the fetching instance renews while it streams and which expires
 * when it dies, so a waiter then takes over.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../logger.ts';
import { silentLogger } from '../logger.ts';
import type { BlobLink, ManifestRecord, MetadataStore } from '../metadata/store.ts';
import type { UpstreamStore } from '../metadata/upstream-store.ts';
import type { Digest } from '../oci/digest.ts';
import {
  BlobUnknownError,
  ManifestUnknownError,
  NameUnknownError,
  TooManyRequestsError,
  UnavailableError,
} from '../oci/errors.ts';
import type { Reference } from '../oci/reference.ts';
import { SYSTEM_CONTEXT } from '../registry/events.ts';
import type { Registry } from '../registry/registry.ts';
import { RemoteError, type RegistryClient } from '../remote/registry-client.ts';
import { BlobFlight } from './blob-flight.ts';
import { Semaphore } from './semaphore.ts';
import type { ProxyRoute, UpstreamDirectory } from './upstream-directory.ts';
import type { Upstream } from './upstream.ts';

/** A manifest as the cache serves it. */
export interface CachedManifest {
  readonly record: ManifestRecord;
  /** Set when the upstream could not be asked and the cached manifest is served as it is (a `Warning` value). */
  readonly warning?: string;
  /** Whether it was fetched from the upstream for this request. */
  readonly fetched?: boolean;
}

export interface PullThroughCacheOptions {
  /** The directory blob fetches spool to (emptied of old spool files at start). */
  readonly spoolDir: string;
  /** This process, as the holder of fetch leases. */
  readonly instanceId: string;
  /** How long a fetch lease lasts without renewal (default 30 s). */
  readonly leaseMs?: number;
  /** How long a request waits for another instance's fetch of a blob before answering 503 (default 10 min). */
  readonly maxWaitMs?: number;
  readonly logger?: Logger;
  /** Told of every lookup and of the bytes fetched (the Prometheus metrics). */
  readonly observer?: CacheObserver;
}

export type LookupResult = 'hit' | 'miss' | 'stale' | 'error';

export interface CacheObserver {
  /** A lookup of a manifest or a blob of `upstream` ended with `result`. */
  lookup(upstream: string, kind: 'manifest' | 'blob', result: LookupResult): void;
  /** `bytes` blob bytes were fetched from `upstream`. */
  bytes(upstream: string, bytes: number): void;
}

export interface PullThroughCacheDeps {
  readonly directory: UpstreamDirectory;
  readonly store: UpstreamStore;
  readonly metadata: MetadataStore;
  /** The client of an upstream (the caller caches them). */
  readonly clientFor: (upstream: Upstream) => RegistryClient;
}

const SPOOL_MAX_AGE_MS = 60 * 60 * 1000;
/** Most tags read from an upstream's list for one request. */
const MAX_UPSTREAM_TAGS = 100_000;

export class PullThroughCache {
  #registry: Registry | null = null;
  readonly #flights = new Map<Digest, BlobFlight>();
  readonly #starting = new Map<Digest, Promise<BlobFlight | 'local'>>();
  readonly #manifestChecks = new Map<string, Promise<CachedManifest>>();
  readonly #limits = new Map<string, Semaphore>();
  readonly #leaseMs: number;
  readonly #maxWaitMs: number;
  readonly #logger: Logger;
  #spoolSeq = 0;
  /** The lookups that started a fetch (misses, for the observer). */
  readonly #started = new WeakSet<object>();
  /** The repository each fetch commits the blob into. */
  readonly #flightRepository = new WeakMap<BlobFlight, string>();

  constructor(
    private readonly deps: PullThroughCacheDeps,
    private readonly options: PullThroughCacheOptions,
  ) {
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#maxWaitMs = options.maxWaitMs ?? 10 * 60_000;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The registry the cache writes through (its upload service and manifest put); set once after construction. */
  attach(registry: Registry): void {
    this.#registry = registry;
  }

  /** Creates the spool directory and removes spool files a crash left behind. */
  async prepare(): Promise<void> {
    await mkdir(this.options.spoolDir, { recursive: true });
    const now = Date.now();
    for (const entry of await readdir(this.options.spoolDir)) {
      const file = path.join(this.options.spoolDir, entry);
      const info = await stat(file).catch(() => null);
      if (info && now - info.mtimeMs > SPOOL_MAX_AGE_MS)
        await rm(file, { force: true }).catch(() => undefined);
    }
  }

  /** The upstream route of the local repository `name`, or null when it is not in a cached namespace. */
  routeOf(name: string): Promise<ProxyRoute | null> {
    return this.deps.directory.forRepository(name);
  }

  // --- manifests ----------------------------------------------------------------------------------

  /** The manifest `reference` of the cached repository, from the cache or the upstream (see the top comment). */
  async manifest(route: ProxyRoute, reference: Reference): Promise<CachedManifest> {
    const observer = this.options.observer;
    if (!observer) return this.#manifest(route, reference);
    const name = route.upstream.name;
    try {
      const cached = await this.#manifest(route, reference);
      observer.lookup(
        name,
        'manifest',
        cached.warning !== undefined ? 'stale' : cached.fetched ? 'miss' : 'hit',
      );
      return cached;
    } catch (e) {
      observer.lookup(name, 'manifest', 'error');
      throw e;
    }
  }

  async #manifest(route: ProxyRoute, reference: Reference): Promise<CachedManifest> {
    notAdmitted(route);
    const { metadata } = this.deps;
    const repository = route.localName;
    if (reference.kind === 'digest') {
      const local = await metadata.getManifest(repository, reference.digest);
      if (local) return { record: local };
      return this.#once(`${repository}@${reference.digest}`, () =>
        this.#fetchManifest(route, reference.digest, reference),
      );
    }
    const local = await metadata.getManifestByTag(repository, reference.tag);
    if (local) {
      const check = await this.deps.store.getTagCheck(repository, reference.tag);
      const fresh =
        check !== null &&
        check.digest === local.digest &&
        Date.now() - check.checkedAt.getTime() < route.upstream.settings.recheckInterval;
      if (fresh) return { record: local };
    }
    return this.#once(`${repository}:${reference.tag}`, () => this.#checkTag(route, reference.tag, local));
  }

  /** One check of a tag (or fetch of a digest) in flight per key in this process: the others wait for it. */
  #once(key: string, run: () => Promise<CachedManifest>): Promise<CachedManifest> {
    let pending = this.#manifestChecks.get(key);
    if (!pending) {
      pending = run().finally(() => this.#manifestChecks.delete(key));
      this.#manifestChecks.set(key, pending);
    }
    return pending;
  }

  async #checkTag(route: ProxyRoute, tag: string, local: ManifestRecord | null): Promise<CachedManifest> {
    const { upstream, remoteName, localName } = route;
    const client = this.deps.clientFor(upstream);
    try {
      const head = await this.#limited(upstream, () => client.headManifest(remoteName, tag));
      if (!head) {
        throw new ManifestUnknownError(`${remoteName}:${tag} is not in upstream ${upstream.name}`, {
          detail: { tag },
        });
      }
      if (local && head.digest === local.digest) {
        await this.#recordCheck(localName, tag, local.digest);
        return { record: local };
      }
      // By digest when the upstream named one (the bytes are then verified against it), else by tag.
      return await this.#fetchManifest(route, head.digest ?? tag, { kind: 'tag', tag });
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      if (local && upstream.settings.serveStale) {
        this.#logger.warn(
          { upstream: upstream.name, repository: remoteName, tag, err: e },
          'upstream unavailable: serving the cached manifest',
        );
        return { record: local, warning: staleWarning(upstream, e) };
      }
      throw unavailable(upstream, e);
    }
  }

  /** Fetches `reference` (a digest, or a tag) and stores it in the cache under `as` (its tag, or its digest). */
  async #fetchManifest(route: ProxyRoute, reference: string, as: Reference): Promise<CachedManifest> {
    const { upstream, remoteName, localName } = route;
    const client = this.deps.clientFor(upstream);
    let fetched;
    try {
      fetched = await this.#limited(upstream, () => client.getManifest(remoteName, reference));
    } catch (e) {
      if (e instanceof RemoteError) throw unavailable(upstream, e);
      throw e;
    }
    if (!fetched) {
      throw new ManifestUnknownError(`${remoteName}@${reference} is not in upstream ${upstream.name}`);
    }
    await this.#writer().manifests.put({
      repository: localName,
      reference: as,
      body: fetched.body,
      contentType: fetched.mediaType,
      sparse: true,
      context: SYSTEM_CONTEXT,
    });
    if (as.kind === 'tag') await this.#recordCheck(localName, as.tag, fetched.digest);
    const record = await this.deps.metadata.getManifest(localName, fetched.digest);
    if (!record) throw new ManifestUnknownError(); // deleted at this very moment
    return { record, fetched: true };
  }

  async #recordCheck(repository: string, tag: string, digest: Digest): Promise<void> {
    await this.deps.store.recordTagCheck(repository, tag, { digest, checkedAt: new Date() });
  }

  /**
   * The upstream's tags of the cached repository, sorted byte-wise (at most `MAX_UPSTREAM_TAGS`); null when the
   * upstream cannot be asked (the caller lists the cached tags then) or does not admit the repository.
   */
  async tags(route: ProxyRoute): Promise<string[] | null> {
    if (!route.admitted) return null;
    const client = this.deps.clientFor(route.upstream);
    try {
      return await this.#limited(route.upstream, async () => {
        const tags: string[] = [];
        for await (const tag of client.listTags(route.remoteName)) {
          tags.push(tag);
          if (tags.length >= MAX_UPSTREAM_TAGS) break;
        }
        return tags.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      });
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      this.#logger.warn(
        { upstream: route.upstream.name, err: e },
        'upstream tag list failed: listing cached tags',
      );
      return null;
    }
  }

  // --- blobs ----------------------------------------------------------------------------------------

  /**
   * The blob as the cached repository can serve it: linked already, mounted from another repository, or (for a
   * GET: `fetch`) being fetched from the upstream; for a HEAD, the upstream's answer without fetching.
   * BLOB_UNKNOWN when the upstream does not have it.
   */
  async blob(route: ProxyRoute, digest: Digest, fetch: boolean): Promise<BlobLink> {
    const observer = this.options.observer;
    if (!observer) return this.#blob(route, digest, fetch);
    try {
      const link = await this.#blob(route, digest, fetch);
      observer.lookup(route.upstream.name, 'blob', this.#started.has(link) ? 'miss' : 'hit');
      return link;
    } catch (e) {
      observer.lookup(route.upstream.name, 'blob', 'error');
      throw e;
    }
  }

  async #blob(route: ProxyRoute, digest: Digest, fetch: boolean): Promise<BlobLink> {
    notAdmitted(route);
    const { metadata } = this.deps;
    const local = await metadata.getBlobLink(route.localName, digest);
    if (local) return local;
    const mounted = await this.#mount(route.localName, digest);
    if (mounted) return mounted;
    const active = this.#flights.get(digest);
    if (!fetch) {
      if (active?.state === 'fetching') return { digest, size: active.size };
      const client = this.deps.clientFor(route.upstream);
      let size: number | null;
      try {
        size = await this.#limited(route.upstream, () => client.headBlob(route.remoteName, digest));
      } catch (e) {
        if (e instanceof RemoteError) throw unavailable(route.upstream, e);
        throw e;
      }
      if (size === null) throw new BlobUnknownError(undefined, { detail: { digest } });
      return { digest, size };
    }
    const { flight, started } = await this.#flight(route, digest);
    if (flight === 'local') {
      const link =
        (await metadata.getBlobLink(route.localName, digest)) ?? (await this.#mount(route.localName, digest));
      if (!link) throw new BlobUnknownError(undefined, { detail: { digest } });
      return link;
    }
    if (this.#flightRepository.get(flight) !== route.localName) {
      // Another repository's request started the fetch: link the blob here too once it is committed.
      void flight.finished.then(async () => {
        if (flight.state === 'done') await this.#mount(route.localName, digest).catch(() => null);
      });
    }
    const link = { digest, size: flight.size };
    if (started) this.#started.add(link);
    return link;
  }

  /**
   * A reader of the blob's bytes `start`..`end` while this process fetches it, or null when it does not (the
   * blob is then read from storage).
   */
  reader(digest: Digest, start?: number, end?: number): Readable | null {
    const flight = this.#flights.get(digest);
    if (!flight || flight.state !== 'fetching') return null;
    return flight.reader(start, end);
  }

  /** Whether this process is fetching the blob (its bytes are not in storage yet). */
  fetching(digest: Digest): boolean {
    return this.#flights.get(digest)?.state === 'fetching';
  }

  async #mount(repository: string, digest: Digest): Promise<BlobLink | null> {
    if (!(await this.deps.metadata.findBlob(digest))) return null;
    return this.#writer().uploads.mount(repository, digest, undefined, SYSTEM_CONTEXT);
  }

  /** The flight of `digest` in this process (joined or started), or `local` once another instance stored it. */
  #flight(
    route: ProxyRoute,
    digest: Digest,
  ): Promise<{ readonly flight: BlobFlight | 'local'; readonly started: boolean }> {
    const active = this.#flights.get(digest);
    if (active?.state === 'fetching') return Promise.resolve({ flight: active, started: false });
    let starting = this.#starting.get(digest);
    let started = false;
    if (!starting) {
      started = true;
      starting = this.#startFlight(route, digest).finally(() => this.#starting.delete(digest));
      this.#starting.set(digest, starting);
    }
    return starting.then((flight) => ({ flight, started }));
  }

  async #startFlight(route: ProxyRoute, digest: Digest): Promise<BlobFlight | 'local'> {
    const { metadata } = this.deps;
    const lease = `proxy-blob:${digest}`;
    const holder = this.options.instanceId;
    const deadline = Date.now() + this.#maxWaitMs;
    while (!(await metadata.tryAcquireLease(lease, holder, this.#leaseMs))) {
      // Another instance is fetching it: wait for its commit (or for its lease to expire, then take over).
      if (Date.now() > deadline) {
        throw new UnavailableError(
          `blob ${digest} is still being fetched from upstream ${route.upstream.name}`,
        );
      }
      await delay(250);
      if (await metadata.findBlob(digest)) return 'local';
    }
    let release = true;
    try {
      if (await metadata.findBlob(digest)) return 'local'; // stored just before we got the lease
      const limit = this.#limit(route.upstream);
      await limit.acquire();
      let flight: BlobFlight;
      try {
        const client = this.deps.clientFor(route.upstream);
        let blob;
        try {
          blob = await client.getBlob(route.remoteName, digest);
        } catch (e) {
          if (e instanceof RemoteError) throw unavailable(route.upstream, e);
          throw e;
        }
        if (!blob) throw new BlobUnknownError(undefined, { detail: { digest } });
        const spool = path.join(
          this.options.spoolDir,
          `${digest.replace(':', '-')}.${process.pid}.${++this.#spoolSeq}`,
        );
        await mkdir(this.options.spoolDir, { recursive: true });
        flight = await BlobFlight.start(digest, blob, spool, async (body, size) => {
          // The flight hashes the bytes and ends `body` only when they match the digest.
          await this.#writer().uploads.storeVerified(
            route.localName,
            digest,
            { stream: body, length: size },
            SYSTEM_CONTEXT,
          );
        });
      } catch (e) {
        limit.release();
        throw e;
      }
      this.#flights.set(digest, flight);
      this.#flightRepository.set(flight, route.localName);
      release = false;
      // Renewed while the bytes stream, so that the other instances keep waiting for this one.
      const renew = setInterval(
        () => void metadata.tryAcquireLease(lease, holder, this.#leaseMs).catch(() => undefined),
        Math.max(1_000, Math.floor(this.#leaseMs / 3)),
      );
      renew.unref();
      void flight.finished.then(async () => {
        clearInterval(renew);
        limit.release();
        if (this.#flights.get(digest) === flight) this.#flights.delete(digest);
        this.options.observer?.bytes(route.upstream.name, flight.written);
        if (flight.state === 'failed') {
          this.#logger.warn(
            { upstream: route.upstream.name, repository: route.remoteName, digest, err: flight.error },
            'blob fetch from upstream failed',
          );
        }
        await metadata.releaseLease(lease, holder).catch(() => undefined);
      });
      return flight;
    } finally {
      if (release) await metadata.releaseLease(lease, holder).catch(() => undefined);
    }
  }

  // --- helpers ------------------------------------------------------------------------------------

  #limit(upstream: Upstream): Semaphore {
    const key = `${upstream.source}:${upstream.name}`;
    let limit = this.#limits.get(key);
    if (!limit || limit.capacity !== upstream.settings.maxConcurrentFetches) {
      limit = new Semaphore(upstream.settings.maxConcurrentFetches);
      this.#limits.set(key, limit);
    }
    return limit;
  }

  async #limited<T>(upstream: Upstream, run: () => Promise<T>): Promise<T> {
    const limit = this.#limit(upstream);
    await limit.acquire();
    try {
      return await run();
    } finally {
      limit.release();
    }
  }

  #writer(): Registry {
    if (!this.#registry) throw new Error('the pull-through cache is not attached to a registry');
    return this.#registry;
  }
}

/** A cached namespace serves only the repositories its upstream's globs admit. */
function notAdmitted(route: ProxyRoute): void {
  if (!route.admitted) {
    throw new NameUnknownError(
      `${route.remoteName} is not cached from upstream ${route.upstream.name} (excluded by its repository filters)`,
    );
  }
}

/** The `Warning` of a manifest served without asking the upstream (RFC 7234 code 110, "Response is Stale"). */
function staleWarning(upstream: Upstream, e: RemoteError): string {
  const why = e.details.status !== undefined ? `HTTP ${e.details.status}` : e.kind;
  return `110 berth "Response is Stale: upstream ${upstream.name} unavailable (${why})"`;
}

/** The answer when the upstream fails and nothing is cached: 429 with its Retry-After, or 503. */
function unavailable(upstream: Upstream, e: RemoteError): Error {
  const status = e.details.status;
  if (status === 404) return new ManifestUnknownError();
  const message = `upstream ${upstream.name} is unavailable: ${e.message}`;
  if (status === 429) {
    return new TooManyRequestsError(message, {
      headers: e.details.retryAfter !== undefined ? { 'Retry-After': String(e.details.retryAfter) } : {},
    });
  }
  return new UnavailableError(message, {
    headers: e.details.retryAfter !== undefined ? { 'Retry-After': String(e.details.retryAfter) } : {},
  });
}
