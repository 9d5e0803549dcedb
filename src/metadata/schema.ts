/**
 * Table types of the metadata database, as Kysely sees them. One schema serves SQLite and PostgreSQL (see
 * `migrations/`). Conventions:
 * - Timestamps are epoch milliseconds in `bigint` columns (identical on both dialects; PostgreSQL `int8` values
 *   are parsed to numbers by the pool, see `dialects.ts`).
 * - Sizes are `bigint` byte counts, read back as numbers.
 * - JSON values (annotations, upload handles, audit details) are stored as text.
 * - Booleans are integers 0/1 (`Flag`).
 * - On PostgreSQL, names and digests use `COLLATE "C"`, so comparisons and ORDER BY are byte-wise as on SQLite.
 */
import type { Generated } from 'kysely';
import type { Digest } from '../oci/digest.ts';
import type { AuditEventInput, MemberKind, Role, SubjectKind, Visibility } from './auth-store.ts';

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
  /** When garbage collection is to check whether anything still references the blob; null: not queued (0008). */
  review_after: number | null;
  /** Set when garbage collection has decided to delete the blob, before its bytes go (0008). */
  deleting_at: number | null;
}

/** A writer's hold on a digest while it commits the blob's bytes (0008). */
export interface BlobWritesTable {
  /** Unique per write. */
  holder: string;
  digest: Digest;
  expires_at: number;
}

/** What a garbage collection run is doing. */
export type GcRunState = 'queued' | 'running' | 'succeeded' | 'failed';

/** One garbage collection run (0008). */
export interface GcRunsTable {
  id: Generated<number>;
  state: GcRunState;
  dry_run: Flag;
  /** `schedule`, `api` or `cli`. */
  trigger: string;
  requested_by: string | null;
  /** The current or last phase (`manifests`, `blobs`, `storage`, `purge`, `done`). */
  phase: string;
  /** JSON text: the counters of `GcProgress`. */
  progress: string;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
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
  /** When garbage collection is to check whether the manifest is still wanted; null: not queued (0008). */
  review_after: number | null;
  /** The latest pull (GET) of the manifest, by tag or digest, as last flushed; null if never (0010). */
  last_pulled_at: Generated<number | null>;
  /** Pulls (GETs) of the manifest, by tag or digest (0010). */
  pull_count: Generated<number>;
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
  /** The latest pull (GET) by this tag, as last flushed; null if never (0010). */
  last_pulled_at: Generated<number | null>;
  /** Pulls (GETs) by this tag (0010). */
  pull_count: Generated<number>;
}

export interface UploadSessionsTable {
  id: string;
  repository: string;
  size: number;
  /** The storage driver's `UploadHandle` as JSON text. */
  handle: string;
  created_at: number;
  updated_at: number;
  /** Who started the session (`kind:name`); null when anyone allowed to push may use it (0004). */
  owner: string | null;
}

/** A boolean stored as an integer: 0 or 1. */
export type Flag = 0 | 1;

export interface UsersTable {
  id: Generated<number>;
  username: string;
  password_hash: string | null;
  email: string | null;
  is_admin: Flag;
  disabled: Flag;
  created_at: number;
  updated_at: number;
}

export interface RobotsTable {
  id: Generated<number>;
  name: string;
  description: string;
  secret_hash: string;
  expires_at: number | null;
  revoked_at: number | null;
  created_by: string | null;
  created_at: number;
  last_used_at: number | null;
}

export interface TeamsTable {
  id: Generated<number>;
  name: string;
  description: string;
  created_at: number;
}

export interface TeamMembersTable {
  team_id: number;
  user_id: number;
}

export interface NamespacesTable {
  id: Generated<number>;
  name: string;
  visibility: Visibility;
  description: string;
  created_at: number;
}

/** The principal of a membership or rule: exactly the id column `kind` names is set (a CHECK). */
export interface PrincipalColumns {
  kind: MemberKind;
  user_id: number | null;
  team_id: number | null;
  robot_id: number | null;
}

/** Unique per (namespace, kind, principal). */
export interface NamespaceMembersTable extends PrincipalColumns {
  namespace_id: number;
  role: Role;
}

export interface RepositoryRulesTable extends PrincipalColumns {
  id: Generated<number>;
  namespace_id: number;
  pattern: string;
  role: Role;
}

export interface SigningKeysTable {
  kid: string;
  algorithm: string;
  private_jwk: string;
  public_jwk: string;
  created_at: number;
  retired_at: number | null;
}

/** Refresh tokens name their subject (no foreign key): deleting the subject revokes them. */
export interface RefreshTokensTable {
  id: string;
  secret_hash: string;
  subject_kind: SubjectKind;
  subject: string;
  client_id: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface AuditEventsTable {
  id: Generated<number>;
  time: number;
  actor: string | null;
  actor_kind: AuditEventInput['actorKind'];
  action: string;
  target: string | null;
  source_addr: string | null;
  success: Flag;
  /** JSON object text, or null. */
  detail: string | null;
}

/** One failed login (see `AuthStore.recordLoginFailure`). */
export interface LoginFailuresTable {
  id: Generated<number>;
  account: string;
  address: string;
  at: number;
}

/** A named, expiring claim held by one instance (see `MetadataStore.tryAcquireLease`). */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: number;
}

/** The transactional outbox (0006): one row per domain event, see `events/`. */
export interface EventsTable {
  seq: Generated<number>;
  /** The event's id (a UUID), as delivered to subscribers. */
  id: string;
  type: string;
  repository: string | null;
  occurred_at: number;
  /** The whole event as JSON text. */
  payload: string;
  /** When the relay handed it to its subscribers; null while pending. */
  dispatched_at: number | null;
}

/** What a job is doing (see `jobs/`). */
export type JobState = 'queued' | 'running' | 'succeeded' | 'dead' | 'cancelled';

/** The job queue (0006). */
export interface JobsTable {
  id: Generated<number>;
  queue: string;
  /** JSON text. */
  payload: string;
  state: JobState;
  /** Unique per queue while the row exists: enqueueing a key twice is a no-op. */
  dedupe_key: string | null;
  /** Attempts started so far. */
  attempts: Generated<number>;
  max_attempts: number;
  /** When a queued job is due (epoch ms). */
  run_at: number;
  lease_owner: string | null;
  lease_expires_at: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

/** Webhook endpoints (0006). */
export interface WebhooksTable {
  id: Generated<number>;
  name: string;
  /** null: global (every repository); else the namespace whose repositories it hears about. */
  namespace: string | null;
  url: string;
  format: string;
  /** JSON array of event types; empty: all. */
  events: string;
  repository_glob: string;
  tag_glob: string;
  include_pulls: Generated<Flag>;
  /** JSON object of static request headers. */
  headers: string;
  /** The `whsec_...` signing secret. */
  secret: string;
  previous_secret: string | null;
  previous_secret_until: number | null;
  enabled: Generated<Flag>;
  disabled_reason: string | null;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

/** One delivery attempt of one event to one endpoint (0006). */
export interface WebhookDeliveriesTable {
  id: Generated<number>;
  webhook_id: number;
  event_id: string;
  event_type: string;
  job_id: number | null;
  attempt: number;
  /** `delivered`, `failed` (will retry), `dead` (gave up), `gone` (410: endpoint disabled), `refused` (SSRF). */
  outcome: string;
  status_code: number | null;
  duration_ms: number;
  error: string | null;
  response_snippet: string | null;
  at: number;
}

/** Immutable tag rules of a namespace (0009). */
export interface ImmutableTagRulesTable {
  id: Generated<number>;
  namespace: string;
  /** Glob over the repository name after the namespace (as repository rules). */
  repository_glob: string;
  tag_glob: string;
  created_by: string | null;
  created_at: number;
}

/** One retention policy per namespace (0010). */
export interface RetentionPoliciesTable {
  namespace: string;
  /** The policy as JSON text (see `lifecycle/retention-policy.ts`). */
  policy: string;
  updated_by: string | null;
  created_at: number;
  updated_at: number;
}

/** Which blobs a namespace holds, and how many of its repositories link each (0011, see usage-accounting.ts). */
export interface NamespaceBlobsTable {
  namespace: string;
  digest: Digest;
  size: number;
  links: number;
}

/** The bytes a namespace holds and its quota (0011, see usage-accounting.ts). */
export interface NamespaceUsageTable {
  namespace: string;
  bytes: number;
  /** null: unlimited. */
  quota_bytes: number | null;
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
  users: UsersTable;
  robots: RobotsTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  namespaces: NamespacesTable;
  namespace_members: NamespaceMembersTable;
  repository_rules: RepositoryRulesTable;
  signing_keys: SigningKeysTable;
  refresh_tokens: RefreshTokensTable;
  audit_events: AuditEventsTable;
  leases: LeasesTable;
  login_failures: LoginFailuresTable;
  events: EventsTable;
  jobs: JobsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  blob_writes: BlobWritesTable;
  gc_runs: GcRunsTable;
  immutable_tag_rules: ImmutableTagRulesTable;
  retention_policies: RetentionPoliciesTable;
  namespace_blobs: NamespaceBlobsTable;
  namespace_usage: NamespaceUsageTable;
  upstreams: UpstreamsTable;
  proxy_tag_checks: ProxyTagChecksTable;
}

/** Upstream registries of the pull-through cache managed through the API (0012). */
export interface UpstreamsTable {
  id: Generated<number>;
  name: string;
  namespace: string;
  /** JSON: everything but the name, the namespace and the credentials (see `proxy/upstream.ts`). */
  settings: string;
  username: string | null;
  /** The password or token, sealed with the secret box. */
  sealed_password: string | null;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

/** When a cached tag was last compared with its upstream (0012). */
export interface ProxyTagChecksTable {
  repository: string;
  tag: string;
  digest: string;
  checked_at: number;
}
