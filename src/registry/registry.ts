/** The registry's use cases, grouped; HTTP routes and CLI commands call these and nothing below them. */
import { BlobService } from './blobs.ts';
import { CatalogService } from './catalog.ts';
import { ManifestService } from './manifests.ts';
import type { RegistryDeps } from './options.ts';
import { ReferrersService } from './referrers.ts';
import { RepositoryService } from './repositories.ts';
import { TagService } from './tags.ts';
import { UploadService } from './uploads.ts';

export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly tags: TagService;
  readonly referrers: ReferrersService;
  readonly catalog: CatalogService;
  readonly repositories: RepositoryService;

  constructor(readonly deps: RegistryDeps) {
    this.blobs = new BlobService(deps);
    this.uploads = new UploadService(deps);
    this.manifests = new ManifestService(deps);
    this.tags = new TagService(deps);
    this.referrers = new ReferrersService(deps);
    this.catalog = new CatalogService(deps);
    this.repositories = new RepositoryService(deps);
  }
}
