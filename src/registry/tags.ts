/** Tag listing, paginated as the spec's `n`/`last`. */
import type { Page } from '../metadata/store.ts';
import { NameUnknownError } from '../oci/errors.ts';
import type { RegistryDeps } from './options.ts';

export class TagService {
  constructor(private readonly deps: RegistryDeps) {}

  /** Tags of `repository` after `last`, at most `limit`; NAME_UNKNOWN when the repository does not exist. */
  async list(repository: string, limit: number, last: string | undefined): Promise<Page<string>> {
    const page = await this.deps.metadata.listTags(repository, { limit, after: last });
    if (page.items.length === 0 && !(await this.deps.metadata.repositoryExists(repository))) {
      throw new NameUnknownError(undefined, { detail: { name: repository } });
    }
    return page;
  }
}
