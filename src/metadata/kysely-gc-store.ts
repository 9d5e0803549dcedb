/**
 * The GcStore on top of Kysely, for SQLite and PostgreSQL (get one with `KyselyMetadataStore.gcStore()`).
 *
 * Locking: on PostgreSQL each review transaction locks the rows it decides about (`FOR UPDATE`, in key order, so
 * that two reviews and the writers that lock the same rows in the same order cannot deadlock) and re-reads what
 * it decides on with statements that start after the locks are held, so under READ COMMITTED they see every write
 * that committed before. On SQLite every transaction is `BEGIN IMMEDIATE`: the whole review runs under the
 * database's write lock. docs/gc.md argues why this is race-free against the writers.
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { NewDomainEvent } from '../events/event.ts';
import type { Digest } from '../oci/digest.ts';
import { EMPTY_PROGRESS } from './gc-store.ts';
import type {
  BlobFacts,
  CollectedBlob,
  CollectedManifest,
  GcProgress,
  GcRunRecord,
  GcStore,
  ManifestFacts,
  OrphanedReferrers,
} from './gc-store.ts';
import { queueReferencedBy } from './review-queue.ts';
import { blobLinksRemoved, manifestsRemoved } from './usage-accounting.ts';
import type { Database, GcRunsTable, SqlDialect } from './schema.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** What the metadata store lends this store: its outbox writer and its commit notification. */
export interface GcStoreHooks {
  storeEvents(trx: Executor, events: readonly NewDomainEvent[], now: number): Promise<void>;
  notifyCommitted(): void;
}

/** PostgreSQL error codes of a transaction aborted to break a deadlock or a serialization conflict. */
const RETRYABLE = new Set(['40P01', '40001']);

export class KyselyGcStore implements GcStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: SqlDialect,
    private readonly hooks: GcStoreHooks,
  ) {}

  private get pg(): boolean {
    return this.dialect === 'postgres';
  }

  async countDue(now: number): Promise<{ manifests: number; blobs: number }> {
    const m = await this.db
      .selectFrom('manifests')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('review_after', '<=', now)
      .executeTakeFirstOrThrow();
    const b = await this.db
      .selectFrom('blobs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('review_after', '<=', now)
      .where('deleting_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { manifests: Number(m.n), blobs: Number(b.n) };
  }

  async dueManifests(now: number, limit: number): Promise<number[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .select('id')
      .where('review_after', '<=', now)
      .orderBy('review_after')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => Number(r.id));
  }

  async collectManifests(
    ids: readonly number[],
    now: number,
    orphanedReferrers: OrphanedReferrers,
    events: (m: CollectedManifest) => readonly NewDomainEvent[],
  ): Promise<CollectedManifest[]> {
    if (ids.length === 0) return [];
    const collected = await this.retrying(() =>
      this.db.transaction().execute(async (trx) => {
        let q = trx
          .selectFrom('manifests as m')
          .innerJoin('repositories as r', 'r.id', 'm.repository_id')
          .select([
            'm.id',
            'm.repository_id',
            'm.digest',
            'm.media_type',
            'm.size',
            'm.subject_digest',
            'r.name',
          ])
          .where('m.id', 'in', [...ids])
          .where('m.review_after', '<=', now)
          .orderBy('m.id');
        if (this.pg) q = q.forUpdate('m');
        const due = await q.execute();
        if (due.length === 0) return [];
        const dueIds = due.map((m) => Number(m.id));
        const keep = new Set<number>();
        for (const id of await this.taggedOrParented(trx, dueIds)) keep.add(id);
        for (const m of due) {
          if (m.subject_digest === null) continue;
          if (orphanedReferrers === 'keep') keep.add(Number(m.id));
        }
        for (const id of await this.withPresentSubject(trx, dueIds)) keep.add(id);

        const kept = dueIds.filter((id) => keep.has(id));
        const garbage = due.filter((m) => !keep.has(Number(m.id)));
        // Off the queue first: deleting a garbage parent below queues its children again.
        if (kept.length > 0) {
          await trx.updateTable('manifests').set({ review_after: null }).where('id', 'in', kept).execute();
        }
        if (garbage.length === 0) return [];
        await queueReferencedBy(
          trx,
          now,
          garbage.map((m) => ({ id: Number(m.id), repositoryId: Number(m.repository_id), digest: m.digest })),
        );
        const garbageIds = garbage.map((m) => Number(m.id));
        await trx.deleteFrom('tags').where('manifest_id', 'in', garbageIds).execute();
        await trx.deleteFrom('manifest_references').where('manifest_id', 'in', garbageIds).execute();
        await trx.deleteFrom('manifests').where('id', 'in', garbageIds).execute();
        // Last: the namespaces' usage rows are the last locks every write takes (usage-accounting.ts).
        const bytesByRepository = new Map<string, number>();
        for (const m of garbage)
          bytesByRepository.set(m.name, (bytesByRepository.get(m.name) ?? 0) + Number(m.size));
        for (const [repository, bytes] of [...bytesByRepository].sort(([a], [b]) => (a < b ? -1 : 1))) {
          await manifestsRemoved(trx, repository, bytes);
        }
        const result = garbage.map((m) => ({
          repository: m.name,
          digest: m.digest,
          mediaType: m.media_type,
          size: Number(m.size),
        }));
        await this.hooks.storeEvents(trx, result.flatMap(events), now);
        return result;
      }),
    );
    if (collected.length > 0) this.hooks.notifyCommitted();
    return collected;
  }

  async manifestFacts(ids: readonly number[], now: number): Promise<ManifestFacts[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select([
        'm.id',
        'm.repository_id',
        'm.digest',
        'm.media_type',
        'm.size',
        'm.subject_digest',
        'm.review_after',
        'r.name',
      ])
      .where('m.id', 'in', [...ids])
      .execute();
    const facts: ManifestFacts[] = [];
    for (const m of rows) {
      const id = Number(m.id);
      const tagged = await this.db
        .selectFrom('tags')
        .select('name')
        .where('manifest_id', '=', id)
        .limit(1)
        .executeTakeFirst();
      const parents = await this.db
        .selectFrom('manifest_references as mr')
        .innerJoin('manifests as p', 'p.id', 'mr.manifest_id')
        .select('p.id')
        .where('mr.kind', '=', 'manifest')
        .where('mr.digest', '=', m.digest)
        .where('p.repository_id', '=', m.repository_id)
        .execute();
      let subject: number | null | 'absent' = null;
      if (m.subject_digest !== null) {
        const s = await this.db
          .selectFrom('manifests')
          .select('id')
          .where('repository_id', '=', m.repository_id)
          .where('digest', '=', m.subject_digest)
          .executeTakeFirst();
        subject = s === undefined ? 'absent' : Number(s.id);
      }
      const dependents = await this.db
        .selectFrom('manifests as c')
        .select('c.id')
        .where('c.repository_id', '=', m.repository_id)
        .where((eb) =>
          eb.or([
            eb('c.subject_digest', '=', m.digest),
            eb(
              'c.digest',
              'in',
              eb
                .selectFrom('manifest_references as mr')
                .select('mr.digest')
                .where('mr.manifest_id', '=', id)
                .where('mr.kind', '=', 'manifest'),
            ),
          ]),
        )
        .where('c.id', '<>', id)
        .execute();
      const blobs = await this.db
        .selectFrom('manifest_references')
        .select('digest')
        .where('manifest_id', '=', id)
        .where('kind', '=', 'blob')
        .execute();
      facts.push({
        id,
        repositoryId: Number(m.repository_id),
        repository: m.name,
        digest: m.digest,
        mediaType: m.media_type,
        size: Number(m.size),
        due: m.review_after !== null && Number(m.review_after) <= now,
        tagged: tagged !== undefined,
        parents: parents.map((p) => Number(p.id)),
        subject,
        dependents: dependents.map((d) => Number(d.id)),
        blobs: blobs.map((b) => b.digest),
      });
    }
    return facts;
  }

  async dueBlobs(now: number, limit: number): Promise<Digest[]> {
    const rows = await this.db
      .selectFrom('blobs')
      .select('digest')
      .where('review_after', '<=', now)
      .where('deleting_at', 'is', null)
      .orderBy('review_after')
      .orderBy('digest')
      .limit(limit)
      .execute();
    return rows.map((r) => r.digest);
  }

  async markBlobsDeleting(digests: readonly Digest[], now: number): Promise<CollectedBlob[]> {
    if (digests.length === 0) return [];
    return this.retrying(() =>
      this.db.transaction().execute(async (trx) => {
        // The lock every writer of these blob rows also takes (a link's upsert, a hold's upsert, a manifest
        // push's FOR SHARE): from here until commit, none of them can start relying on these blobs.
        let q = trx
          .selectFrom('blobs')
          .select(['digest', 'size'])
          .where('digest', 'in', [...digests])
          .where('review_after', '<=', now)
          .where('deleting_at', 'is', null)
          .orderBy('digest');
        if (this.pg) q = q.forUpdate();
        const due = await q.execute();
        if (due.length === 0) return [];
        const dueDigests = due.map((b) => b.digest);
        // Statements started after the locks: they see every reference and hold committed before.
        const referenced = new Set(
          (
            await trx
              .selectFrom('manifest_references')
              .select('digest')
              .distinct()
              .where('kind', '=', 'blob')
              .where('digest', 'in', dueDigests)
              .execute()
          ).map((r) => r.digest),
        );
        const holds = new Map<Digest, number>();
        for (const h of await trx
          .selectFrom('blob_writes')
          .select(['digest', (eb) => eb.fn.max('expires_at').as('until')])
          .where('digest', 'in', dueDigests)
          .where('expires_at', '>', now)
          .groupBy('digest')
          .execute()) {
          holds.set(h.digest, Number(h.until));
        }
        const garbage = due.filter((b) => !referenced.has(b.digest) && !holds.has(b.digest));
        const kept = dueDigests.filter((d) => referenced.has(d));
        if (kept.length > 0) {
          await trx.updateTable('blobs').set({ review_after: null }).where('digest', 'in', kept).execute();
        }
        for (const [digest, until] of holds) {
          if (referenced.has(digest)) continue;
          await trx.updateTable('blobs').set({ review_after: until }).where('digest', '=', digest).execute();
        }
        if (garbage.length === 0) return [];
        const garbageDigests = garbage.map((b) => b.digest);
        await trx
          .updateTable('blobs')
          .set({ deleting_at: now, review_after: null })
          .where('digest', 'in', garbageDigests)
          .execute();
        const unlinked = await trx
          .deleteFrom('repository_blobs')
          .where('digest', 'in', garbageDigests)
          .returning(['repository_id', 'digest'])
          .execute();
        const byRepository = new Map<number, Digest[]>();
        for (const l of unlinked) {
          const id = Number(l.repository_id);
          byRepository.set(id, [...(byRepository.get(id) ?? []), l.digest]);
        }
        for (const [repositoryId, removed] of [...byRepository].sort(([a], [b]) => a - b)) {
          await blobLinksRemoved(trx, this.dialect, repositoryId, removed);
        }
        return garbage.map((b) => ({ digest: b.digest, size: Number(b.size) }));
      }),
    );
  }

  async blobFacts(digests: readonly Digest[], now: number): Promise<BlobFacts[]> {
    if (digests.length === 0) return [];
    const rows = await this.db
      .selectFrom('blobs')
      .select(['digest', 'size', 'review_after'])
      .where('digest', 'in', [...digests])
      .where('deleting_at', 'is', null)
      .execute();
    const refs = await this.db
      .selectFrom('manifest_references')
      .select(['digest', 'manifest_id'])
      .where('kind', '=', 'blob')
      .where('digest', 'in', [...digests])
      .execute();
    const held = new Set(
      (
        await this.db
          .selectFrom('blob_writes')
          .select('digest')
          .where('digest', 'in', [...digests])
          .where('expires_at', '>', now)
          .execute()
      ).map((r) => r.digest),
    );
    return rows.map((b) => ({
      digest: b.digest,
      size: Number(b.size),
      due: b.review_after !== null && Number(b.review_after) <= now,
      referencedBy: refs.filter((r) => r.digest === b.digest).map((r) => Number(r.manifest_id)),
      held: held.has(b.digest),
    }));
  }

  async forgetBlobs(digests: readonly Digest[]): Promise<void> {
    if (digests.length === 0) return;
    await this.db
      .deleteFrom('blobs')
      .where('digest', 'in', [...digests])
      .where('deleting_at', 'is not', null)
      .execute();
  }

  async deletingBlobs(limit: number): Promise<CollectedBlob[]> {
    const rows = await this.db
      .selectFrom('blobs')
      .select(['digest', 'size'])
      .where('deleting_at', 'is not', null)
      .orderBy('deleting_at')
      .limit(limit)
      .execute();
    return rows.map((b) => ({ digest: b.digest, size: Number(b.size) }));
  }

  async knownBlobs(digests: readonly Digest[]): Promise<Set<Digest>> {
    if (digests.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('blobs')
      .select('digest')
      .where('digest', 'in', [...digests])
      .execute();
    return new Set(rows.map((r) => r.digest));
  }

  async claimOrphan(digest: Digest, now: number): Promise<boolean> {
    const row = await this.db
      .insertInto('blobs')
      .values({ digest, size: 0, created_at: now, deleting_at: now })
      .onConflict((oc) => oc.column('digest').doNothing())
      .returning('digest')
      .executeTakeFirst();
    return row !== undefined;
  }

  async purgeExpiredHolds(now: number): Promise<number> {
    const r = await this.db.deleteFrom('blob_writes').where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async appendEvents(events: readonly NewDomainEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.db.transaction().execute((trx) => this.hooks.storeEvents(trx, events, Date.now()));
    this.hooks.notifyCommitted();
  }

  // --- runs --------------------------------------------------------------------------------------------

  async createRun(input: {
    dryRun: boolean;
    trigger: string;
    requestedBy: string | null;
    now: number;
  }): Promise<number> {
    const row = await this.db
      .insertInto('gc_runs')
      .values({
        state: 'queued',
        dry_run: input.dryRun ? 1 : 0,
        trigger: input.trigger,
        requested_by: input.requestedBy,
        phase: 'queued',
        progress: JSON.stringify({}),
        created_at: input.now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return Number(row.id);
  }

  async startRun(id: number, now: number): Promise<void> {
    await this.db
      .updateTable('gc_runs')
      .set({ state: 'running', started_at: now, phase: 'starting' })
      .where('id', '=', id)
      .execute();
  }

  async updateRun(id: number, phase: string, progress: GcProgress): Promise<void> {
    await this.db
      .updateTable('gc_runs')
      .set({ phase, progress: JSON.stringify(progress) })
      .where('id', '=', id)
      .execute();
  }

  async finishRun(
    id: number,
    state: 'succeeded' | 'failed',
    progress: GcProgress,
    error: string | null,
    now: number,
  ): Promise<void> {
    await this.db
      .updateTable('gc_runs')
      .set({
        state,
        phase: 'done',
        progress: JSON.stringify(progress),
        error: error === null ? null : error.slice(0, 4000),
        finished_at: now,
      })
      .where('id', '=', id)
      .execute();
  }

  async getRun(id: number): Promise<GcRunRecord | null> {
    const row = await this.db.selectFrom('gc_runs').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : toRun(row);
  }

  async listRuns(limit: number, before?: number): Promise<GcRunRecord[]> {
    let q = this.db.selectFrom('gc_runs').selectAll().orderBy('id', 'desc').limit(limit);
    if (before !== undefined) q = q.where('id', '<', before);
    return (await q.execute()).map(toRun);
  }

  async failAbandonedRuns(exceptId: number, error: string, now: number): Promise<number> {
    const r = await this.db
      .updateTable('gc_runs')
      .set({ state: 'failed', error, finished_at: now, phase: 'done' })
      .where('id', '<', exceptId)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async pruneRuns(before: number): Promise<number> {
    const r = await this.db.deleteFrom('gc_runs').where('finished_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  // --- housekeeping ------------------------------------------------------------------------------------

  // Each purge deletes a bounded batch (the caller loops), so no statement holds the database for long.

  async purgeRefreshTokens(before: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('refresh_tokens')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('refresh_tokens')
          .select('id')
          .where((w) => w.or([w('expires_at', '<', before), w('revoked_at', '<', before)]))
          .limit(limit),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async purgeAuditEvents(before: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('audit_events')
      .where('id', 'in', (eb) =>
        eb.selectFrom('audit_events').select('id').where('time', '<', before).orderBy('id').limit(limit),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async purgeDeadJobs(before: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('jobs')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('jobs')
          .select('id')
          .where('state', '=', 'dead')
          .where('finished_at', '<', before)
          .limit(limit),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async purgeWebhookDeliveries(before: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('webhook_deliveries')
      .where('id', 'in', (eb) =>
        eb.selectFrom('webhook_deliveries').select('id').where('at', '<', before).limit(limit),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Ids of `ids` that have a tag or a parent index in their repository (statements run under the caller's locks). */
  private async taggedOrParented(trx: Executor, ids: readonly number[]): Promise<number[]> {
    const tagged = await trx
      .selectFrom('tags')
      .select('manifest_id as id')
      .distinct()
      .where('manifest_id', 'in', [...ids])
      .execute();
    const parented = await trx
      .selectFrom('manifests as c')
      .innerJoin('manifest_references as mr', (j) =>
        j.onRef('mr.digest', '=', 'c.digest').on('mr.kind', '=', 'manifest'),
      )
      .innerJoin('manifests as p', (j) =>
        j.onRef('p.id', '=', 'mr.manifest_id').onRef('p.repository_id', '=', 'c.repository_id'),
      )
      .select('c.id')
      .distinct()
      .where('c.id', 'in', [...ids])
      .execute();
    return [...tagged, ...parented].map((r) => Number(r.id));
  }

  /** Ids of `ids` whose subject is present in their repository. */
  private async withPresentSubject(trx: Executor, ids: readonly number[]): Promise<number[]> {
    const rows = await trx
      .selectFrom('manifests as r')
      .innerJoin('manifests as s', (j) =>
        j.onRef('s.repository_id', '=', 'r.repository_id').onRef('s.digest', '=', 'r.subject_digest'),
      )
      .select('r.id')
      .where('r.id', 'in', [...ids])
      .execute();
    return rows.map((r) => Number(r.id));
  }

  /** Runs `work` again (a few times) when PostgreSQL aborted it to break a deadlock or a conflict. */
  private async retrying<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (attempt >= 5 || typeof code !== 'string' || !RETRYABLE.has(code)) throw e;
        await new Promise((r) => setTimeout(r, 10 * attempt));
      }
    }
  }
}

function toRun(row: Selectable<GcRunsTable>): GcRunRecord {
  const ms = (v: number | null): Date | null => (v === null ? null : new Date(Number(v)));
  return {
    id: Number(row.id),
    state: row.state,
    dryRun: Number(row.dry_run) === 1,
    trigger: row.trigger,
    requestedBy: row.requested_by,
    phase: row.phase,
    progress: { ...EMPTY_PROGRESS, ...(JSON.parse(row.progress) as Partial<GcProgress>) },
    error: row.error,
    createdAt: new Date(Number(row.created_at)),
    startedAt: ms(row.started_at),
    finishedAt: ms(row.finished_at),
  };
}
