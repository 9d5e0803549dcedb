/**
 * Setup for tests that need tens of thousands of blob links (a manifest with more descriptors than a statement
 * takes bind parameters). `MetadataStore.linkBlob` spends one transaction per blob, so 70,000 links would take half
 * a minute on SQLite and a minute on PostgreSQL; these write the same rows `linkBlob` writes (a `blobs` row and a
 * `repository_blobs` link, the repository created when missing) in one transaction, straight into the tables of a
 * migrated store. Only the setup goes around the store: what the tests check still goes through it.
 */
import type pg from 'pg';
import { BetterSqlite3 } from '../../src/metadata/dialects.ts';

/** Links `digests` (each of `size` bytes) into `repository` in the SQLite metadata database `file`. */
export function linkBlobsInSqlite(
  file: string,
  repository: string,
  digests: readonly string[],
  size = 1,
): void {
  const db = new BetterSqlite3(file);
  try {
    db.pragma('busy_timeout = 5000');
    const now = Date.now();
    const list = JSON.stringify(digests);
    db.transaction(() => {
      db.prepare(
        'insert into repositories (name, created_at) values (?, ?) on conflict (name) do nothing',
      ).run(repository, now);
      db.prepare(
        `insert into blobs (digest, size, created_at)
         select value, ?, ? from json_each(?) where true on conflict (digest) do nothing`,
      ).run(size, now, list);
      db.prepare(
        `insert into repository_blobs (repository_id, digest, created_at)
         select r.id, d.value, ? from repositories r, json_each(?) d where r.name = ?
         on conflict (repository_id, digest) do nothing`,
      ).run(now, list, repository);
    }).immediate();
  } finally {
    db.close();
  }
}

/** Links `digests` (each of `size` bytes) into `repository` in the PostgreSQL metadata tables of `schema`. */
export async function linkBlobsInPostgres(
  pool: pg.Pool,
  schema: string,
  repository: string,
  digests: readonly string[],
  size = 1,
): Promise<void> {
  const client = await pool.connect();
  try {
    const now = Date.now();
    await client.query('begin');
    await client.query(
      `insert into "${schema}".repositories (name, created_at) values ($1, $2) on conflict (name) do nothing`,
      [repository, now],
    );
    await client.query(
      `insert into "${schema}".blobs (digest, size, created_at)
       select unnest($1::text[]), $2::bigint, $3::bigint on conflict (digest) do nothing`,
      [digests, size, now],
    );
    await client.query(
      `insert into "${schema}".repository_blobs (repository_id, digest, created_at)
       select r.id, d, $3::bigint from "${schema}".repositories r, unnest($1::text[]) as d where r.name = $2
       on conflict (repository_id, digest) do nothing`,
      [digests, repository, now],
    );
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
