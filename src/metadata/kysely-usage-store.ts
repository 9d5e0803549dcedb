/**
 * The UsageStore on top of Kysely: reads of the usage the writes maintain (`usage-accounting.ts`), the quota
 * setting, and repository summaries computed when asked.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database, SqlDialect } from './schema.ts';
import type { Page } from './store.ts';
import type { NamespaceUsage, RepositorySummary, UsageStore } from './usage.ts';

interface UsageRow {
  namespace: string;
  bytes: number | string;
  quota_bytes: number | string | null;
}

export class KyselyUsageStore implements UsageStore {
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {}

  async namespaceUsage(namespace: string): Promise<NamespaceUsage> {
    const row = await this.db
      .selectFrom('namespace_usage')
      .selectAll()
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return row === undefined ? { namespace, bytes: 0, quota: null } : toUsage(row);
  }

  async listNamespaceUsage(): Promise<NamespaceUsage[]> {
    const rows = await this.db.selectFrom('namespace_usage').selectAll().orderBy('namespace').execute();
    return rows.map(toUsage);
  }

  async physicalBytes(): Promise<number> {
    const blobs = await this.db
      .selectFrom('blobs')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('bytes'))
      .executeTakeFirstOrThrow();
    const manifests = await this.db
      .selectFrom('manifests')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('bytes'))
      .executeTakeFirstOrThrow();
    return Number(blobs.bytes) + Number(manifests.bytes);
  }

  async setQuota(namespace: string, bytes: number | null): Promise<NamespaceUsage> {
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes < 0))
      throw new RangeError(`a quota must be a non-negative integer of bytes, got ${bytes}`);
    // An upsert: the usage row may not exist yet (nothing pushed); its bytes are left to the writes.
    const row = await this.db
      .insertInto('namespace_usage')
      .values({ namespace, bytes: 0, quota_bytes: bytes })
      .onConflict((oc) => oc.column('namespace').doUpdateSet({ quota_bytes: bytes }))
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUsage(row);
  }

  async listRepositorySummaries(options: {
    limit: number;
    after?: string | undefined;
    namespace?: string | undefined;
  }): Promise<Page<RepositorySummary>> {
    const { limit, after, namespace } = options;
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
    let query = this.db
      .selectFrom('repositories')
      .select(['id', 'name'])
      .orderBy('name')
      .limit(limit + 1);
    if (after !== undefined) query = query.where('name', '>', after);
    if (namespace !== undefined) {
      // The namespace itself and the names under `namespace/`: byte-wise, those sort between `ns/` and `ns0`
      // ('0' follows '/'), which uses the name index where a LIKE would need escaping.
      query = query.where((eb) =>
        eb.or([
          eb('name', '=', namespace),
          eb.and([eb('name', '>', `${namespace}/`), eb('name', '<', `${namespace}0`)]),
        ]),
      );
    }
    const rows = await query.execute();
    const page = rows.slice(0, limit);
    const items = await this.summaries(page.map((r) => ({ id: Number(r.id), name: r.name })));
    return { items, hasMore: rows.length > limit };
  }

  /** Every repository of `namespace` with its summary, sorted by name. */
  async namespaceRepositories(namespace: string): Promise<RepositorySummary[]> {
    const items: RepositorySummary[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.listRepositorySummaries({ limit: 1000, after, namespace });
      items.push(...page.items);
      const last = page.items[page.items.length - 1];
      if (!page.hasMore || last === undefined) return items;
      after = last.name;
    }
  }

  /** The summaries of `repositories` (in their order), with one grouped query per table. */
  private async summaries(repositories: { id: number; name: string }[]): Promise<RepositorySummary[]> {
    if (repositories.length === 0) return [];
    const ids = repositories.map((r) => r.id);
    const [tags, manifests, blobs] = await Promise.all([
      this.db
        .selectFrom('tags')
        .select((eb) => [
          'repository_id',
          eb.fn.countAll<number>().as('count'),
          eb.fn.max<number>('updated_at').as('latest'),
        ])
        .where('repository_id', 'in', ids)
        .groupBy('repository_id')
        .execute(),
      this.db
        .selectFrom('manifests')
        .select((eb) => [
          'repository_id',
          eb.fn.countAll<number>().as('count'),
          eb.fn.sum<number>('size').as('bytes'),
          eb.fn.max<number>('created_at').as('latest'),
          eb.fn.max<number>('last_pulled_at').as('pulled'),
          eb.fn.sum<number>('pull_count').as('pulls'),
        ])
        .where('repository_id', 'in', ids)
        .groupBy('repository_id')
        .execute(),
      this.db
        .selectFrom('repository_blobs as rb')
        .innerJoin('blobs as b', 'b.digest', 'rb.digest')
        .select((eb) => ['rb.repository_id', eb.fn.sum<number>('b.size').as('bytes')])
        .where('rb.repository_id', 'in', ids)
        .groupBy('rb.repository_id')
        .execute(),
    ]);
    const byId = <T extends { repository_id: number }>(rows: T[]) =>
      new Map(rows.map((r) => [Number(r.repository_id), r]));
    const t = byId(tags);
    const m = byId(manifests);
    const b = byId(blobs);
    return repositories.map(({ id, name }) => {
      const tagRow = t.get(id);
      const manifestRow = m.get(id);
      const latest = Math.max(Number(tagRow?.latest ?? 0), Number(manifestRow?.latest ?? 0));
      return {
        name,
        tags: Number(tagRow?.count ?? 0),
        manifests: Number(manifestRow?.count ?? 0),
        size: Number(b.get(id)?.bytes ?? 0) + Number(manifestRow?.bytes ?? 0),
        lastPush: latest > 0 ? new Date(latest) : null,
        lastPull: manifestRow?.pulled ? new Date(Number(manifestRow.pulled)) : null,
        pulls: Number(manifestRow?.pulls ?? 0),
      };
    });
  }
}

function toUsage(row: UsageRow): NamespaceUsage {
  return {
    namespace: row.namespace,
    bytes: Number(row.bytes),
    quota: row.quota_bytes === null ? null : Number(row.quota_bytes),
  };
}
