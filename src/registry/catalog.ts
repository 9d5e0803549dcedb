/** The repository catalog and the v1 search API that `docker search` / `podman search` use. */
import type { Page } from '../metadata/store.ts';
import type { RegistryDeps } from './options.ts';

export interface SearchResult {
  readonly total: number;
  readonly names: string[];
}

export class CatalogService {
  constructor(private readonly deps: RegistryDeps) {}

  /** Repository names after `last`, at most `limit`, byte-wise sorted. */
  list(limit: number, last: string | undefined): Promise<Page<string>> {
    return this.deps.metadata.listRepositories({ limit, after: last });
  }

  /** Repositories whose name contains `query` (case-insensitive), page `page` (1-based) of `perPage`. */
  search(query: string, page: number, perPage: number): Promise<SearchResult> {
    return this.deps.metadata.searchRepositories(query, { limit: perPage, offset: (page - 1) * perPage });
  }
}
