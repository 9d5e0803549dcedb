/**
 * 0011: storage usage per namespace, kept up to date by the writes themselves (`usage-accounting.ts`), and the
 * namespaces' quotas.
 *
 * - `namespace_blobs`: which blobs a namespace holds, with how many of its repositories link each (`links`). A
 *   namespace counts a blob once however many of its repositories link it; the row goes when the last link does.
 * - `namespace_usage`: the bytes a namespace holds (its distinct blobs plus its repositories' manifests) and its
 *   quota in bytes (null: unlimited). A row exists for every namespace that ever held something or got a quota.
 *
 * Both are backfilled from the existing links and manifests.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

/** SQL for the namespace of the repository name in column `column` (its first path component). */
export function namespaceOfColumn(dialect: SqlDialect, column: string) {
  const ref = sql.ref(column);
  return dialect === 'postgres'
    ? sql<string>`split_part(${ref}, '/', 1)`
    : sql<string>`(case when instr(${ref}, '/') > 0 then substr(${ref}, 1, instr(${ref}, '/') - 1) else ${ref} end)`;
}

export function usageAndQuotasMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('namespace_blobs')
        .addColumn('namespace', name, (c) => c.notNull())
        .addColumn('digest', name, (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('links', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('namespace_blobs_pkey', ['namespace', 'digest'])
        .execute();
      await db.schema
        .createTable('namespace_usage')
        .addColumn('namespace', name, (c) => c.primaryKey())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('quota_bytes', 'bigint')
        .execute();

      const ns = namespaceOfColumn(dialect, 'r.name');
      await sql`
        insert into namespace_blobs (namespace, digest, size, links)
        select ${ns}, rb.digest, b.size, count(*)
        from repository_blobs rb
        join repositories r on r.id = rb.repository_id
        join blobs b on b.digest = rb.digest
        group by ${ns}, rb.digest, b.size`.execute(db);
      await sql`
        insert into namespace_usage (namespace, bytes, quota_bytes)
        select namespace, sum(bytes), null from (
          select namespace, size as bytes from namespace_blobs
          union all
          select ${ns} as namespace, m.size as bytes
          from manifests m join repositories r on r.id = m.repository_id
        ) parts
        group by namespace`.execute(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('namespace_usage').execute();
      await db.schema.dropTable('namespace_blobs').execute();
    },
  };
}
