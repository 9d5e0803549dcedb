/**
 * 0001: the initial metadata schema. Portable between SQLite and PostgreSQL; the few differences (identity
 * columns, binary type, byte-wise collation) are chosen by `dialect`.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

/** Builds the migration for `dialect`. Never edit it once released: add a new migration instead. */
export function initialMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  // SQLite compares text with BINARY (byte-wise) by default; PostgreSQL needs the "C" collation for that.
  const name = pg ? sql`text collate "C"` : sql`text`;
  const idType = pg ? 'bigint' : 'integer';
  const binary = pg ? 'bytea' : 'blob';

  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('repositories')
        .addColumn('id', idType, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('name', name, (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('repositories_name_key', ['name'])
        .execute();

      await db.schema
        .createTable('blobs')
        .addColumn('digest', name, (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('repository_blobs')
        .addColumn('repository_id', idType, (c) =>
          c.notNull().references('repositories.id').onDelete('cascade'),
        )
        .addColumn('digest', name, (c) => c.notNull().references('blobs.digest'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('repository_blobs_pkey', ['repository_id', 'digest'])
        .execute();
      // findBlob and garbage collection look links up by digest alone.
      await db.schema
        .createIndex('repository_blobs_digest_idx')
        .on('repository_blobs')
        .column('digest')
        .execute();

      await db.schema
        .createTable('manifests')
        .addColumn('id', idType, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('repository_id', idType, (c) =>
          c.notNull().references('repositories.id').onDelete('cascade'),
        )
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('media_type', 'text', (c) => c.notNull())
        .addColumn('payload', binary, (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('subject_digest', name)
        .addColumn('artifact_type', 'text')
        .addColumn('annotations', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('manifests_repository_digest_key', ['repository_id', 'digest'])
        .execute();
      await db.schema
        .createIndex('manifests_subject_idx')
        .on('manifests')
        .columns(['repository_id', 'subject_digest'])
        .execute();

      await db.schema
        .createTable('manifest_references')
        .addColumn('manifest_id', idType, (c) => c.notNull().references('manifests.id').onDelete('cascade'))
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('manifest_references_pkey', ['manifest_id', 'kind', 'digest'])
        .addCheckConstraint('manifest_references_kind_check', sql`kind in ('blob', 'manifest')`)
        .execute();
      // Garbage collection asks "is this digest referenced by any manifest?".
      await db.schema
        .createIndex('manifest_references_digest_idx')
        .on('manifest_references')
        .columns(['digest', 'kind'])
        .execute();

      await db.schema
        .createTable('tags')
        .addColumn('repository_id', idType, (c) =>
          c.notNull().references('repositories.id').onDelete('cascade'),
        )
        .addColumn('name', name, (c) => c.notNull())
        .addColumn('manifest_id', idType, (c) => c.notNull().references('manifests.id').onDelete('cascade'))
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('tags_pkey', ['repository_id', 'name'])
        .execute();
      // Deleting a manifest (and its cascade) finds its tags by manifest id.
      await db.schema.createIndex('tags_manifest_idx').on('tags').column('manifest_id').execute();

      await db.schema
        .createTable('upload_sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('repository', name, (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('handle', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('upload_sessions_updated_idx')
        .on('upload_sessions')
        .column('updated_at')
        .execute();
    },
  };
}
