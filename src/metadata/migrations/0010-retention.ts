/**
 * 0010: pull statistics and retention policies. Tags and manifests count their pulls and remember the latest one
 * (written in batches by `lifecycle/pull-stats.ts`, never on the request path); their push times are the existing
 * `tags.updated_at` (when the tag was last pointed at its manifest) and `manifests.created_at`. One retention
 * policy per namespace, stored as validated JSON (see `lifecycle/retention-policy.ts`).
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function retentionMigration(dialect: SqlDialect): Migration {
  const name = dialect === 'postgres' ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // SQLite adds one column per ALTER TABLE.
      for (const table of ['manifests', 'tags']) {
        await db.schema.alterTable(table).addColumn('last_pulled_at', 'bigint').execute();
        await db.schema
          .alterTable(table)
          .addColumn('pull_count', 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
      }
      await db.schema
        .createTable('retention_policies')
        .addColumn('namespace', name, (c) => c.primaryKey())
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  };
}
