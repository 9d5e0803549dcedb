/**
 * 0015: the offline vulnerability database (OSV records imported by `scanning/vulndb/import.ts`).
 *
 * - `vuln_advisories`: one row per advisory id, with its `modified`, `published` and `withdrawn` times (epoch
 *   milliseconds), its summary, the trimmed record as JSON text, and the database revision that last changed it.
 * - `vuln_affected`: which packages an advisory names, one row per (advisory, base ecosystem, release suffix or
 *   `''`, normalised name), looked up by (ecosystem, name). Rows belong to their advisory and are rewritten with it.
 * - `vuln_imports`: per import source, when it last ran and what it did.
 * - `vuln_state`: one row holding the database revision, which grows by one with every committed batch that
 *   changed an advisory, so a scan made at an older revision is known as possibly stale.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function vulnDbMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('vuln_advisories')
        .addColumn('id', name, (c) => c.primaryKey())
        .addColumn('modified', 'bigint', (c) => c.notNull())
        .addColumn('published', 'bigint')
        .addColumn('withdrawn', 'bigint')
        .addColumn('summary', 'text')
        .addColumn('record', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('revision', 'bigint', (c) => c.notNull())
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('vuln_affected')
        .addColumn('advisory_id', name, (c) =>
          c.notNull().references('vuln_advisories.id').onDelete('cascade'),
        )
        .addColumn('ecosystem', name, (c) => c.notNull())
        .addColumn('release', name, (c) => c.notNull())
        .addColumn('name', name, (c) => c.notNull())
        .addPrimaryKeyConstraint('vuln_affected_pkey', ['advisory_id', 'ecosystem', 'release', 'name'])
        .execute();
      // Scans look advisories up by package.
      await db.schema
        .createIndex('vuln_affected_package_idx')
        .on('vuln_affected')
        .columns(['ecosystem', 'name'])
        .execute();
      await db.schema
        .createTable('vuln_imports')
        .addColumn('source', name, (c) => c.primaryKey())
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .addColumn('added', 'bigint', (c) => c.notNull())
        .addColumn('updated', 'bigint', (c) => c.notNull())
        .addColumn('unchanged', 'bigint', (c) => c.notNull())
        .addColumn('invalid', 'bigint', (c) => c.notNull())
        .addColumn('revision', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('vuln_state')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('revision', 'bigint', (c) => c.notNull())
        .execute();
      await sql`insert into vuln_state (id, revision) values (1, 0)`.execute(db);
    },
  };
}
