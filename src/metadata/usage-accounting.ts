/**
 * Namespace usage, maintained incrementally by the writes that change it, in their own transactions (never
 * recomputed per request). Tables (migration 0011):
 * - `namespace_blobs(namespace, digest, size, links)`: how many repositories of the namespace link each blob;
 * - `namespace_usage(namespace, bytes, quota_bytes)`: the namespace's bytes and its quota (null: unlimited).
 *
 * Every function takes the write's transaction and must be called inside it, so the usage commits or rolls back
 * with the change it accounts for. The caller reports what its own statements changed (a link its insert really
 * inserted, the links and manifests its deletes really deleted), which keeps the accounting exact under
 * concurrency without reading anything twice.
 *
 * Concurrency (PostgreSQL READ COMMITTED; SQLite runs one writer at a time): every change is one atomic upsert or
 * update of the row it concerns, never a read followed by a write. Row locks are taken in one order, the namespace's
 * blob rows (in digest order) before its usage row, and the usage row is the last thing a write touches, so
 * concurrent writes of one namespace queue on it without deadlocking. The quota check is the condition of the
 * usage increment itself (`bytes + size <= quota_bytes`), evaluated on the latest committed row once its lock is
 * held: of two pushes racing for the last bytes, at most the ones that fit succeed.
 */
import { sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import { splitNamespace } from '../auth/authorizer.ts';
import type { Digest } from '../oci/digest.ts';
import { isOneOf } from './list-parameter.ts';
import type { Database, SqlDialect } from './schema.ts';
import { QuotaExceededError, type UsageChange } from './usage.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** The namespace of a repository: the first component of its name. */
export function namespaceOf(repository: string): string {
  return splitNamespace(repository).namespace;
}

/**
 * A link of blob `digest` (`size` bytes) into `repository` was just inserted by this transaction (call it only
 * when the `repository_blobs` insert inserted a row: re-linking costs nothing). The first link of the blob in the
 * namespace adds its size to the usage, checked against the quota.
 *
 * @returns the usage change, or null when the namespace already held the blob.
 * @throws QuotaExceededError when the blob is new to the namespace and does not fit its quota; the caller lets
 *   it roll the transaction back.
 */
export async function blobLinkAdded(
  trx: Executor,
  repository: string,
  digest: Digest,
  size: number,
): Promise<UsageChange | null> {
  const namespace = namespaceOf(repository);
  // links = 1 after the upsert: no repository of the namespace linked it before (the row goes with the last link,
  // in the transaction removing it, so a row never lingers at 0).
  const row = await trx
    .insertInto('namespace_blobs')
    .values({ namespace, digest, size, links: 1 })
    .onConflict((oc) =>
      oc.columns(['namespace', 'digest']).doUpdateSet({ links: sql<number>`namespace_blobs.links + 1` }),
    )
    .returning('links')
    .executeTakeFirstOrThrow();
  if (Number(row.links) !== 1) return null;
  return addUsage(trx, namespace, size);
}

/**
 * This transaction deleted the links of `digests` from `repository` (a name, or the id of a repository row that
 * still exists): each blob's link count in the namespace drops by one, and the blobs no repository of the
 * namespace links any more leave its usage. Pass exactly the links the transaction's deletes removed (e.g. from
 * their RETURNING), each digest once. Garbage collection calls this when it removes links.
 *
 * @returns the usage change, or null when no blob left the namespace.
 */
export async function blobLinksRemoved(
  trx: Executor,
  dialect: SqlDialect,
  repository: string | number,
  digests: readonly Digest[],
): Promise<UsageChange | null> {
  if (digests.length === 0) return null;
  const namespace = namespaceOf(await repositoryName(trx, repository));
  const list = [...new Set(digests)].sort();
  if (dialect === 'postgres') {
    // Lock the rows in digest order first: one UPDATE locks them in scan order, which two transactions removing
    // overlapping sets could take in opposite orders.
    await trx
      .selectFrom('namespace_blobs')
      .select('digest')
      .where('namespace', '=', namespace)
      .where(isOneOf(dialect, 'digest', list))
      .orderBy('digest')
      .forUpdate()
      .execute();
  }
  await trx
    .updateTable('namespace_blobs')
    .set({ links: sql<number>`links - 1` })
    .where('namespace', '=', namespace)
    .where(isOneOf(dialect, 'digest', list))
    .execute();
  const gone = await trx
    .deleteFrom('namespace_blobs')
    .where('namespace', '=', namespace)
    .where(isOneOf(dialect, 'digest', list))
    .where('links', '<=', 0)
    .returning('size')
    .execute();
  if (gone.length === 0) return null;
  return subtractUsage(
    trx,
    namespace,
    gone.reduce((sum, r) => sum + Number(r.size), 0),
  );
}

/**
 * This transaction stored a new manifest of `size` bytes in `repository` (call it only when the manifest row was
 * inserted, not for a repeated push of the same digest). Adds the size to the namespace's usage, checked against
 * its quota.
 *
 * @throws QuotaExceededError when it does not fit; the caller lets it roll the transaction back.
 */
export async function manifestAdded(trx: Executor, repository: string, size: number): Promise<UsageChange> {
  return addUsage(trx, namespaceOf(repository), size);
}

/**
 * This transaction deleted manifests of `repository` (a name, or the id of a repository row that still exists)
 * totalling `bytes` (their `size` column, as the deletes returned it). Garbage collection calls this when it
 * removes manifests.
 */
export async function manifestsRemoved(
  trx: Executor,
  repository: string | number,
  bytes: number,
): Promise<UsageChange | null> {
  if (bytes === 0) return null;
  return subtractUsage(trx, namespaceOf(await repositoryName(trx, repository)), bytes);
}

/**
 * The repository `repositoryId` is about to be deleted with all its links and manifests by this transaction:
 * call it first, before the deletes. It locks the repository's row, links and manifests (PostgreSQL: no link or
 * manifest can be added or removed by another transaction until this one ends; an insert's foreign key check
 * conflicts with the row lock), then removes them from the namespace's usage. Locking first is what keeps the
 * count exact: links committed after a RETURNING delete would otherwise go with the repository row by ON DELETE
 * CASCADE, uncounted. A push into the very repository being deleted may still meet the delete in a deadlock, which
 * PostgreSQL breaks by failing one of them, as it could before (their tag and link locks already cross).
 */
export async function repositoryDeleting(
  trx: Executor,
  dialect: SqlDialect,
  repositoryId: number,
): Promise<UsageChange | null> {
  const pg = dialect === 'postgres';
  let repo = trx.selectFrom('repositories').select('name').where('id', '=', repositoryId);
  if (pg) repo = repo.forUpdate();
  const row = await repo.executeTakeFirst();
  if (row === undefined) return null;
  let links = trx.selectFrom('repository_blobs').select('digest').where('repository_id', '=', repositoryId);
  if (pg) links = links.forUpdate();
  let manifests = trx.selectFrom('manifests').select('size').where('repository_id', '=', repositoryId);
  if (pg) manifests = manifests.forUpdate();
  const digests = (await links.execute()).map((r) => r.digest);
  const bytes = (await manifests.execute()).reduce((sum, r) => sum + Number(r.size), 0);
  const fromBlobs = await blobLinksRemoved(trx, dialect, row.name, digests);
  const fromManifests = await manifestsRemoved(trx, row.name, bytes);
  if (fromBlobs === null) return fromManifests;
  return fromManifests === null ? fromBlobs : { ...fromManifests, before: fromBlobs.before };
}

/** Adds `size` bytes to the namespace's usage if they fit its quota (atomically), else throws. */
async function addUsage(trx: Executor, namespace: string, size: number): Promise<UsageChange> {
  const row = await trx
    .insertInto('namespace_usage')
    .values({ namespace, bytes: size, quota_bytes: null })
    .onConflict((oc) =>
      oc
        .column('namespace')
        .doUpdateSet({ bytes: sql<number>`namespace_usage.bytes + excluded.bytes` })
        // Checked on the row as it is once locked (PostgreSQL re-reads the latest committed version): the check
        // and the increment are one step, so concurrent writes cannot both pass on the same remaining bytes.
        .where(
          sql<boolean>`namespace_usage.quota_bytes is null or namespace_usage.bytes + excluded.bytes <= namespace_usage.quota_bytes`,
        ),
    )
    .returning(['bytes', 'quota_bytes'])
    .executeTakeFirst();
  if (row === undefined) {
    const current = await trx
      .selectFrom('namespace_usage')
      .select(['bytes', 'quota_bytes'])
      .where('namespace', '=', namespace)
      .executeTakeFirstOrThrow();
    throw new QuotaExceededError(namespace, Number(current.bytes), Number(current.quota_bytes), size);
  }
  const after = Number(row.bytes);
  return { namespace, before: after - size, after, quota: toQuota(row.quota_bytes) };
}

async function subtractUsage(trx: Executor, namespace: string, bytes: number): Promise<UsageChange | null> {
  const row = await trx
    .updateTable('namespace_usage')
    .set({ bytes: sql<number>`bytes - ${bytes}` })
    .where('namespace', '=', namespace)
    .returning(['bytes', 'quota_bytes'])
    .executeTakeFirst();
  if (row === undefined) return null;
  const after = Number(row.bytes);
  return { namespace, before: after + bytes, after, quota: toQuota(row.quota_bytes) };
}

async function repositoryName(trx: Executor, repository: string | number): Promise<string> {
  if (typeof repository === 'string') return repository;
  const row = await trx
    .selectFrom('repositories')
    .select('name')
    .where('id', '=', repository)
    .executeTakeFirst();
  if (row === undefined) throw new Error(`repository ${repository} does not exist`);
  return row.name;
}

function toQuota(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}
