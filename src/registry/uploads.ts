/**
 * Blob upload sessions: monolithic, streamed and chunked uploads, cross-repository mounts, cancel, purge.
 *
 * Why this protocol (several instances, restarts, crashes):
 * - A session is a metadata row (repository, size, the storage driver's JSON handle). Nothing in process memory
 *   decides correctness, so any instance can continue a session another one started, and a restart loses nothing.
 * - An append writes the body at offset `size` through the driver (which first discards bytes a crashed append
 *   may have left past `size`), then advances the row with compare-and-set from the old size to the new one.
 *   A crash before the CAS leaves the row at the old size: the client's next chunk (or its status request) sees
 *   the size that counts. Two appends racing on one session in one process are serialised by `busy`; the
 *   loser gets 416 with the current range.
 * - The digest is computed while the bytes stream to storage. The running hash state is kept in memory, keyed
 *   by session and size; when the completing request lands on another instance, after a restart, or the state is
 *   missing for any reason, the upload is re-read from storage and hashed there. Memory is an optimisation only.
 * - Completion verifies the digest, then claims the session by deleting its row (exactly one request wins), then
 *   commits the bytes atomically to the content-addressed key, then links the blob into the repository. A crash
 *   after the claim leaves an orphaned upload that the purge job removes; the blob never becomes half-visible.
 * - Cancelling or purging a session frees its bytes first and deletes its row second. A row whose bytes are gone
 *   answers BLOB_UPLOAD_UNKNOWN as soon as it is used (appending, re-hashing or committing finds no upload), so
 *   a failure between the two steps loses nothing, and the row goes with the next cancel or purge. The other
 *   order would need a database write before any space is freed, which fails on a full disk. A cancel racing a
 *   completion of the same session may make that completion fail with BLOB_UPLOAD_UNKNOWN: one of the two wins,
 *   the blob is committed whole or not at all.
 * - A full disk: an append whose bytes or row update find no room cuts the upload back to the recorded size, so
 *   what the request sent neither counts nor holds space, and the session resumes once space is freed. Before
 *   that, while the storage reports less than `minFreeSpace` free, new uploads are refused and appends go on, so
 *   that uploads in progress can finish.
 * - Orphans: upload bytes that no session row references. A crash leaves them between `createUpload` and the
 *   row insert, in the middle of a monolithic upload (which never has a row), or after a completion's claim. The
 *   purge removes them once unmodified for ORPHAN_GRACE_MS, which outlasts every such window of a live request
 *   on another instance; the uploads this process is writing without a row are in `unowned` and never purged.
 *   Several instances may purge at once: aborting an upload is idempotent and only one of them deletes a row.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { BlobDeletingError, type BlobLink, type UploadSessionRecord } from '../metadata/store.ts';
import { type Digest, DigestHasher, type DigestAlgorithm, parseDigest } from '../oci/digest.ts';
import {
  BlobUploadInvalidError,
  BlobUploadUnknownError,
  DigestInvalidError,
  InsufficientStorageError,
  RangeInvalidError,
  SizeInvalidError,
  TooManyRequestsError,
} from '../oci/errors.ts';
import { type UploadHandle, UploadNotFoundError } from '../storage/driver.ts';
import { blobKey } from '../storage/paths.ts';
import { UUID_RE } from '../util/uuid.ts';
import { isClientAbort } from './client-abort.ts';
import { BodyTooLongError, HashingStream } from './hashing-stream.ts';
import { isStorageFull } from './storage-full.ts';
import type { EventContext } from '../events/event.ts';
import { blobLinked, blobMounted, SYSTEM_CONTEXT } from './events.ts';
import type { RegistryDeps } from './options.ts';
import { linkBlobWithinQuota } from './quota.ts';

const HASH_CACHE_LIMIT = 4096;

/** How long a writer's hold on a digest lasts: far longer than committing bytes and linking them takes. */
const HOLD_TTL_MS = 15 * 60 * 1_000;
/** How long a writer waits for garbage collection to finish deleting the digest it is about to commit. */
const HOLD_WAIT_MS = 30_000;
const HOLD_RETRY_MS = 50;

/** 429 with Retry-After: the blob's deletion is in progress (or stuck); the client's retry will succeed. */
function blobBeingDeleted(digest: Digest): TooManyRequestsError {
  return new TooManyRequestsError(`blob ${digest} is being deleted by garbage collection: retry`, {
    headers: { 'Retry-After': '1' },
  });
}
/** Stale sessions listed, and orphan candidates checked against the database, per query. */
const PURGE_BATCH = 100;

/**
 * How long upload bytes that no session references must have gone unmodified before the purge removes them as
 * orphans. A live upload has no row only for moments, and this outlasts each of them on other instances (this
 * process knows its own, see `unowned`):
 * - between `storage.createUpload()` and the insert of its session row: milliseconds;
 * - during a monolithic `POST ?digest=`: its bytes are modified as they arrive (the filesystem driver writes
 *   every chunk, the S3 driver stores a segment per `partSize` of body, 8 MiB by default), so only a client
 *   sending under about 9 KiB/s, or stalling for the whole grace, could be cut off;
 * - between a completion's claim of the row and the end of its commit: a rename on a filesystem; a server-side
 *   copy on S3, minutes for the largest blobs.
 * A crash's leftovers are gone within the grace plus one purge interval.
 */
export const ORPHAN_GRACE_MS = 15 * 60 * 1000;

/** A request body with what its headers announced. */
export interface UploadBody {
  readonly stream: Readable;
  /** Content-Length, when sent. */
  readonly length?: number | undefined;
  /** Parsed Content-Range (inclusive), when sent. */
  readonly range?: { readonly start: number; readonly end: number } | undefined;
}

/** The `Range` header value for an upload of `size` bytes: `0-<last byte>`; `0-0` for an empty upload, as
 * distribution answers (clients that start the next chunk at `size` are unaffected). */
export function uploadRange(size: number): string {
  return `0-${size > 0 ? size - 1 : 0}`;
}

interface HashState {
  readonly size: number;
  readonly hasher: DigestHasher;
}

export class UploadService {
  /** Running hash per session id; see the protocol comment. */
  private readonly hashes = new Map<string, HashState>();
  /** Sessions with a request in flight in this process. */
  private readonly busy = new Set<string>();
  /**
   * Handle ids of uploads this process is writing or committing while no session row references them (a
   * monolithic upload, a new session before its row exists, a completion after its claim): never orphans.
   */
  private readonly unowned = new Set<string>();

  constructor(private readonly deps: RegistryDeps) {}

  /**
   * Throws INSUFFICIENT_STORAGE when the storage reports less free space than `minFreeSpace`: new sessions and
   * monolithic uploads are refused then, while appends to open sessions go on until the storage is really full,
   * so uploads in progress can finish. Also the readiness check of the free space.
   */
  async assertRoomForNewUpload(): Promise<void> {
    const { storage, options } = this.deps;
    const min = options.minFreeSpace ?? 0;
    if (min <= 0 || storage.freeSpace === undefined) return;
    if ((await storage.freeSpace()) < min) {
      throw new InsufficientStorageError(
        "the registry's storage is nearly full: new uploads are refused until space is freed",
      );
    }
  }

  /**
   * Opens a new upload session in `repository`, bound to `owner` (see `get`): the caller's identity when access
   * control is on, null when it is off.
   */
  async start(repository: string, owner: string | null): Promise<UploadSessionRecord> {
    const { storage, metadata } = this.deps;
    await this.assertRoomForNewUpload();
    const handle = await storage.createUpload();
    const id = randomUUID();
    this.unowned.add(handle.id);
    try {
      await metadata.createUploadSession({ id, repository, handle, owner });
    } catch (e) {
      await storage.abortUpload(handle).catch(() => undefined);
      throw e;
    } finally {
      this.unowned.delete(handle.id);
    }
    const now = new Date();
    return { id, repository, size: 0, handle, owner, createdAt: now, updatedAt: now };
  }

  /**
   * Links the blob into `repository` from `from` (or from anywhere in the registry when `from` is absent).
   * Returns the blob, or null when it cannot be mounted (then the caller opens a normal session).
   */
  async mount(
    repository: string,
    digest: Digest,
    from: string | undefined,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<BlobLink | null> {
    const { metadata } = this.deps;
    const link =
      from !== undefined ? await metadata.getBlobLink(from, digest) : await metadata.findBlob(digest);
    if (!link) return null;
    // Garbage collection may decide to delete the blob between the lookup and the link: the link then refuses.
    const linked = await linkBlobWithinQuota(
      this.deps,
      context,
      repository,
      link,
      blobMounted(context, repository, link, from),
      { mustExist: true },
    );
    return linked ? link : null;
  }

  /** Stores a whole blob sent in one request (`POST ?digest=` with a body), verifying its digest. */
  uploadWhole(
    repository: string,
    digest: Digest,
    body: UploadBody,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<BlobLink> {
    return this.storeWhole(repository, digest, body, context, true);
  }

  /**
   * Stores a whole blob whose bytes the caller verifies as they stream (the pull-through cache hashes what its
   * upstream sends): the caller ends `body` only once the bytes matched `digest`, and destroys it otherwise,
   * which aborts the upload. Saves hashing every byte twice.
   */
  storeVerified(
    repository: string,
    digest: Digest,
    body: UploadBody,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<BlobLink> {
    return this.storeWhole(repository, digest, body, context, false);
  }

  private async storeWhole(
    repository: string,
    digest: Digest,
    body: UploadBody,
    context: EventContext,
    hash: boolean,
  ): Promise<BlobLink> {
    const { storage } = this.deps;
    const { algorithm } = parseDigest(digest);
    await this.assertRoomForNewUpload();
    const handle = await storage.createUpload();
    this.unowned.add(handle.id);
    try {
      const hasher = hash ? new DigestHasher(algorithm) : null;
      const written = await this.write(handle, 0, body, hasher);
      const size = written.size;
      if (hasher) this.verify(digest, hasher.digest());
      const holder = await this.hold(digest, size);
      try {
        // The handle the append returned is the one that knows the bytes (S3: the segments written).
        await storage.commitUpload(written.handle, size, blobKey(digest));
        await this.link(repository, digest, size, holder, context);
      } catch (e) {
        await this.deps.metadata.releaseBlobHold(holder).catch(() => undefined);
        throw e;
      }
      return { digest, size };
    } catch (e) {
      await storage.abortUpload(handle).catch(() => undefined);
      throw e;
    } finally {
      this.unowned.delete(handle.id);
    }
  }

  /**
   * The session, checked to belong to `repository` and, when both the session and the caller have an owner, to
   * `owner`; BLOB_UPLOAD_UNKNOWN otherwise, the very answer an unknown id gets, so that ids cannot be probed. A
   * caller without an owner (access control off) may use any session; a session without one (access control was
   * off when it started, or it predates owners) is usable by anyone allowed to push.
   */
  async get(repository: string, id: string, owner: string | null): Promise<UploadSessionRecord> {
    if (!UUID_RE.test(id))
      throw new BlobUploadUnknownError(undefined, { detail: { uuid: id.slice(0, 100) } });
    const session = await this.deps.metadata.getUploadSession(id);
    if (
      !session ||
      session.repository !== repository ||
      (owner !== null && session.owner !== null && session.owner !== owner)
    ) {
      throw new BlobUploadUnknownError(undefined, { detail: { uuid: id } });
    }
    return session;
  }

  /** Appends a chunk (PATCH). With a Content-Range, its start must equal the session size, else 416. */
  async append(
    repository: string,
    id: string,
    owner: string | null,
    body: UploadBody,
  ): Promise<UploadSessionRecord> {
    const session = await this.get(repository, id, owner);
    return this.exclusive(session, () => this.appendTo(session, body));
  }

  /**
   * Completes the upload (PUT `?digest=`), with an optional last chunk: verifies the digest, commits the bytes
   * and links the blob into the repository.
   */
  async complete(
    repository: string,
    id: string,
    owner: string | null,
    digestParam: string,
    body: UploadBody | null,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<BlobLink> {
    const digest = parseDigest(digestParam).digest;
    let session = await this.get(repository, id, owner);
    return this.exclusive(session, async () => {
      if (body) session = await this.appendTo(session, body);
      const actual = await this.digestOf(session, parseDigest(digest).algorithm);
      this.verify(digest, actual);
      const holder = await this.hold(digest, session.size);
      this.unowned.add(session.handle.id);
      try {
        try {
          if (!(await this.deps.metadata.deleteUploadSession(session.id))) {
            throw new BlobUploadUnknownError(undefined, { detail: { uuid: id } });
          }
          await this.deps.storage.commitUpload(session.handle, session.size, blobKey(digest));
        } catch (e) {
          if (e instanceof UploadNotFoundError) throw new BlobUploadUnknownError(e.message);
          throw e;
        } finally {
          this.unowned.delete(session.handle.id);
        }
        await this.link(repository, digest, session.size, holder, context);
      } catch (e) {
        await this.deps.metadata.releaseBlobHold(holder).catch(() => undefined);
        throw e;
      }
      return { digest, size: session.size };
    });
  }

  /**
   * Holds `digest` for this writer before its bytes are committed, so that garbage collection cannot delete them
   * between the commit and the link (see docs/gc.md). While the collector is deleting the blob, waits for it to
   * finish (milliseconds), then holds the digest anew; answers 429 if that takes longer than HOLD_WAIT_MS.
   */
  private async hold(digest: Digest, size: number): Promise<string> {
    const holder = randomUUID();
    const deadline = Date.now() + HOLD_WAIT_MS;
    while (!(await this.deps.metadata.holdBlob(digest, size, holder, HOLD_TTL_MS))) {
      if (Date.now() >= deadline) throw blobBeingDeleted(digest);
      await delay(HOLD_RETRY_MS);
    }
    return holder;
  }

  /** Links the committed blob, ending the hold; a hold that expired meanwhile may meet a deletion: 429. */
  private async link(
    repository: string,
    digest: Digest,
    size: number,
    holder: string,
    context: EventContext,
  ): Promise<void> {
    try {
      // A refused link (quota) leaves the committed bytes unlinked, for garbage collection.
      await linkBlobWithinQuota(
        this.deps,
        context,
        repository,
        { digest, size },
        blobLinked(context, repository),
        { holder },
      );
    } catch (e) {
      if (e instanceof BlobDeletingError) throw blobBeingDeleted(digest);
      throw e;
    }
  }

  /** Cancels the session (DELETE): discards its bytes, then forgets it (see the protocol comment). */
  async cancel(repository: string, id: string, owner: string | null): Promise<void> {
    const session = await this.get(repository, id, owner);
    this.hashes.delete(id);
    await this.deps.storage.abortUpload(session.handle);
    if (!(await this.deps.metadata.deleteUploadSession(id)))
      throw new BlobUploadUnknownError(undefined, { detail: { uuid: id } });
  }

  /**
   * Purges sessions idle since before `now - uploadPurgeAfter` (bytes first, then the row), and orphans: driver
   * uploads that no session references and that nobody modified for ORPHAN_GRACE_MS (see the protocol comment).
   * Safe to run on several instances at once. Returns how many sessions and orphans this call removed.
   */
  async purgeStale(now = Date.now()): Promise<{ sessions: number; orphans: number }> {
    const { metadata, storage, options } = this.deps;
    const cutoff = new Date(now - options.uploadPurgeAfter);
    let sessions = 0;
    for (;;) {
      const stale = await metadata.listStaleUploadSessions(cutoff, PURGE_BATCH);
      for (const s of stale) {
        this.hashes.delete(s.id);
        await storage.abortUpload(s.handle);
        if (await metadata.deleteUploadSession(s.id)) sessions++;
      }
      if (stale.length < PURGE_BATCH) break;
    }

    // Candidates are checked against the database only after they were listed as old enough: a session row is
    // inserted right after its upload is created, so an upload older than the grace whose row is missing at that
    // point never gets one.
    const orphanCutoff = now - ORPHAN_GRACE_MS;
    const candidates: UploadHandle[] = [];
    let orphans = 0;
    const removeUnreferenced = async (): Promise<void> => {
      const ids = candidates.map((h) => h.id);
      const referenced = new Set(await metadata.findUploadSessionHandles(ids));
      for (const handle of candidates) {
        if (referenced.has(handle.id) || this.unowned.has(handle.id)) continue;
        await storage.abortUpload(handle);
        orphans++;
      }
      candidates.length = 0;
    };
    for await (const upload of storage.listUploads()) {
      if (upload.modifiedAt.getTime() >= orphanCutoff || this.unowned.has(upload.handle.id)) continue;
      candidates.push(upload.handle);
      if (candidates.length === PURGE_BATCH) await removeUnreferenced();
    }
    if (candidates.length > 0) await removeUnreferenced();
    return { sessions, orphans };
  }

  private async appendTo(session: UploadSessionRecord, body: UploadBody): Promise<UploadSessionRecord> {
    if (body.range) {
      if (body.range.start !== session.size) {
        throw new RangeInvalidError(
          `chunk starts at ${body.range.start} but the upload has ${session.size} bytes`,
          {
            headers: { Range: uploadRange(session.size), 'Docker-Upload-UUID': session.id },
          },
        );
      }
      const rangeLength = body.range.end - body.range.start + 1;
      if (body.length !== undefined && body.length !== rangeLength) {
        throw new SizeInvalidError(
          `Content-Length ${body.length} does not match Content-Range length ${rangeLength}`,
        );
      }
    }
    const cached = this.hashes.get(session.id);
    this.hashes.delete(session.id); // tainted until this append succeeds
    const hasher =
      cached && cached.size === session.size
        ? cached.hasher
        : session.size === 0
          ? new DigestHasher('sha256')
          : null;
    let written: { handle: UploadHandle; size: number };
    let advanced: boolean;
    try {
      written = await this.write(session.handle, session.size, body, hasher);
      advanced = await this.deps.metadata.advanceUploadSession(
        session.id,
        session.size,
        written.size,
        written.handle,
      );
    } catch (e) {
      if (isStorageFull(e)) await this.discardPast(session);
      throw e;
    }
    const { handle, size } = written;
    if (!advanced) {
      const current = await this.deps.metadata.getUploadSession(session.id);
      if (!current) throw new BlobUploadUnknownError(undefined, { detail: { uuid: session.id } });
      throw new RangeInvalidError('the upload was advanced by another request', {
        headers: { Range: uploadRange(current.size), 'Docker-Upload-UUID': session.id },
      });
    }
    if (hasher) this.remember(session.id, { size, hasher });
    return { ...session, size, handle, updatedAt: new Date() };
  }

  /**
   * Cuts the upload back to the session's recorded size after an append that found the storage full, so that
   * what the request wrote does not hold the space until the next append (an empty append at the recorded size
   * discards the bytes past it, see StorageDriver.appendUpload). Best effort: the next append cuts them anyway.
   */
  private async discardPast(session: UploadSessionRecord): Promise<void> {
    await this.deps.storage
      .appendUpload(session.handle, session.size, Readable.from([]))
      .catch(() => undefined);
  }

  /** Streams `body` into the upload at `offset`, hashing on the way; checks the announced length. */
  private async write(
    handle: UploadHandle,
    offset: number,
    body: UploadBody,
    hasher: DigestHasher | null,
  ): Promise<{ handle: UploadHandle; size: number }> {
    const expected = body.range ? body.range.end - body.range.start + 1 : body.length;
    const counter = new HashingStream(hasher, expected ?? Number.POSITIVE_INFINITY);
    // The body starts flowing into `counter` before the driver attaches its own consumer (it may first open files
    // or call a backend), so `counter` can fail (too many bytes, client abort) with nobody listening yet: an
    // unhandled 'error' event would crash the process. The failure stays recorded on the stream, and the driver's
    // pipeline rejects with it as soon as it starts reading.
    counter.on('error', () => undefined);
    body.stream.on('error', (e) => counter.destroy(e));
    // A body that failed or was destroyed before this point emits nothing more: without this the driver would
    // wait for bytes that never come.
    const failed = body.stream.errored;
    if (failed) counter.destroy(failed);
    else if (body.stream.destroyed && !body.stream.readableEnded) {
      counter.destroy(new BlobUploadInvalidError('the request body ended early'));
    }
    body.stream.pipe(counter);
    let result: { handle: UploadHandle; size: number };
    try {
      result = await this.deps.storage.appendUpload(handle, offset, counter);
    } catch (e) {
      body.stream.unpipe(counter);
      body.stream.resume();
      if (e instanceof BodyTooLongError) throw new SizeInvalidError(e.message);
      if (e instanceof UploadNotFoundError) throw new BlobUploadUnknownError(e.message);
      if (isClientAbort(e)) throw new BlobUploadInvalidError('the request body ended early', { cause: e });
      throw e;
    }
    if (expected !== undefined && counter.bytes !== expected) {
      throw new SizeInvalidError(`received ${counter.bytes} bytes but ${expected} were announced`);
    }
    return result;
  }

  /** The digest of the session's bytes, from the running hash when this process has it, else by re-reading. */
  private async digestOf(session: UploadSessionRecord, algorithm: DigestAlgorithm): Promise<Digest> {
    const cached = this.hashes.get(session.id);
    this.hashes.delete(session.id);
    if (cached && cached.size === session.size && cached.hasher.algorithm === algorithm)
      return cached.hasher.digest();
    const hasher = new DigestHasher(algorithm);
    let stream: Readable;
    try {
      stream = await this.deps.storage.readUpload(session.handle, session.size);
    } catch (e) {
      if (e instanceof UploadNotFoundError) throw new BlobUploadUnknownError(e.message);
      throw e;
    }
    for await (const chunk of stream) hasher.update(chunk as Buffer);
    if (hasher.size !== session.size)
      throw new BlobUploadInvalidError('upload data is shorter than recorded');
    return hasher.digest();
  }

  private verify(expected: Digest, actual: Digest): void {
    if (expected !== actual) {
      throw new DigestInvalidError('provided digest did not match uploaded content', {
        detail: { expected, actual },
      });
    }
  }

  private async exclusive<T>(session: UploadSessionRecord, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(session.id)) {
      throw new RangeInvalidError('another request is writing to this upload', {
        headers: { Range: uploadRange(session.size), 'Docker-Upload-UUID': session.id },
      });
    }
    this.busy.add(session.id);
    try {
      return await fn();
    } finally {
      this.busy.delete(session.id);
    }
  }

  private remember(id: string, state: HashState): void {
    if (this.hashes.size >= HASH_CACHE_LIMIT) {
      const oldest = this.hashes.keys().next().value;
      if (oldest !== undefined) this.hashes.delete(oldest);
    }
    this.hashes.set(id, state);
  }
}
