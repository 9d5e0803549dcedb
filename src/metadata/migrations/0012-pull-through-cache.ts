/**
 * 0012: the pull-through cache. `upstreams` holds the registries managed through the API (those in the
 * configuration file are not stored): name and local namespace are unique, the password is sealed (see
 * `remote/secret-box.ts`), everything else is one JSON document (`settings`), read and validated by the proxy.
 * `proxy_tag_checks` records when each cached tag was last compared with its upstream, so that every instance
 * honours one re-check interval.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function pullThroughCacheMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('upstreams')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('name', name, (c) => c.notNull().unique())
        .addColumn('namespace', name, (c) => c.notNull().unique())
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('username', 'text')
        .addColumn('sealed_password', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('proxy_tag_checks')
        .addColumn('repository', name, (c) => c.notNull())
        .addColumn('tag', name, (c) => c.notNull())
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('checked_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('proxy_tag_checks_pkey', ['repository', 'tag'])
        .execute();
    },
  };
}
