/**
 * 0016: vulnerability scan reports, scanning policies and external scanners.
 *
 * - `scan_reports`: the latest scan of each manifest digest (content-addressed: the same manifest in two
 *   repositories is one report), its state, the inventory and findings as JSON, and the vulnerability database
 *   revision it was matched against, so a database import rematches only what it may change.
 * - `scan_packages`: which (ecosystem, name) each scanned digest holds, to find the reports an import affects.
 * - `scan_policies`: one policy per namespace (`scanning/policy.ts`, stored as JSON).
 * - `scanners`: external scanners registered by name (Harbor's Pluggable Scanner API); the adapter's
 *   credentials are sealed with the registry's secret box.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function scansMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('scan_reports')
        .addColumn('digest', name, (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('scanner', 'text', (c) => c.notNull())
        .addColumn('db_revision', 'bigint', (c) => c.notNull())
        .addColumn('report', 'text')
        .addColumn('counts', 'text')
        .addColumn('error', 'text')
        .addColumn('scanned_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('scan_packages')
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('ecosystem', name, (c) => c.notNull())
        .addColumn('name', name, (c) => c.notNull())
        .addPrimaryKeyConstraint('scan_packages_pk', ['digest', 'ecosystem', 'name'])
        .execute();
      await db.schema
        .createIndex('scan_packages_package_idx')
        .on('scan_packages')
        .columns(['ecosystem', 'name'])
        .execute();
      await db.schema
        .createTable('scan_policies')
        .addColumn('namespace', name, (c) => c.primaryKey())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('updated_by', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('scanners')
        .addColumn('name', name, (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('authorization', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('scanners').execute();
      await db.schema.dropTable('scan_policies').execute();
      await db.schema.dropTable('scan_packages').execute();
      await db.schema.dropTable('scan_reports').execute();
    },
  };
}
