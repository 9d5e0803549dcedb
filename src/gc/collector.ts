/**
 * Online garbage collection: drains the review queues the metadata writes fill (see docs/gc.md), deletes
 * unreferenced manifests and blobs while pushes and pulls go on, and runs the housekeeping sweeps.
 *
 * One collection at a time across every instance: a run holds the `gc` lease (renewed while it runs) and stops
 * between batches if it loses it. The writers never wait on the lease: each decision is a short transaction that
 * re-checks its rows under the row locks the writers take too.
 *
 * A run, in phases:
 * 1. `recover`: blobs left marked as deleting by an interrupted run: their bytes are deleted (again), then rows.
 * 2. `manifests`: due manifests without a tag, a parent index or a present subject are deleted; what they held on
 *    to is queued for now, so it is reviewed in this same run (index children, referrers, blobs).
 * 3. `blobs`: due blobs no manifest references and no writer holds are marked as deleting (and unlinked, so absent
 *    to every reader), their bytes deleted, then their rows.
 * 4. `storage`: (when `sweepStorage`) blob bytes in storage whose digest has no row (a crash between writing bytes
 *    and the metadata) and older than the blob grace period are claimed and deleted the same way.
 * 5. `purge`: expired blob holds, refresh tokens, audit events past `audit.retention`, dead jobs, webhook
 *    deliveries and old runs past `gc.historyRetention`.
 *
 * A dry run changes nothing: it reads the same facts and simulates the cascade in memory.
 */
import type { NewDomainEvent } from '../events/event.ts';
import type { GcProgress, GcStore, ManifestFacts, OrphanedReferrers } from '../metadata/gc-store.ts';
import { EMPTY_PROGRESS } from '../metadata/gc-store.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import { parseDigest } from '../oci/digest.ts';
import type { StorageDriver } from '../storage/driver.ts';
import { BLOBS_PREFIX, blobKey } from '../storage/paths.ts';

/** The lease that makes collections exclusive across instances. */
export const GC_LEASE = 'gc';

export interface CollectorOptions {
  readonly blobGracePeriodMs: number;
  readonly orphanedReferrers: OrphanedReferrers;
  readonly sweepStorage: boolean;
  /** Audit events older than this are purged; 0 keeps them. */
  readonly auditRetentionMs: number;
  /** Dead jobs, webhook deliveries and finished runs older than this are purged; 0 keeps them. */
  readonly historyRetentionMs: number;
  /** How long the `gc` lease lasts without renewal. Default 60 s. */
  readonly leaseMs?: number;
  /** Storage deletes in flight at once. Default 8. */
  readonly deleteConcurrency?: number;
  readonly now?: () => number;
}

export interface RunOptions {
  readonly dryRun: boolean;
  /** Who holds the lease (unique per run). */
  readonly holder: string;
  /** Called as the run advances (phase and counters). */
  readonly onProgress?: (phase: string, progress: GcProgress) => void;
  /** Aborts between batches. */
  readonly signal?: AbortSignal;
  /** Called once the lease is held, before any work. */
  readonly onStart?: () => Promise<void>;
}

/** Another instance (or process) is collecting. */
export class GcBusyError extends Error {
  constructor() {
    super('another garbage collection is running');
    this.name = 'GcBusyError';
  }
}

// Batches are one transaction each: large enough that commits (and SQLite's checkpoints) are few, small enough
// that a writer waiting on the database lock (SQLite) or a row lock waits milliseconds.
const MANIFEST_BATCH = 200;
const BLOB_BATCH = 1_000;
const PURGE_BATCH = 1_000;
const KEY_BATCH = 500;
/** The actor of what garbage collection deletes. */
const GC_ACTOR = { name: 'gc', kind: 'system' } as const;

export class Collector {
  private readonly leaseMs: number;
  private readonly now: () => number;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: GcStore,
    private readonly storage: StorageDriver,
    private readonly options: CollectorOptions,
  ) {
    this.leaseMs = options.leaseMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Runs one collection (or dry run) under the `gc` lease; throws GcBusyError when another holds it. */
  async run(options: RunOptions): Promise<GcProgress> {
    const { holder } = options;
    if (!(await this.metadata.tryAcquireLease(GC_LEASE, holder, this.leaseMs))) throw new GcBusyError();
    let lost = false;
    const renew = setInterval(
      () => {
        this.metadata.tryAcquireLease(GC_LEASE, holder, this.leaseMs).then(
          (held) => {
            if (!held) lost = true;
          },
          () => undefined,
        );
      },
      Math.max(10, Math.floor(this.leaseMs / 3)),
    );
    renew.unref();
    const checkpoint = (): void => {
      if (lost) throw new Error('garbage collection lost its lease (another instance took over)');
      options.signal?.throwIfAborted();
    };
    try {
      await options.onStart?.();
      return options.dryRun
        ? await this.simulate(options, checkpoint)
        : await this.collect(options, checkpoint);
    } finally {
      clearInterval(renew);
      await this.metadata.releaseLease(GC_LEASE, holder).catch(() => undefined);
    }
  }

  private async collect(options: RunOptions, checkpoint: () => void): Promise<GcProgress> {
    const now = this.now();
    const due = await this.store.countDue(now);
    let p: Progress = { ...EMPTY_PROGRESS, total: due.manifests + due.blobs, purged: {} };
    const report = (phase: string): void => options.onProgress?.(phase, p);

    // 1. A previous run's unfinished deletions.
    report('recover');
    for (;;) {
      checkpoint();
      const stuck = await this.store.deletingBlobs(BLOB_BATCH);
      if (stuck.length === 0) break;
      const gone = await this.deleteBytes(stuck.map((b) => b.digest));
      await this.store.forgetBlobs(gone);
      if (gone.length < stuck.length) break; // storage refuses: leave them for the next run
    }

    // 2. Manifests, in passes until the cascade ends.
    report('manifests');
    for (;;) {
      checkpoint();
      const ids = await this.store.dueManifests(now, MANIFEST_BATCH);
      if (ids.length === 0) break;
      const deleted = await this.store.collectManifests(
        ids,
        now,
        this.options.orphanedReferrers,
        (m): NewDomainEvent[] => [
          {
            type: 'manifest.deleted',
            target: { repository: m.repository, digest: m.digest, mediaType: m.mediaType, size: m.size },
            actor: GC_ACTOR,
            request: null,
          },
        ],
      );
      p = {
        ...p,
        total: Math.max(p.total, p.manifestsReviewed + ids.length + due.blobs),
        manifestsReviewed: p.manifestsReviewed + ids.length,
        manifestsDeleted: p.manifestsDeleted + deleted.length,
        bytesFreed: p.bytesFreed + deleted.reduce((n, m) => n + m.size, 0),
      };
      report('manifests');
    }

    // 3. Blobs.
    report('blobs');
    for (;;) {
      checkpoint();
      const digests = await this.store.dueBlobs(now, BLOB_BATCH);
      if (digests.length === 0) break;
      const marked = await this.store.markBlobsDeleting(digests, now);
      const gone = new Set(await this.deleteBytes(marked.map((b) => b.digest)));
      await this.store.forgetBlobs([...gone]);
      const freed = marked.filter((b) => gone.has(b.digest));
      p = {
        ...p,
        total: Math.max(p.total, p.manifestsReviewed + p.blobsReviewed + digests.length),
        blobsReviewed: p.blobsReviewed + digests.length,
        blobsDeleted: p.blobsDeleted + freed.length,
        bytesFreed: p.bytesFreed + freed.reduce((n, b) => n + b.size, 0),
      };
      report('blobs');
      if (gone.size < marked.length) break; // storage refuses deletes: the next run finishes them
    }

    // 4. Bytes no metadata knows.
    if (this.options.sweepStorage) {
      report('storage');
      const orphans = await this.sweepStorage(now, checkpoint, false);
      p = { ...p, orphansDeleted: orphans.count, bytesFreed: p.bytesFreed + orphans.bytes };
    }

    // 5. Housekeeping.
    report('purge');
    p = { ...p, purged: await this.purge(now, checkpoint) };
    report('done');

    if (p.manifestsDeleted + p.blobsDeleted + p.orphansDeleted > 0 || Object.keys(p.purged).length > 0) {
      await this.store.appendEvents([
        {
          type: 'gc.completed',
          target: { repository: '' },
          actor: GC_ACTOR,
          request: null,
          detail: {
            manifestsDeleted: p.manifestsDeleted,
            blobsDeleted: p.blobsDeleted + p.orphansDeleted,
            bytesFreed: p.bytesFreed,
          },
        },
      ]);
    }
    return p;
  }

  /**
   * The dry run: what a collection now would delete, from the same facts, without changing anything. Manifests a
   * deletion would queue (children, referrers) and blobs it would leave unreferenced are followed in memory.
   */
  private async simulate(options: RunOptions, checkpoint: () => void): Promise<GcProgress> {
    const now = this.now();
    const due = await this.store.countDue(now);
    let p: Progress = { ...EMPTY_PROGRESS, total: due.manifests + due.blobs, purged: {} };
    const report = (phase: string): void => options.onProgress?.(phase, p);
    const policy = this.options.orphanedReferrers;

    report('manifests');
    const garbage = new Set<number>();
    const facts = new Map<number, ManifestFacts>();
    const cascaded = new Set<number>();
    const pending: number[] = await this.allDueManifests(now);
    const blobCandidates = new Set<Digest>();
    while (pending.length > 0) {
      checkpoint();
      const batch = pending.splice(0, MANIFEST_BATCH);
      for (const f of await this.store.manifestFacts(batch, now)) facts.set(f.id, f);
      for (const id of batch) {
        const f = facts.get(id);
        if (f === undefined || garbage.has(id)) continue;
        p = { ...p, manifestsReviewed: p.manifestsReviewed + 1 };
        if (!(f.due || cascaded.has(id)) || f.tagged) continue;
        if (f.parents.some((parent) => !garbage.has(parent))) continue;
        if (f.subject !== null) {
          const subjectGone = f.subject === 'absent' || garbage.has(f.subject);
          if (!subjectGone || policy === 'keep') continue;
        }
        garbage.add(id);
        p = { ...p, manifestsDeleted: p.manifestsDeleted + 1, bytesFreed: p.bytesFreed + f.size };
        for (const d of f.dependents) {
          cascaded.add(d);
          pending.push(d);
        }
        for (const b of f.blobs) blobCandidates.add(b);
      }
      report('manifests');
    }

    report('blobs');
    const dueBlobs = await this.allDueBlobs(now);
    const candidates = [...new Set([...dueBlobs, ...blobCandidates])];
    const dueSet = new Set(dueBlobs);
    for (let i = 0; i < candidates.length; i += BLOB_BATCH) {
      checkpoint();
      for (const b of await this.store.blobFacts(candidates.slice(i, i + BLOB_BATCH), now)) {
        p = { ...p, blobsReviewed: p.blobsReviewed + 1 };
        if (!(b.due || dueSet.has(b.digest) || blobCandidates.has(b.digest)) || b.held) continue;
        if (b.referencedBy.some((m) => !garbage.has(m))) continue;
        p = { ...p, blobsDeleted: p.blobsDeleted + 1, bytesFreed: p.bytesFreed + b.size };
      }
      report('blobs');
    }
    if (this.options.sweepStorage) {
      report('storage');
      const orphans = await this.sweepStorage(now, checkpoint, true);
      p = { ...p, orphansDeleted: orphans.count, bytesFreed: p.bytesFreed + orphans.bytes };
    }
    report('done');
    return p;
  }

  private async allDueManifests(now: number): Promise<number[]> {
    return this.store.dueManifests(now, Number.MAX_SAFE_INTEGER);
  }

  private async allDueBlobs(now: number): Promise<Digest[]> {
    return this.store.dueBlobs(now, Number.MAX_SAFE_INTEGER);
  }

  /** Deletes the bytes of `digests` (a few at a time); returns those now absent from storage. */
  private async deleteBytes(digests: readonly Digest[]): Promise<Digest[]> {
    const gone: Digest[] = [];
    const queue = [...digests];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
        try {
          await this.storage.delete(blobKey(d));
          gone.push(d);
        } catch {
          // Left marked as deleting: the next run's recovery phase tries again.
        }
      }
    };
    await Promise.all(Array.from({ length: this.options.deleteConcurrency ?? 8 }, worker));
    return gone;
  }

  /**
   * Deletes blob bytes in storage whose digest has no row and that are older than the grace period (orphans of a
   * crash). Each is claimed first (a row marked as deleting), so a writer about to commit the same digest waits.
   */
  private async sweepStorage(
    now: number,
    checkpoint: () => void,
    dryRun: boolean,
  ): Promise<{ count: number; bytes: number }> {
    let count = 0;
    let bytes = 0;
    const keys = new Map<Digest, string>();
    const flush = async (): Promise<void> => {
      checkpoint();
      const known = await this.store.knownBlobs([...keys.keys()]);
      for (const [digest, key] of keys) {
        if (known.has(digest)) continue;
        const info = await this.storage.stat(key);
        if (info === null || info.modifiedAt.getTime() > now - this.options.blobGracePeriodMs) continue;
        if (dryRun) {
          count++;
          bytes += info.size;
          continue;
        }
        if (!(await this.store.claimOrphan(digest, now))) continue;
        const gone = await this.deleteBytes([digest]);
        await this.store.forgetBlobs(gone);
        if (gone.length === 1) {
          count++;
          bytes += info.size;
        }
      }
      keys.clear();
    };
    for await (const key of this.storage.list(BLOBS_PREFIX)) {
      const digest = digestOfKey(key);
      if (digest === null) continue;
      keys.set(digest, key);
      if (keys.size >= KEY_BATCH) await flush();
    }
    if (keys.size > 0) await flush();
    return { count, bytes };
  }

  private async purge(now: number, checkpoint: () => void): Promise<Record<string, number>> {
    const purged: Record<string, number> = {};
    const drain = async (name: string, once: () => Promise<number>): Promise<void> => {
      let total = 0;
      for (;;) {
        checkpoint();
        const n = await once();
        total += n;
        if (n < PURGE_BATCH) break;
      }
      if (total > 0) purged[name] = total;
    };
    const { auditRetentionMs, historyRetentionMs } = this.options;
    await drain('blobHolds', () => this.store.purgeExpiredHolds(now));
    await drain('refreshTokens', () => this.store.purgeRefreshTokens(now, PURGE_BATCH));
    if (auditRetentionMs > 0) {
      await drain('auditEvents', () => this.store.purgeAuditEvents(now - auditRetentionMs, PURGE_BATCH));
    }
    if (historyRetentionMs > 0) {
      const before = now - historyRetentionMs;
      await drain('deadJobs', () => this.store.purgeDeadJobs(before, PURGE_BATCH));
      await drain('webhookDeliveries', () => this.store.purgeWebhookDeliveries(before, PURGE_BATCH));
      await drain('gcRuns', () => this.store.pruneRuns(before));
    }
    return purged;
  }
}

type Progress = GcProgress;

/** The digest a blob key names (`blobs/<algorithm>/<xx>/<hex>`), or null for anything else. */
export function digestOfKey(key: string): Digest | null {
  const parts = key.split('/');
  if (parts.length !== 4 || parts[0] !== BLOBS_PREFIX) return null;
  try {
    const { digest } = parseDigest(`${parts[1]}:${parts[3]}`);
    return blobKey(digest) === key ? digest : null;
  } catch {
    return null;
  }
}
