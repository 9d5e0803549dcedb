/**
 * The UpstreamStore on top of Kysely, for SQLite and PostgreSQL (tables of migration 0012; get one with
 * `KyselyMetadataStore.upstreamStore()`). A taken name or namespace is found with `ON CONFLICT DO NOTHING`, never
 * by a unique violation, which would abort a PostgreSQL transaction.
 */
import type { Kysely, Selectable } from 'kysely';
import { ConflictError } from './auth-store.ts';
import type { Database, SqlDialect, UpstreamsTable } from './schema.ts';
import type {
  NewStoredUpstream,
  StoredUpstream,
  StoredUpstreamChange,
  TagCheck,
  UpstreamStore,
} from './upstream-store.ts';

function toRecord(row: Selectable<UpstreamsTable>): StoredUpstream {
  return {
    id: Number(row.id),
    name: row.name,
    namespace: row.namespace,
    settings: JSON.parse(row.settings) as unknown,
    username: row.username,
    sealedPassword: row.sealed_password,
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

export class KyselyUpstreamStore implements UpstreamStore {
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {}

  async list(): Promise<StoredUpstream[]> {
    const rows = await this.db.selectFrom('upstreams').selectAll().orderBy('name').execute();
    return rows.map(toRecord);
  }

  async get(name: string): Promise<StoredUpstream | null> {
    const row = await this.db.selectFrom('upstreams').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async create(upstream: NewStoredUpstream): Promise<StoredUpstream> {
    const now = Date.now();
    // Two unique columns: DO NOTHING without a target covers both.
    const row = await this.db
      .insertInto('upstreams')
      .values({
        name: upstream.name,
        namespace: upstream.namespace,
        settings: JSON.stringify(upstream.settings),
        username: upstream.username,
        sealed_password: upstream.sealedPassword,
        created_by: upstream.createdBy,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) {
      throw new ConflictError(
        `an upstream named ${upstream.name} or caching into namespace ${upstream.namespace} exists`,
      );
    }
    return toRecord(row);
  }

  async update(name: string, change: StoredUpstreamChange): Promise<StoredUpstream | null> {
    const row = await this.db
      .updateTable('upstreams')
      .set({
        updated_at: Date.now(),
        ...(change.settings !== undefined ? { settings: JSON.stringify(change.settings) } : {}),
        ...(change.username !== undefined ? { username: change.username } : {}),
        ...(change.sealedPassword !== undefined ? { sealed_password: change.sealedPassword } : {}),
      })
      .where('name', '=', name)
      .returningAll()
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async delete(name: string): Promise<boolean> {
    const result = await this.db.deleteFrom('upstreams').where('name', '=', name).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async getTagCheck(repository: string, tag: string): Promise<TagCheck | null> {
    const row = await this.db
      .selectFrom('proxy_tag_checks')
      .select(['digest', 'checked_at'])
      .where('repository', '=', repository)
      .where('tag', '=', tag)
      .executeTakeFirst();
    return row ? { digest: row.digest, checkedAt: new Date(Number(row.checked_at)) } : null;
  }

  async recordTagCheck(repository: string, tag: string, check: TagCheck): Promise<void> {
    const values = { repository, tag, digest: check.digest, checked_at: check.checkedAt.getTime() };
    await this.db
      .insertInto('proxy_tag_checks')
      .values(values)
      .onConflict((oc) =>
        oc
          .columns(['repository', 'tag'])
          .doUpdateSet({ digest: values.digest, checked_at: values.checked_at }),
      )
      .execute();
  }
}
