/** The repository catalog and the v1 search API that `docker search` / `podman search` use. */
import type { Page } from '../metadata/store.ts';
import type { RegistryDeps } from './options.ts';

export interface SearchResult {
  readonly total: number;
  readonly names: string[];
}

/** Which repositories a caller may see; absent = all. */
export type RepositoryFilter = (repository: string) => boolean;

/** Most matches a filtered search looks at. */
const SEARCH_SCAN_LIMIT = 10_000;

export class CatalogService {
  constructor(private readonly deps: RegistryDeps) {}

  /**
   * Repository names after `last`, at most `limit`, byte-wise sorted; only those `filter` admits, reading the
   * store page by page until the page is full.
   */
  async list(limit: number, last: string | undefined, filter?: RepositoryFilter): Promise<Page<string>> {
    if (!filter) return this.deps.metadata.listRepositories({ limit, after: last });
    const items: string[] = [];
    let after = last;
    const batch = Math.max(limit, 200);
    for (;;) {
      const page = await this.deps.metadata.listRepositories({ limit: batch, after });
      for (const [i, name] of page.items.entries()) {
        if (!filter(name)) continue;
        if (items.length === limit) return { items, hasMore: true };
        items.push(name);
        if (items.length === limit && i === page.items.length - 1 && !page.hasMore)
          return { items, hasMore: false };
      }
      if (!page.hasMore) return { items, hasMore: false };
      after = page.items[page.items.length - 1];
    }
  }

  /**
   * Repositories whose name contains `query` (case-insensitive) and that `filter` admits, page `page` (1-based) of
   * `perPage`. With a filter, at most the first 10,000 matches are considered.
   */
  async search(
    query: string,
    page: number,
    perPage: number,
    filter?: RepositoryFilter,
  ): Promise<SearchResult> {
    const offset = (page - 1) * perPage;
    if (!filter) return this.deps.metadata.searchRepositories(query, { limit: perPage, offset });
    const all = await this.deps.metadata.searchRepositories(query, { limit: SEARCH_SCAN_LIMIT, offset: 0 });
    const visible = all.names.filter(filter);
    return { total: visible.length, names: visible.slice(offset, offset + perPage) };
  }
}
