/**
 * 0004: upload sessions remember who started them (`owner`, an identity such as `user:alice` or `robot:robot$ci`),
 * so that with access control on only that principal may continue, complete, inspect or cancel them. Sessions that
 * exist when the migration runs get no owner and stay usable by anyone allowed to push, as before.
 */
import type { Kysely, Migration } from 'kysely';

/** The same on SQLite and PostgreSQL. Never edit it once released: add a new migration instead. */
export function uploadOwnerMigration(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // Nullable and without a default on both dialects: existing rows read as null (no owner).
      await db.schema.alterTable('upload_sessions').addColumn('owner', 'text').execute();
    },
  };
}
