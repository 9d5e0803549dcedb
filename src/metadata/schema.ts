/**
 * Table types of the metadata database, as Kysely sees them. One schema serves SQLite and PostgreSQL (see
 * `migrations/`). Conventions:
 * - Timestamps are epoch milliseconds in `bigint` columns (identical on both dialects; PostgreSQL `int8` values
 *   are parsed to numbers by the pool, see `dialects.ts`).
 * - Sizes are `bigint` byte counts, read back as numbers.
 * - JSON values (annotations, upload handles) are stored as text.
 * - On PostgreSQL, names and digests use `COLLATE "C"`, so comparisons and ORDER BY are byte-wise as on SQLite.
 */
import type { Generated } from 'kysely';
import type { Digest } from '../oci/digest.ts';

/** The SQL dialects the metadata store runs on. */
export type SqlDialect = 'sqlite' | 'postgres';

/** What a manifest reference points at. */
export type ManifestReferenceKind = 'blob' | 'manifest';

export interface RepositoriesTable {
  id: Generated<number>;
  name: string;
  created_at: number;
}

/** Blobs known to the registry (their bytes are in storage). A row outlives its links until GC removes it. */
export interface BlobsTable {
  digest: Digest;
  size: number;
  created_at: number;
}

/** Which blobs a repository may see. */
export interface RepositoryBlobsTable {
  repository_id: number;
  digest: Digest;
  created_at: number;
}

export interface ManifestsTable {
  id: Generated<number>;
  repository_id: number;
  digest: Digest;
  media_type: string;
  payload: Buffer;
  size: number;
  subject_digest: Digest | null;
  artifact_type: string | null;
  /** JSON object text, or null. */
  annotations: string | null;
  created_at: number;
}

/** What each manifest requires (for garbage collection). Deleted with the manifest. */
export interface ManifestReferencesTable {
  manifest_id: number;
  digest: Digest;
  kind: ManifestReferenceKind;
}

export interface TagsTable {
  repository_id: number;
  name: string;
  manifest_id: number;
  updated_at: number;
}

export interface UploadSessionsTable {
  id: string;
  repository: string;
  size: number;
  /** The storage driver's `UploadHandle` as JSON text. */
  handle: string;
  created_at: number;
  updated_at: number;
}

/** The whole metadata database. */
export interface Database {
  repositories: RepositoriesTable;
  blobs: BlobsTable;
  repository_blobs: RepositoryBlobsTable;
  manifests: ManifestsTable;
  manifest_references: ManifestReferencesTable;
  tags: TagsTable;
  upload_sessions: UploadSessionsTable;
}
