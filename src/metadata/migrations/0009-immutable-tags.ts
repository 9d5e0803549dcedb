/**
 * 0009: immutable tag rules. Each row protects, in one namespace, the tags matching `tag_glob` of the repositories
 * whose name after the namespace matches `repository_glob` (see `lifecycle/immutable-tags.ts`). A rule is unique
 * per (namespace, repository glob, tag glob): adding the same one twice is a conflict, not a second row.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function immutableTagsMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('immutable_tag_rules')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('namespace', name, (c) => c.notNull())
        .addColumn('repository_glob', name, (c) => c.notNull())
        .addColumn('tag_glob', name, (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('immutable_tag_rules_unique', ['namespace', 'repository_glob', 'tag_glob'])
        .execute();
    },
  };
}
