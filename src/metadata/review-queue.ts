/**
 * The garbage collector's review queues, written by the same transactions as the writes that may leave content
 * unreferenced (see docs/gc.md). Queueing sets `review_after` to now unless the row is already queued (an
 * earlier or a later time, such as new content's grace period, stays: the collector re-checks everything anyway).
 */
import { sql } from 'kysely';
import type { Expression, ExpressionBuilder, Kysely, RawBuilder, Transaction } from 'kysely';
import type { Digest } from '../oci/digest.ts';
import type { Database, SqlDialect } from './schema.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** The larger of a nullable column and a time (SQLite's scalar `max`, PostgreSQL's `greatest`). */
export function greatest(
  dialect: SqlDialect,
  column: Expression<number | null>,
  value: number,
): RawBuilder<number> {
  return dialect === 'postgres'
    ? sql<number>`greatest(coalesce(${column}, 0), ${value})`
    : sql<number>`max(coalesce(${column}, 0), ${value})`;
}

/** A subquery of digests, built on the update's expression builder. */
export type DigestQuery = (eb: ExpressionBuilder<Database, 'blobs'>) => Expression<{ digest: Digest }>;

/** Queues the blobs `digests` (a short list, or a subquery) for review at `now`. */
export async function queueBlobs(
  trx: Executor,
  now: number,
  digests: readonly Digest[] | DigestQuery,
): Promise<void> {
  if (Array.isArray(digests) && digests.length === 0) return;
  await trx
    .updateTable('blobs')
    .set({ review_after: sql<number>`coalesce(${sql.ref('review_after')}, ${now})` })
    .where('digest', 'in', digests as Digest[])
    .where('deleting_at', 'is', null)
    .execute();
}

/** Queues the manifests with ids `ids` for review at `now`. */
export async function queueManifests(trx: Executor, now: number, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await trx
    .updateTable('manifests')
    .set({ review_after: sql<number>`coalesce(${sql.ref('review_after')}, ${now})` })
    .where('id', 'in', [...ids])
    .execute();
}

/** A manifest about to be deleted. */
export interface DeletedManifest {
  readonly id: number;
  readonly repositoryId: number;
  readonly digest: Digest;
}

/**
 * Queues what `manifests` (about to be deleted, in this transaction) held on to: the blobs they reference, their
 * index children in their repository, and their referrers in their repository.
 */
export async function queueReferencedBy(
  trx: Executor,
  now: number,
  manifests: readonly DeletedManifest[],
): Promise<void> {
  if (manifests.length === 0) return;
  const ids = manifests.map((m) => m.id);
  await queueBlobs(trx, now, (eb) =>
    eb
      .selectFrom('manifest_references as mr')
      .select('mr.digest')
      .where('mr.manifest_id', 'in', ids)
      .where('mr.kind', '=', 'blob'),
  );
  for (const m of manifests) {
    // Two updates, each on an index: the referrers by (repository_id, subject_digest), the children by
    // (repository_id, digest). One with an OR of both would read every manifest of the repository.
    const queued = sql<number>`coalesce(${sql.ref('review_after')}, ${now})`;
    await trx
      .updateTable('manifests')
      .set({ review_after: queued })
      .where('repository_id', '=', m.repositoryId)
      .where('subject_digest', '=', m.digest)
      .where('id', '<>', m.id)
      .execute();
    await trx
      .updateTable('manifests')
      .set({ review_after: queued })
      .where('repository_id', '=', m.repositoryId)
      .where('digest', 'in', (eb) =>
        eb
          .selectFrom('manifest_references as mr')
          .select('mr.digest')
          .where('mr.manifest_id', '=', m.id)
          .where('mr.kind', '=', 'manifest'),
      )
      .where('id', '<>', m.id)
      .execute();
  }
}
