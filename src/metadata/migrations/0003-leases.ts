/**
 * Leases: named, expiring claims that let one instance of a fleet run a background job (upload purge, and later
 * garbage collection) while the others skip it.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function leasesMigration(dialect: SqlDialect): Migration {
  const name = dialect === 'postgres' ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('leases')
        .addColumn('name', name, (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  };
}
