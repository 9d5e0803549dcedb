/** The registry's use cases, grouped; HTTP routes and CLI commands call these and nothing below them. */
import { BlobService } from './blobs.ts';
import { CatalogService } from './catalog.ts';
import { ManifestService } from './manifests.ts';
import type { RegistryDeps } from './options.ts';
import { ReferrersService } from './referrers.ts';
import { RepositoryService } from './repositories.ts';
import { TagService } from './tags.ts';
import { UploadService } from './uploads.ts';

/**
 * Replacements of services by decorators of them (the pull-through cache serves cached namespaces through
 * subclasses of the manifest and blob services).
 */
export interface RegistryServiceFactories {
  readonly manifests?: (deps: RegistryDeps) => ManifestService;
  readonly blobs?: (deps: RegistryDeps) => BlobService;
  readonly tags?: (deps: RegistryDeps) => TagService;
}

export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly tags: TagService;
  readonly referrers: ReferrersService;
  readonly catalog: CatalogService;
  readonly repositories: RepositoryService;

  constructor(
    readonly deps: RegistryDeps,
    factories: RegistryServiceFactories = {},
  ) {
    this.blobs = factories.blobs?.(deps) ?? new BlobService(deps);
    this.uploads = new UploadService(deps);
    this.manifests = factories.manifests?.(deps) ?? new ManifestService(deps);
    this.tags = factories.tags?.(deps) ?? new TagService(deps);
    this.referrers = new ReferrersService(deps);
    this.catalog = new CatalogService(deps);
    this.repositories = new RepositoryService(deps);
  }
}
