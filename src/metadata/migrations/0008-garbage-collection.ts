/**
 * 0008: the garbage collector's review queues, blob deletion marks, blob write holds and the history of runs.
 *
 * - `manifests.review_after` / `blobs.review_after`: the review queues (null: not queued). Writes that may leave
 *   content unreferenced (untag, tag moved, manifest or repository deleted, blob unlinked) set them in their own
 *   transaction; new content is queued after its grace period. The collector reviews due rows and re-checks them
 *   under a row lock (see docs/gc.md).
 * - `blobs.deleting_at`: set when the collector has decided to delete a blob, before its bytes are removed; the
 *   row goes once they are. Such a blob is absent to every reader and writer.
 * - `blob_writes`: a writer's hold on a digest while it commits the blob's bytes (between the check that the blob
 *   is not being deleted and the link), so the collector never deletes bytes a writer is about to rely on.
 * - `gc_runs`: one row per collection (and dry run), with its progress and outcome.
 *
 * Existing content is queued as new content would have been: every blob and every untagged manifest is reviewed a
 * day (the default grace period) after it was created.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

const DAY_MS = 24 * 60 * 60 * 1_000;

export function garbageCollectionMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('manifests').addColumn('review_after', 'bigint').execute();
      await db.schema.alterTable('blobs').addColumn('review_after', 'bigint').execute();
      await db.schema.alterTable('blobs').addColumn('deleting_at', 'bigint').execute();
      // The collector reads the due rows of each queue in (review_after, key) order: partial indexes in that order
      // hold only the queued rows, so taking a batch reads just the batch, however long the backlog.
      await db.schema
        .createIndex('manifests_review_idx')
        .on('manifests')
        .columns(['review_after', 'id'])
        .where(sql.ref('review_after'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('blobs_review_idx')
        .on('blobs')
        .columns(['review_after', 'digest'])
        .where(sql.ref('review_after'), 'is not', null)
        .execute();
      await db.schema
        .createIndex('blobs_deleting_idx')
        .on('blobs')
        .column('deleting_at')
        .where(sql.ref('deleting_at'), 'is not', null)
        .execute();

      await db.schema
        .createTable('blob_writes')
        .addColumn('holder', name, (c) => c.primaryKey())
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('blob_writes_digest_idx').on('blob_writes').column('digest').execute();

      await db.schema
        .createTable('gc_runs')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('state', name, (c) => c.notNull())
        .addColumn('dry_run', 'integer', (c) => c.notNull())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('requested_by', 'text')
        .addColumn('phase', 'text', (c) => c.notNull())
        .addColumn('progress', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .addCheckConstraint('gc_runs_state_check', sql`state in ('queued', 'running', 'succeeded', 'failed')`)
        .execute();
      await db.schema.createIndex('gc_runs_created_idx').on('gc_runs').column('created_at').execute();

      await sql`update blobs set review_after = created_at + ${sql.lit(DAY_MS)}`.execute(db);
      await sql`update manifests set review_after = created_at + ${sql.lit(DAY_MS)}
        where not exists (select 1 from tags t where t.manifest_id = manifests.id)`.execute(db);
    },
  };
}
