/**
 * The MetadataStore on top of Kysely, for SQLite and PostgreSQL (see `dialects.ts` for the factories).
 *
 * Concurrency: every multi-statement write runs in one transaction. On SQLite, transactions start with
 * `BEGIN IMMEDIATE` (see `dialects.ts`), so writers from several processes queue on the database lock instead of
 * failing on a lock upgrade. On PostgreSQL (READ COMMITTED), inserts use ON CONFLICT so racing writers never hit a
 * unique violation, and the rows putManifest checks are locked `FOR SHARE` until it commits.
 */
import { randomUUID } from 'node:crypto';
import { Migrator, sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';
import { auditEntryOf } from '../events/audit.ts';
import type { DomainEvent, NewDomainEvent } from '../events/event.ts';
import type { Digest } from '../oci/digest.ts';
import type { UploadHandle } from '../storage/driver.ts';
import { BlobDeletingError } from './store.ts';
import { CompiledRead } from './compiled-read.ts';
import { KyselyAuthStore } from './kysely-auth-store.ts';
import { KyselyWebhookStore } from './kysely-webhook-store.ts';
import { KyselyImmutableTagStore } from './kysely-immutable-tag-store.ts';
import { KyselyJobStore } from './kysely-job-store.ts';
import { KyselyGcStore } from './kysely-gc-store.ts';
import { KyselyReplicationStore } from './kysely-replication-store.ts';
import { greatest, queueBlobs, queueManifests, queueReferencedBy } from './review-queue.ts';
import { KyselyLifecycleStore } from './kysely-lifecycle-store.ts';
import { KyselySignatureStore } from './kysely-signature-store.ts';
import { KyselyUpstreamStore } from './kysely-upstream-store.ts';
import { KyselyUsageStore } from './kysely-usage-store.ts';
import { KyselyVulnDbStore } from './kysely-vulndb-store.ts';
import { KyselyScanStore } from './kysely-scan-store.ts';
import { isOneOf, selectFromList } from './list-parameter.ts';
import { BerthMigrationProvider, MIGRATION_LOCK_TABLE, MIGRATION_TABLE } from './migrations/index.ts';
import * as usage from './usage-accounting.ts';
import type { Database, SqlDialect } from './schema.ts';
import type {
  BlobLink,
  DeleteManifestOutcome,
  DeleteRepositoryOutcome,
  DeleteTagOutcome,
  EventsOf,
  LinkBlobOptions,
  LinkBlobOutcome,
  ManifestRecord,
  MetadataStore,
  Page,
  PageOptions,
  PutManifestInput,
  PutManifestOutcome,
  PutManifestResult,
  ReferrerRecord,
  ReviewTimings,
  StoredEvent,
  UnlinkBlobOutcome,
  UploadSessionRecord,
} from './store.ts';

/** Options of `KyselyMetadataStore`. */
export interface KyselyMetadataStoreOptions {
  /**
   * PostgreSQL only: the schema holding Berth's tables. It must be the first schema of the connections'
   * `search_path` (tables are not schema-qualified). Default: the connection's `current_schema()`.
   */
  readonly schema?: string | undefined;
  /** A check `ping()` runs after its query (SQLite: the database file is still the one opened). */
  readonly check?: (() => Promise<void>) | undefined;
}

const DAY_MS = 24 * 60 * 60 * 1_000;

type Executor = Kysely<Database> | Transaction<Database>;

interface ManifestRow {
  digest: Digest;
  media_type: string;
  payload: Buffer | Uint8Array;
  size: number;
  subject_digest: Digest | null;
  artifact_type: string | null;
  annotations: string | null;
  created_at: number;
}

interface UploadSessionRow {
  id: string;
  repository: string;
  size: number;
  handle: string;
  created_at: number;
  updated_at: number;
  owner: string | null;
}

const MANIFEST_COLUMNS = [
  'm.digest',
  'm.media_type',
  'm.payload',
  'm.size',
  'm.subject_digest',
  'm.artifact_type',
  'm.annotations',
  'm.created_at',
] as const;

/** The reads every pull makes, compiled once (see compiled-read.ts). */
function hotReads(db: Kysely<Database>) {
  return {
    blobLink: new CompiledRead(db, 2, (q, repository, digest) =>
      q
        .selectFrom('repository_blobs as rb')
        .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
        .innerJoin('blobs as b', 'b.digest', 'rb.digest')
        .select(['b.digest', 'b.size'])
        .where('r.name', '=', repository)
        .where('rb.digest', '=', digest as Digest),
    ),
    manifest: new CompiledRead(db, 2, (q, repository, digest) =>
      q
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(MANIFEST_COLUMNS)
        .where('r.name', '=', repository)
        .where('m.digest', '=', digest as Digest),
    ),
    manifestByTag: new CompiledRead(db, 2, (q, repository, tag) =>
      q
        .selectFrom('tags as t')
        .innerJoin('repositories as r', 'r.id', 't.repository_id')
        .innerJoin('manifests as m', 'm.id', 't.manifest_id')
        .select(MANIFEST_COLUMNS)
        .where('r.name', '=', repository)
        .where('t.name', '=', tag),
    ),
  };
}

/** A `MetadataStore` over a Kysely instance on SQLite or PostgreSQL. */
export class KyselyMetadataStore implements MetadataStore {
  private closed = false;
  private auth: KyselyAuthStore | undefined;
  private webhooks: KyselyWebhookStore | undefined;
  private immutableTags: KyselyImmutableTagStore | undefined;
  private readonly committedListeners: (() => void)[] = [];
  private jobs: KyselyJobStore | undefined;
  private gc: KyselyGcStore | undefined;
  private replication: KyselyReplicationStore | undefined;
  private review: ReviewTimings = { blobGracePeriodMs: DAY_MS, manifestGracePeriodMs: DAY_MS };
  private lifecycle: KyselyLifecycleStore | undefined;

  /**
   * @param db the Kysely instance; the store owns it and destroys it on `close()`.
   * @param dialect which SQL dialect `db` speaks (selects dialect-specific DDL and locking clauses).
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
    private readonly options: KyselyMetadataStoreOptions = {},
  ) {
    this.reads = hotReads(db);
  }

  private readonly reads: ReturnType<typeof hotReads>;

  async migrate(): Promise<void> {
    let schema: string | undefined;
    if (this.dialect === 'postgres') {
      // Kysely's Migrator looks its tables up in every schema unless told which one: pin it to ours.
      schema = this.options.schema ?? (await this.currentSchema());
    }
    const migrator = new Migrator({
      db: this.db,
      provider: new BerthMigrationProvider(this.dialect),
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
      migrationTableSchema: schema,
    });
    const { error, results } = await migrator.migrateToLatest();
    if (error !== undefined) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      const message = error instanceof Error ? error.message : String(error);
      const which = failed === undefined ? 'metadata migration' : `metadata migration ${failed}`;
      throw new Error(`${which} failed: ${message}`, { cause: error });
    }
  }

  /**
   * The AuthStore over this store's database and connections (created on first use, then the same instance).
   * It needs `migrate()` like this store, and becomes unusable when this store is closed.
   */
  authStore(): KyselyAuthStore {
    this.auth ??= new KyselyAuthStore(this.db, this.dialect);
    return this.auth;
  }

  /** The WebhookStore over this store's database (created on first use, then the same instance). */
  webhookStore(): KyselyWebhookStore {
    this.webhooks ??= new KyselyWebhookStore(this.db, this.dialect);
    return this.webhooks;
  }

  /** The ImmutableTagStore over this store's database (created on first use, then the same instance). */
  immutableTagStore(): KyselyImmutableTagStore {
    this.immutableTags ??= new KyselyImmutableTagStore(this.db, this.dialect);
    return this.immutableTags;
  }

  /** The UsageStore over this store's database (namespace usage, quotas, repository summaries). */
  usageStore(): KyselyUsageStore {
    return new KyselyUsageStore(this.db, this.dialect);
  }

  /**
   * The JobStore over this store's database and connections (created on first use, then the same instance).
   * It needs `migrate()` like this store, and becomes unusable when this store is closed.
   */
  jobStore(): KyselyJobStore {
    this.jobs ??= new KyselyJobStore(this.db, this.dialect);
    return this.jobs;
  }

  /** The GcStore over this store's database (created on first use, then the same instance). */
  gcStore(): KyselyGcStore {
    this.gc ??= new KyselyGcStore(this.db, this.dialect, {
      storeEvents: (trx, events, now) => this.storeEvents(trx, events, now),
      notifyCommitted: () => this.notifyCommitted(),
    });
    return this.gc;
  }

  /** The ReplicationStore over this store's database (created on first use, then the same instance). */
  replicationStore(): KyselyReplicationStore {
    this.replication ??= new KyselyReplicationStore(this.db, this.dialect, {
      storeEvents: (trx, events, now) => this.storeEvents(trx, events, now),
      notifyCommitted: () => this.notifyCommitted(),
    });
    return this.replication;
  }

  configureReview(timings: ReviewTimings): void {
    this.review = { ...timings };
  }

  /** The SignatureStore (signature trust and verdicts) over this store's database. */
  signatureStore(): KyselySignatureStore {
    return new KyselySignatureStore(this.db, this.dialect);
  }

  /** The VulnDbStore (the offline vulnerability database, migration 0015) over this store's database. */
  vulnDbStore(): KyselyVulnDbStore {
    return new KyselyVulnDbStore(this.db, this.dialect);
  }

  /** The ScanStore (scan reports, scanning policies, external scanners) over this store's database. */
  scanStore(): KyselyScanStore {
    return new KyselyScanStore(this.db, this.dialect);
  }

  /** The UpstreamStore (pull-through cache upstreams and tag checks) over this store's database. */
  upstreamStore(): KyselyUpstreamStore {
    return new KyselyUpstreamStore(this.db, this.dialect);
  }

  /** The LifecycleStore (pull statistics, retention) over this store's database (created on first use). */
  lifecycleStore(): KyselyLifecycleStore {
    this.lifecycle ??= new KyselyLifecycleStore(this.db, this.dialect);
    return this.lifecycle;
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
    await this.options.check?.();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.destroy();
  }

  // --- repositories -------------------------------------------------------------------------------

  async repositoryExists(name: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('repositories')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirst();
    return row !== undefined;
  }

  async deleteRepository(name: string, events?: EventsOf<DeleteRepositoryOutcome>): Promise<boolean> {
    return this.writing(true, async (trx) => {
      const id = await this.findRepositoryId(trx, name);
      if (id === undefined) return false;
      await usage.repositoryDeleting(trx, this.dialect, id);
      const now = Date.now();
      // Everything the repository held goes to review: its blobs may be referenced nowhere else now.
      await queueBlobs(trx, now, (eb) =>
        eb
          .selectFrom('repository_blobs')
          .select('digest')
          .where('repository_id', '=', id)
          .union(
            eb
              .selectFrom('manifest_references as mr')
              .innerJoin('manifests as m', 'm.id', 'mr.manifest_id')
              .select('mr.digest')
              .where('m.repository_id', '=', id)
              .where('mr.kind', '=', 'blob'),
          ),
      );
      // Children first (the schema cascades, but the contract does not rely on it), the repository row last.
      const tags = await trx.deleteFrom('tags').where('repository_id', '=', id).executeTakeFirst();
      await trx
        .deleteFrom('manifest_references')
        .where('manifest_id', 'in', (eb) =>
          eb.selectFrom('manifests').select('id').where('repository_id', '=', id),
        )
        .execute();
      const manifests = await trx.deleteFrom('manifests').where('repository_id', '=', id).executeTakeFirst();
      const blobs = await trx
        .deleteFrom('repository_blobs')
        .where('repository_id', '=', id)
        .executeTakeFirst();
      await trx.deleteFrom('repositories').where('id', '=', id).execute();
      if (events) {
        const outcome = {
          manifests: Number(manifests.numDeletedRows),
          tags: Number(tags.numDeletedRows),
          blobs: Number(blobs.numDeletedRows),
        };
        await this.storeEvents(trx, events(outcome), now);
      }
      return true;
    });
  }

  async listRepositories(options: PageOptions): Promise<Page<string>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('repositories')
      .select('name')
      .orderBy('name')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('name', '>', options.after);
    const rows = await query.execute();
    return toPage(
      rows.map((r) => r.name),
      limit,
    );
  }

  async searchRepositories(
    query: string,
    options: { limit: number; offset: number },
  ): Promise<{ total: number; names: string[] }> {
    const limit = checkCount('limit', options.limit);
    const offset = checkCount('offset', options.offset);
    const pattern = `%${query.replace(/[\\%_]/g, '\\$&')}%`;
    const matches = sql<boolean>`lower(${sql.ref('name')}) like lower(${pattern}) escape '\\'`;
    const rows = await this.db
      .selectFrom('repositories')
      .select((eb) => ['name', eb.fn.countAll<number>().over().as('total')])
      .where(matches)
      .orderBy('name')
      .limit(limit)
      .offset(offset)
      .execute();
    const first = rows[0];
    if (first !== undefined) return { total: Number(first.total), names: rows.map((r) => r.name) };
    if (limit > 0 && offset === 0) return { total: 0, names: [] };
    // An empty page (limit 0 or offset past the end) carries no window count: count separately.
    const count = await this.db
      .selectFrom('repositories')
      .select((eb) => eb.fn.countAll<number>().as('total'))
      .where(matches)
      .executeTakeFirstOrThrow();
    return { total: Number(count.total), names: [] };
  }

  // --- blobs ---------------------------------------------------------------------------------------

  async linkBlob(
    repository: string,
    digest: Digest,
    size: number,
    events?: EventsOf<LinkBlobOutcome>,
    options: LinkBlobOptions = {},
  ): Promise<boolean> {
    const now = Date.now();
    const reviewAfter = now + this.review.blobGracePeriodMs;
    const { dialect } = this;
    // Always a transaction: the blob row's check and the link commit together (see docs/gc.md).
    const linked = await this.transaction(async (trx) => {
      const existing = await this.findRepositoryId(trx, repository);
      // The upsert locks the blob row (PostgreSQL: against the collector's FOR UPDATE) and re-queues the blob for
      // after the grace period, unless the collector is deleting it: then no row comes back.
      // A writer's link starts the blob's grace period anew (its hold kept the collector away until now).
      const reviewed =
        options.holder !== undefined
          ? sql<number>`${reviewAfter}`
          : greatest(dialect, sql.ref('blobs.review_after'), reviewAfter);
      const upsert = options.mustExist
        ? trx
            .updateTable('blobs')
            .set({ review_after: greatest(dialect, sql.ref('review_after'), reviewAfter) })
            .where('digest', '=', digest)
            .where('deleting_at', 'is', null)
            .returning('size')
        : trx
            .insertInto('blobs')
            .values({ digest, size, created_at: now, review_after: reviewAfter })
            .onConflict((oc) =>
              oc
                .column('digest')
                .doUpdateSet({ review_after: reviewed })
                .where('blobs.deleting_at', 'is', null),
            )
            .returning('size');
      const row = await upsert.executeTakeFirst();
      if (row === undefined) {
        if (options.mustExist) return false;
        throw new BlobDeletingError(digest);
      }
      const repositoryId = existing ?? (await this.ensureRepository(trx, repository, now));
      const inserted = await trx
        .insertInto('repository_blobs')
        .values({ repository_id: repositoryId, digest, created_at: now })
        .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
        .returning('digest')
        .executeTakeFirst();
      if (options.holder !== undefined) {
        await trx.deleteFrom('blob_writes').where('holder', '=', options.holder).execute();
      }
      // Last: the namespace's usage row is the last lock every write takes (usage-accounting.ts).
      const used = inserted ? await usage.blobLinkAdded(trx, repository, digest, Number(row.size)) : null;
      if (events) {
        await this.storeEvents(trx, events({ repositoryCreated: existing === undefined, usage: used }), now);
      }
      return true;
    });
    if (linked && events) this.notifyCommitted();
    return linked;
  }

  async holdBlob(digest: Digest, size: number, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    return this.transaction(async (trx) => {
      // A blob row that is new here is queued at once: the collector reviews it, finds the hold and queues it
      // again for when the hold expires, so a writer that dies before linking leaves a row (and maybe bytes) only
      // until then. The no-op update on an existing row locks it, so the collector's decision and this hold are
      // ordered (see docs/gc.md).
      const row = await trx
        .insertInto('blobs')
        .values({ digest, size, created_at: now, review_after: now })
        .onConflict((oc) =>
          oc
            .column('digest')
            .doUpdateSet({ digest: (eb) => eb.ref('excluded.digest') })
            .where('blobs.deleting_at', 'is', null),
        )
        .returning('digest')
        .executeTakeFirst();
      if (row === undefined) return false;
      await trx
        .insertInto('blob_writes')
        .values({ holder, digest, expires_at: now + ttlMs })
        .onConflict((oc) => oc.column('holder').doUpdateSet({ expires_at: now + ttlMs }))
        .execute();
      return true;
    });
  }

  async releaseBlobHold(holder: string): Promise<void> {
    await this.db.deleteFrom('blob_writes').where('holder', '=', holder).execute();
  }

  async getBlobLink(repository: string, digest: Digest): Promise<BlobLink | null> {
    const row = await this.reads.blobLink.first(repository, digest);
    return row === undefined ? null : { digest: row.digest, size: Number(row.size) };
  }

  async findBlob(digest: Digest): Promise<BlobLink | null> {
    // Only blobs linked somewhere count: an unlinked blob row merely waits for garbage collection.
    const row = await this.db
      .selectFrom('blobs as b')
      .select(['b.digest', 'b.size'])
      .where('b.digest', '=', digest)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('repository_blobs as rb')
            .select(eb.lit(1).as('one'))
            .whereRef('rb.digest', '=', 'b.digest'),
        ),
      )
      .executeTakeFirst();
    return row === undefined ? null : { digest: row.digest, size: Number(row.size) };
  }

  async unlinkBlob(
    repository: string,
    digest: Digest,
    events?: EventsOf<UnlinkBlobOutcome>,
  ): Promise<boolean> {
    return this.writing(true, async (trx) => {
      const result = await trx
        .deleteFrom('repository_blobs')
        .where('digest', '=', digest)
        .where('repository_id', '=', (eb) =>
          eb.selectFrom('repositories').select('id').where('name', '=', repository),
        )
        .executeTakeFirst();
      if (result.numDeletedRows === 0n) return false;
      const now = Date.now();
      await queueBlobs(trx, now, [digest]);
      await usage.blobLinksRemoved(trx, this.dialect, repository, [digest]);
      if (events) {
        const blob = await trx
          .selectFrom('blobs')
          .select('size')
          .where('digest', '=', digest)
          .executeTakeFirst();
        await this.storeEvents(trx, events({ size: Number(blob?.size ?? 0) }), now);
      }
      return true;
    });
  }

  // --- manifests and tags --------------------------------------------------------------------------

  // Descriptors and tags are as many as the client sent: each list is bound as one parameter (list-parameter.ts).
  async putManifest(
    input: PutManifestInput,
    events?: EventsOf<PutManifestOutcome>,
  ): Promise<PutManifestResult> {
    const blobs = [...new Set(input.blobs)];
    const manifests = [...new Set(input.manifests)];
    const tags = [...new Set(input.tags)];
    const now = Date.now();
    const { dialect } = this;
    const pg = dialect === 'postgres';

    const result = await this.transaction(async (trx): Promise<PutManifestResult> => {
      const existingId = await this.findRepositoryId(trx, input.repository);

      const linked = new Set<Digest>();
      if (existingId !== undefined && blobs.length > 0) {
        let q = trx
          .selectFrom('repository_blobs as rb')
          .innerJoin('blobs as b', 'b.digest', 'rb.digest')
          .select('rb.digest')
          .where('rb.repository_id', '=', existingId)
          .where('b.deleting_at', 'is', null)
          .where(isOneOf(dialect, 'rb.digest', blobs))
          // Locked in digest order, the collector's order: neither can hold one row the other waits for first.
          .orderBy('rb.digest');
        // Keep the links and the blob rows from being removed before this transaction commits: the collector
        // locks a blob row FOR UPDATE before it decides, so either it sees this manifest's references or this
        // check sees its deletion mark (see docs/gc.md).
        if (pg) q = q.forShare();
        for (const row of await q.execute()) linked.add(row.digest);
      }
      const present = new Set<Digest>();
      if (existingId !== undefined && manifests.length > 0) {
        let q = trx
          .selectFrom('manifests')
          .select('digest')
          .where('repository_id', '=', existingId)
          .where(isOneOf(dialect, 'digest', manifests));
        if (pg) q = q.forShare();
        for (const row of await q.execute()) present.add(row.digest);
      }
      const missingBlobs = blobs.filter((d) => !linked.has(d));
      const missingManifests = manifests.filter((d) => !present.has(d));
      if (!input.sparse && (missingBlobs.length > 0 || missingManifests.length > 0)) {
        return { ok: false, missingBlobs, missingManifests };
      }

      const repositoryId = existingId ?? (await this.ensureRepository(trx, input.repository, now));
      let manifestCreated = true;
      if (events && existingId !== undefined) {
        const existing = await trx
          .selectFrom('manifests')
          .select('id')
          .where('repository_id', '=', existingId)
          .where('digest', '=', input.digest)
          .executeTakeFirst();
        manifestCreated = existing === undefined;
      }
      const manifestRow = {
        repository_id: repositoryId,
        digest: input.digest,
        media_type: input.mediaType,
        payload: input.payload,
        size: input.payload.length,
        subject_digest: input.subject,
        artifact_type: input.artifactType,
        annotations: input.annotations === null ? null : JSON.stringify(input.annotations),
        created_at: now,
        // New content is reviewed once its grace period has passed (it may never get a tag or a parent).
        review_after: now + this.review.manifestGracePeriodMs,
      };
      // DO NOTHING first: it tells whether this push stored the manifest (the namespace's usage counts it once).
      // For an existing one, DO UPDATE (a no-op on the digest) rather than DO NOTHING: it returns the id of the
      // row and locks it, so a concurrent deleteManifest cannot remove it under our tags.
      const inserted = await trx
        .insertInto('manifests')
        .values(manifestRow)
        .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
        .returning('id')
        .executeTakeFirst();
      const manifest =
        inserted ??
        (await trx
          .insertInto('manifests')
          .values(manifestRow)
          .onConflict((oc) =>
            oc
              .columns(['repository_id', 'digest'])
              .doUpdateSet({ digest: (eb) => eb.ref('excluded.digest') }),
          )
          .returning('id')
          .executeTakeFirstOrThrow());
      const manifestId = Number(manifest.id);

      // The tags' previous targets (for the events, and for review: a manifest a tag leaves may be garbage now),
      // read under a lock of the tag rows so that a concurrent move of the same tag is seen, not overwritten. After
      // the manifest's upsert: every push locks its manifest row first, then its tag rows in name order (no deadlock).
      const movedTags = new Map<string, Digest>();
      const leftManifests: number[] = [];
      if (existingId !== undefined && tags.length > 0) {
        let q = trx
          .selectFrom('tags as t')
          .innerJoin('manifests as m', 'm.id', 't.manifest_id')
          .select(['t.name', 'm.digest', 'm.id'])
          .where('t.repository_id', '=', existingId)
          .where(isOneOf(dialect, 't.name', tags))
          .orderBy('t.name');
        if (pg) q = q.forUpdate('t');
        for (const row of await q.execute()) {
          if (row.digest === input.digest) continue;
          movedTags.set(row.name, row.digest);
          leftManifests.push(Number(row.id));
        }
      }

      for (const [kind, digests] of [
        ['blob', blobs],
        ['manifest', manifests],
      ] as const) {
        if (digests.length === 0) continue;
        await trx
          .insertInto('manifest_references')
          .columns(['manifest_id', 'digest', 'kind'])
          .expression(
            selectFromList(trx, dialect, digests).select([
              bigint(manifestId).as('manifest_id'),
              'list.value as digest',
              sql.lit(kind).as('kind'),
            ]),
          )
          .onConflict((oc) => oc.columns(['manifest_id', 'kind', 'digest']).doNothing())
          .execute();
      }

      if (tags.length > 0) {
        await trx
          .insertInto('tags')
          .columns(['repository_id', 'name', 'manifest_id', 'updated_at'])
          .expression(
            selectFromList(trx, dialect, tags)
              .select([
                bigint(repositoryId).as('repository_id'),
                'list.value as name',
                bigint(manifestId).as('manifest_id'),
                bigint(now).as('updated_at'),
              ])
              // A fixed order for the tag upserts, so concurrent pushes lock tag rows in the same order (no deadlock).
              .orderBy('list.value'),
          )
          .onConflict((oc) =>
            oc.columns(['repository_id', 'name']).doUpdateSet({
              manifest_id: (eb) => eb.ref('excluded.manifest_id'),
              updated_at: (eb) => eb.ref('excluded.updated_at'),
            }),
          )
          .execute();
      }
      await queueManifests(trx, now, leftManifests);
      // Last, after the tags: the namespace's usage row is the last lock every write takes (usage-accounting.ts).
      const used = inserted ? await usage.manifestAdded(trx, input.repository, manifestRow.size) : null;
      if (events) {
        const outcome = {
          repositoryCreated: existingId === undefined,
          manifestCreated,
          movedTags,
          usage: used,
        };
        await this.storeEvents(trx, events(outcome), now);
      }
      return { ok: true };
    });
    if (result.ok && events) this.notifyCommitted();
    return result;
  }

  async getManifest(repository: string, digest: Digest): Promise<ManifestRecord | null> {
    const row = await this.reads.manifest.first(repository, digest);
    return row === undefined ? null : toManifestRecord(repository, row);
  }

  async getManifestByTag(repository: string, tag: string): Promise<ManifestRecord | null> {
    const row = await this.reads.manifestByTag.first(repository, tag);
    return row === undefined ? null : toManifestRecord(repository, row);
  }

  async deleteManifest(
    repository: string,
    digest: Digest,
    events?: EventsOf<DeleteManifestOutcome>,
  ): Promise<boolean> {
    return this.writing(true, async (trx) => {
      let q = trx
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['m.id', 'm.repository_id', 'm.media_type', 'm.size'])
        .where('r.name', '=', repository)
        .where('m.digest', '=', digest);
      if (this.dialect === 'postgres') q = q.forUpdate('m');
      const target = await q.executeTakeFirst();
      if (target === undefined) return false;
      // The tags go with the manifest: the events name them, so read them first.
      const tagRows = events
        ? await trx
            .selectFrom('tags')
            .select('name')
            .where('manifest_id', '=', target.id)
            .orderBy('name')
            .execute()
        : [];
      const now = Date.now();
      // What the manifest referenced (blobs, index children) and its referrers may be garbage now.
      await queueReferencedBy(trx, now, [
        { id: Number(target.id), repositoryId: Number(target.repository_id), digest },
      ]);
      await trx.deleteFrom('tags').where('manifest_id', '=', target.id).execute();
      await trx.deleteFrom('manifest_references').where('manifest_id', '=', target.id).execute();
      await trx.deleteFrom('manifests').where('id', '=', target.id).execute();
      await usage.manifestsRemoved(trx, repository, Number(target.size));
      if (events) {
        const outcome = {
          mediaType: target.media_type,
          size: Number(target.size),
          tags: tagRows.map((r) => r.name),
        };
        await this.storeEvents(trx, events(outcome), now);
      }
      return true;
    });
  }

  async deleteTag(repository: string, tag: string, events?: EventsOf<DeleteTagOutcome>): Promise<boolean> {
    return this.writing(true, async (trx) => {
      const row = await trx
        .selectFrom('tags as t')
        .innerJoin('repositories as r', 'r.id', 't.repository_id')
        .innerJoin('manifests as m', 'm.id', 't.manifest_id')
        .select(['t.repository_id', 'm.id', 'm.digest', 'm.media_type'])
        .where('r.name', '=', repository)
        .where('t.name', '=', tag)
        .executeTakeFirst();
      if (row === undefined) return false;
      const result = await trx
        .deleteFrom('tags')
        .where('repository_id', '=', row.repository_id)
        .where('name', '=', tag)
        .where('manifest_id', '=', row.id)
        .executeTakeFirst();
      if (result.numDeletedRows === 0n) return false;
      const now = Date.now();
      // The manifest may have lost its last tag: the collector decides.
      await queueManifests(trx, now, [Number(row.id)]);
      if (events) {
        await this.storeEvents(trx, events({ digest: row.digest, mediaType: row.media_type }), now);
      }
      return true;
    });
  }

  async listTags(repository: string, options: PageOptions): Promise<Page<string>> {
    const limit = checkCount('limit', options.limit);
    let query = this.db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .select('t.name')
      .where('r.name', '=', repository)
      .orderBy('t.name')
      .limit(limit + 1);
    if (options.after !== undefined) query = query.where('t.name', '>', options.after);
    const rows = await query.execute();
    return toPage(
      rows.map((r) => r.name),
      limit,
    );
  }

  async listReferrers(
    repository: string,
    subject: Digest,
    options: { artifactType?: string } = {},
  ): Promise<ReferrerRecord[]> {
    let query = this.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select(['m.digest', 'm.media_type', 'm.size', 'm.artifact_type', 'm.annotations'])
      .where('r.name', '=', repository)
      .where('m.subject_digest', '=', subject)
      .orderBy('m.digest');
    const { artifactType } = options;
    if (artifactType !== undefined) query = query.where('m.artifact_type', '=', artifactType);
    const rows = await query.execute();
    return rows.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      size: Number(row.size),
      artifactType: row.artifact_type,
      annotations: parseAnnotations(row.annotations),
    }));
  }

  // --- upload sessions -----------------------------------------------------------------------------

  // --- the event outbox ---------------------------------------------------------------------------

  async appendEvents(events: readonly NewDomainEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.writing(true, (trx) => this.storeEvents(trx, events, Date.now()));
  }

  async pendingEvents(limit: number): Promise<StoredEvent[]> {
    const rows = await this.db
      .selectFrom('events')
      .select(['seq', 'payload'])
      .where('dispatched_at', 'is', null)
      .orderBy('seq')
      .limit(checkCount('limit', limit))
      .execute();
    return rows.map((r) => ({ seq: Number(r.seq), event: JSON.parse(r.payload) as DomainEvent }));
  }

  async markEventsDispatched(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.db
      .updateTable('events')
      .set({ dispatched_at: Date.now() })
      .where('seq', 'in', [...seqs])
      .where('dispatched_at', 'is', null)
      .execute();
  }

  async pruneEvents(before: Date, limit: number): Promise<number> {
    const result = await this.db
      .deleteFrom('events')
      .where('seq', 'in', (eb) =>
        eb
          .selectFrom('events')
          .select('seq')
          .where('dispatched_at', '<', before.getTime())
          .orderBy('seq')
          .limit(checkCount('limit', limit)),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  onEventsCommitted(listener: () => void): void {
    this.committedListeners.push(listener);
  }

  /**
   * Runs `work` in a transaction (a write that stores events commits them with its change, and one that changes
   * a namespace's usage commits the accounting with it); when it committed and `storesEvents`, wakes the outbox
   * listeners.
   */
  private async writing<T>(storesEvents: boolean, work: (db: Executor) => Promise<T>): Promise<T> {
    const result = await this.transaction(work);
    if (storesEvents && result !== false) this.notifyCommitted();
    return result;
  }

  /**
   * Runs `work` in a transaction; on PostgreSQL, runs it again (a few times, after a short random pause) when the
   * server aborted it to break a deadlock or a serialization failure. Writes lock rows of several tables (a
   * manifest, its tags, the manifests a tag leaves, the blobs it references) in an order that depends on what
   * they find, so two writes (or a write and the collector) can each hold a row the other waits for; the server
   * detects the cycle and aborts one, and that one retries here instead of failing the request. `work` must only
   * touch the database (it may run more than once).
   */
  private async transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute(work);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (attempt >= 8 || (code !== '40P01' && code !== '40001')) throw e;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  private notifyCommitted(): void {
    for (const listener of this.committedListeners) {
      try {
        listener();
      } catch {
        // A listener only wakes a loop; its failure must not fail a committed write.
      }
    }
  }

  /** Inserts `events` (and the audit records of those audited) with the transaction `trx`. */
  private async storeEvents(trx: Executor, events: readonly NewDomainEvent[], now: number): Promise<void> {
    if (events.length === 0) return;
    const occurredAt = new Date(now);
    const stored: DomainEvent[] = events.map((e) => ({
      ...e,
      id: randomUUID(),
      occurredAt: occurredAt.toISOString(),
    }));
    await trx
      .insertInto('events')
      .values(
        stored.map((e) => ({
          id: e.id,
          type: e.type,
          repository: e.target.repository,
          occurred_at: now,
          payload: JSON.stringify(e),
        })),
      )
      .execute();
    const audits = stored.flatMap((e) => {
      const entry = auditEntryOf(e, occurredAt);
      return entry === null ? [] : [entry];
    });
    if (audits.length > 0) {
      await trx
        .insertInto('audit_events')
        .values(
          audits.map((a) => ({
            time: a.time.getTime(),
            actor: a.actor,
            actor_kind: a.actorKind,
            action: a.action,
            target: a.target,
            source_addr: a.sourceAddr,
            success: a.success ? 1 : 0,
            detail: a.detail === null ? null : JSON.stringify(a.detail),
          })),
        )
        .execute();
    }
  }

  async createUploadSession(session: {
    id: string;
    repository: string;
    handle: UploadHandle;
    owner?: string | null;
  }): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('upload_sessions')
      .values({
        id: session.id,
        repository: session.repository,
        size: 0,
        handle: JSON.stringify(session.handle),
        created_at: now,
        updated_at: now,
        owner: session.owner ?? null,
      })
      .execute();
  }

  async getUploadSession(id: string): Promise<UploadSessionRecord | null> {
    const row = await this.db
      .selectFrom('upload_sessions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toUploadSessionRecord(row);
  }

  async advanceUploadSession(
    id: string,
    expectedSize: number,
    size: number,
    handle: UploadHandle,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('upload_sessions')
      .set({ size, handle: JSON.stringify(handle), updated_at: Date.now() })
      .where('id', '=', id)
      .where('size', '=', expectedSize)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const row = await this.db
      .insertInto('leases')
      .values({ name, holder, expires_at: now + ttlMs })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, expires_at: now + ttlMs })
          .where((eb) => eb.or([eb('leases.expires_at', '<=', now), eb('leases.holder', '=', holder)])),
      )
      .returning('holder')
      .executeTakeFirst();
    return row?.holder === holder;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
  }

  async deleteUploadSession(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('upload_sessions').where('id', '=', id).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async listStaleUploadSessions(before: Date, limit: number): Promise<UploadSessionRecord[]> {
    const rows = await this.db
      .selectFrom('upload_sessions')
      .selectAll()
      .where('updated_at', '<', before.getTime())
      .orderBy('updated_at')
      .orderBy('id')
      .limit(checkCount('limit', limit))
      .execute();
    return rows.map(toUploadSessionRecord);
  }

  async findUploadSessionHandles(handleIds: readonly string[]): Promise<string[]> {
    if (handleIds.length === 0) return [];
    // The handle is JSON text written by JSON.stringify; its `id` is read where the row is. The table holds only
    // live and recently idle sessions, so a scan per call (the purge makes one per batch of candidates) is cheap.
    const handleId =
      this.dialect === 'postgres'
        ? sql<string>`(${sql.ref('handle')}::jsonb ->> 'id')`
        : sql<string>`json_extract(${sql.ref('handle')}, '$.id')`;
    const rows = await this.db
      .selectFrom('upload_sessions')
      .select(handleId.as('handle_id'))
      .distinct()
      .where(handleId, 'in', [...handleIds])
      .execute();
    return rows.map((r) => r.handle_id);
  }

  // --- helpers -------------------------------------------------------------------------------------

  private async findRepositoryId(db: Executor, name: string): Promise<number | undefined> {
    const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst();
    return row === undefined ? undefined : Number(row.id);
  }

  /** The repository's id, creating the repository if needed (race-free: ON CONFLICT DO NOTHING). */
  private async ensureRepository(db: Executor, name: string, now: number): Promise<number> {
    const existing = await this.findRepositoryId(db, name);
    if (existing !== undefined) return existing;
    const inserted = await db
      .insertInto('repositories')
      .values({ name, created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted !== undefined) return Number(inserted.id);
    // Another transaction created it between our select and insert (PostgreSQL READ COMMITTED).
    const created = await this.findRepositoryId(db, name);
    if (created === undefined) throw new Error(`repository ${name} vanished while being created`);
    return created;
  }

  private async currentSchema(): Promise<string> {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(this.db);
    const schema = rows[0]?.schema;
    if (schema === undefined || schema === null) {
      throw new Error('PostgreSQL has no current schema: no schema of the search_path exists');
    }
    return schema;
  }
}

/**
 * `value` as a bigint parameter: in an `INSERT ... SELECT`, PostgreSQL types a bare parameter of the select list as
 * text, which a bigint column refuses.
 */
function bigint(value: number): RawBuilder<number> {
  return sql<number>`cast(${value} as bigint)`;
}

function toManifestRecord(repository: string, row: ManifestRow): ManifestRecord {
  return {
    repository,
    digest: row.digest,
    mediaType: row.media_type,
    payload: Buffer.isBuffer(row.payload) ? row.payload : Buffer.from(row.payload),
    size: Number(row.size),
    subject: row.subject_digest,
    artifactType: row.artifact_type,
    annotations: parseAnnotations(row.annotations),
    createdAt: new Date(Number(row.created_at)),
  };
}

function toUploadSessionRecord(row: UploadSessionRow): UploadSessionRecord {
  return {
    id: row.id,
    repository: row.repository,
    size: Number(row.size),
    handle: JSON.parse(row.handle) as UploadHandle,
    owner: row.owner,
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function parseAnnotations(text: string | null): Record<string, string> | null {
  return text === null ? null : (JSON.parse(text) as Record<string, string>);
}

function toPage(rows: string[], limit: number): Page<string> {
  return { items: rows.slice(0, limit), hasMore: rows.length > limit };
}

function checkCount(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  return n;
}
