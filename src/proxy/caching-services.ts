/**
 * The manifest and blob services with the pull-through cache in front of them for repositories in a cached
 * namespace (decorators, as Distribution's proxy wraps its blob and manifest stores); other repositories are
 * served as they are.
 */
import type { Readable } from 'node:stream';
import type { BlobLink, ManifestRecord, Page } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import type { Reference } from '../oci/reference.ts';
import { BlobService, type OpenBlob } from '../registry/blobs.ts';
import { ManifestService } from '../registry/manifests.ts';
import { TagService } from '../registry/tags.ts';
import type { RegistryDeps } from '../registry/options.ts';
import type { ByteRange } from '../storage/driver.ts';
import type { PullThroughCache } from './pull-through-cache.ts';

export class CachingManifestService extends ManifestService {
  constructor(
    deps: RegistryDeps,
    private readonly cache: PullThroughCache,
  ) {
    super(deps);
  }

  /** From the cache (or its upstream) in a cached namespace; see `pull-through-cache.ts`. */
  override async get(repository: string, reference: Reference): Promise<ManifestRecord> {
    const route = await this.cache.routeOf(repository);
    if (!route) return super.get(repository, reference);
    const cached = await this.cache.manifest(route, reference);
    return cached.warning !== undefined ? { ...cached.record, warning: cached.warning } : cached.record;
  }
}

export class CachingBlobService extends BlobService {
  constructor(
    deps: RegistryDeps,
    private readonly cache: PullThroughCache,
  ) {
    super(deps);
  }

  /**
   * In a cached namespace, a blob missing here is mounted from another repository or taken from the upstream:
   * a GET (`checkStorage` false) starts or joins its fetch, a HEAD asks the upstream for its size.
   */
  override async stat(repository: string, digest: Digest, checkStorage = false): Promise<BlobLink> {
    const route = await this.cache.routeOf(repository);
    if (!route) return super.stat(repository, digest, checkStorage);
    const link = await this.cache.blob(route, digest, !checkStorage);
    // A HEAD must not promise bytes storage does not have (an earlier fetch that lost them): fetch again then.
    if (checkStorage && link.size > 0 && !this.cache.fetching(digest)) {
      try {
        return await super.stat(repository, digest, true);
      } catch {
        return link;
      }
    }
    return link;
  }

  /** The bytes of a blob being fetched come from its fetch; the others from storage. */
  override async open(
    repository: string,
    digest: Digest,
    size: number,
    range?: ByteRange,
  ): Promise<OpenBlob> {
    const reader: Readable | null = this.cache.reader(digest, range?.start, range?.end);
    if (reader) return { size, body: reader };
    return super.open(repository, digest, size, range);
  }

  /** No redirect to storage for a blob whose bytes are still arriving. */
  override async redirectUrl(digest: Digest): Promise<string | null> {
    if (this.cache.fetching(digest)) return null;
    return super.redirectUrl(digest);
  }
}

export class CachingTagService extends TagService {
  constructor(
    deps: RegistryDeps,
    private readonly cache: PullThroughCache,
  ) {
    super(deps);
  }

  /** A cached repository lists its upstream's tags (the cached ones when the upstream fails). */
  override async list(repository: string, limit: number, last: string | undefined): Promise<Page<string>> {
    const route = await this.cache.routeOf(repository);
    const remote = route ? await this.cache.tags(route) : null;
    if (remote === null) return super.list(repository, limit, last);
    const rest = last === undefined ? remote : remote.filter((t) => t > last);
    return { items: rest.slice(0, limit), hasMore: rest.length > limit };
  }
}
