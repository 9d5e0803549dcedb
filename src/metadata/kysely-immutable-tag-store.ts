/**
 * The ImmutableTagStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (table of
 * migration 0009; get one with `KyselyMetadataStore.immutableTagStore()`).
 *
 * A rule that exists already is found with `INSERT ... ON CONFLICT DO NOTHING RETURNING` (no row: `ConflictError`),
 * never by a unique violation, which would abort a PostgreSQL transaction.
 */
import type { Kysely, Selectable } from 'kysely';
import type { Digest } from '../oci/digest.ts';
import { ConflictError } from './auth-store.ts';
import type {
  ImmutableTagRuleRecord,
  ImmutableTagStore,
  NewImmutableTagRule,
} from './immutable-tag-store.ts';
import type { Database, ImmutableTagRulesTable, SqlDialect } from './schema.ts';

function toRecord(row: Selectable<ImmutableTagRulesTable>): ImmutableTagRuleRecord {
  return {
    id: Number(row.id),
    namespace: row.namespace,
    repositoryGlob: row.repository_glob,
    tagGlob: row.tag_glob,
    createdBy: row.created_by,
    createdAt: new Date(Number(row.created_at)),
  };
}

export class KyselyImmutableTagStore implements ImmutableTagStore {
  /**
   * @param db the metadata database, migrated (0009 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {}

  async list(namespace: string): Promise<ImmutableTagRuleRecord[]> {
    const rows = await this.db
      .selectFrom('immutable_tag_rules')
      .selectAll()
      .where('namespace', '=', namespace)
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  async add(rule: NewImmutableTagRule): Promise<ImmutableTagRuleRecord> {
    const row = await this.db
      .insertInto('immutable_tag_rules')
      .values({
        namespace: rule.namespace,
        repository_glob: rule.repositoryGlob,
        tag_glob: rule.tagGlob,
        created_by: rule.createdBy,
        created_at: Date.now(),
      })
      .onConflict((oc) => oc.columns(['namespace', 'repository_glob', 'tag_glob']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) {
      throw new ConflictError(
        `namespace ${rule.namespace} already has the immutable tag rule ${rule.repositoryGlob}:${rule.tagGlob}`,
      );
    }
    return toRecord(row);
  }

  async delete(namespace: string, id: number): Promise<ImmutableTagRuleRecord | null> {
    const row = await this.db
      .deleteFrom('immutable_tag_rules')
      .where('id', '=', id)
      .where('namespace', '=', namespace)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async tagsOn(repository: string, digest: Digest): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tags as t')
      .innerJoin('manifests as m', 'm.id', 't.manifest_id')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select('t.name')
      .where('r.name', '=', repository)
      .where('m.digest', '=', digest)
      .orderBy('t.name')
      .execute();
    return rows.map((r) => r.name);
  }
}
