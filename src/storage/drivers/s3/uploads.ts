/**
 * The S3 driver's resumable uploads (where their objects live: `keys.ts`).
 *
 * S3 cannot read back the parts of an uncompleted multipart upload, yet `readUpload` must stream the bytes
 * received so far (to re-hash an upload continued by another instance), so while an upload is open its bytes live
 * in ordinary objects, the segments, and the handle is the truth about them:
 *
 * ```
 * { id, parts: [{ name: 'part-0-<nonce>', size: 8388608 }, { name: 'part-8388608-<nonce>', size: 1000 }, ...] }
 * ```
 *
 * The upload is the concatenation of the first `size` bytes of each listed segment. Segments the handle does not
 * list (left by an interrupted or superseded append) are ignored and deleted with the upload. Names carry a random
 * nonce, so a segment a live handle lists is never overwritten, even by two instances appending at the same offset
 * at once. An append cuts its body into segments of `partSize`: every segment of at least 5 MiB (the S3 minimum
 * for a multipart part) is final; a shorter remainder is stored on its own as a small "pending" segment, and the
 * next append that brings enough bytes streams the pending segments back in front of its first part, so that
 * pending bytes never reach `partSize` and each byte is copied at most a few times. Memory stays at two parts per
 * append, whatever the chunk sizes clients send.
 *
 * `commitUpload` assembles the segments server-side: a single segment is copied with CopyObject; several become
 * a multipart upload of the final key, one part per large segment by UploadPartCopy (no bytes pass through this
 * process) and one streamed UploadPart for each run of small segments. Servers without UploadPartCopy (s3rver)
 * get every part streamed through instead. Abort and commit delete the whole `_uploads/<id>/` prefix.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';

import type { CompletedPart } from '@aws-sdk/client-s3';

import { BufferRecycler } from '../../buffer-recycler.ts';
import { StorageError, UploadNotFoundError, type UploadHandle, type UploadInfo } from '../../driver.ts';
import { assertByteCount, issuedUploadId } from '../../driver-helpers.ts';
import type { S3Bucket } from './bucket.ts';
import { isNotFound, isUnsupported, OutOfRange } from './errors.ts';
import { isCommitNoteName, newCommitNoteName, newSegmentName, type S3Keys } from './keys.ts';
import { cutParts, MAX_PARTS, MIN_PART_SIZE, MultipartUpload } from './parts.ts';
import { mapLimit, quiet } from './promises.ts';
import {
  groupParts,
  parseHandle,
  piecesSize,
  segmentPiece,
  toHandle,
  totalSize,
  truncate,
  type Piece,
  type Segment,
} from './segments.ts';

/** Pending (small) segments an upload may hold before an append merges them into one. */
const MAX_PENDING_SEGMENTS = 32;
/** Parts a commit copies or sends at once. */
const COMMIT_CONCURRENCY = 4;

/** The StorageDriver methods on uploads, over one bucket and prefix. Nothing about an upload is kept in process. */
export class S3Uploads {
  /** Cleared when the server answers UploadPartCopy with NotImplemented; parts are then streamed through. */
  private partCopySupported = true;

  constructor(
    private readonly bucket: S3Bucket,
    private readonly keys: S3Keys,
    private readonly partSize: number,
  ) {}

  /** StorageDriver.createUpload: writes the marker. */
  async create(): Promise<UploadHandle> {
    const id = randomUUID();
    await this.bucket.putObject(this.keys.markerKey(id), new Uint8Array(0));
    return toHandle(id, []);
  }

  /** StorageDriver.appendUpload: stores `body` as new segments after the first `offset` bytes. */
  async append(
    handle: UploadHandle,
    offset: number,
    body: Readable,
  ): Promise<{ handle: UploadHandle; size: number }> {
    // Bytes past `offset` (an append the caller did not record) are dropped from the list, not from storage.
    const { id, segments: kept } = await this.open(handle, offset, 'offset');
    let split = kept.length;
    while (split > 0 && (kept[split - 1] as Segment).size < MIN_PART_SIZE) split--;
    const out: Segment[] = kept.slice(0, split);
    let pending: Segment[] = kept.slice(split);
    let pendingSize = totalSize(pending);
    let position = offset - pendingSize; // where the next segment starts

    // A handle written by an instance with a larger partSize may carry more pending bytes than one part.
    if (pendingSize >= this.partSize) {
      out.push(await this.writeSegment(id, position, pending.map(segmentPiece)));
      position += pendingSize;
      pending = [];
      pendingSize = 0;
    }

    // Segments are written one at a time while the next is read from the body: two part buffers at most.
    const written: Array<Promise<Segment>> = [];
    let received = 0;
    let first = true;
    const want = () => (first ? this.partSize - pendingSize : this.partSize);
    const cut = cutParts(body, want, new BufferRecycler(this.partSize));
    try {
      for await (const part of cut) {
        const { bytes } = part;
        const full = bytes.byteLength === want();
        received += bytes.byteLength;
        let pieces: Piece[] = [{ bytes }];
        if (first && pending.length > 0) {
          if (full || pending.length >= MAX_PENDING_SEGMENTS) {
            pieces = [...pending.map(segmentPiece), ...pieces]; // merge the pending segments in
          } else {
            out.push(...pending); // a small append after small appends: one more pending segment
            position += pendingSize;
          }
          pending = [];
        }
        first = false;
        const previous = written.at(-1);
        if (previous !== undefined) await previous;
        const start = position;
        position += piecesSize(pieces);
        written.push(quiet(this.writeSegment(id, start, pieces).finally(part.release)));
      }
      if (first) out.push(...pending); // an empty body
      out.push(...(await Promise.all(written)));
    } catch (err) {
      await Promise.allSettled(written);
      throw err;
    }
    return { handle: toHandle(id, out), size: offset + received };
  }

  /** StorageDriver.readUpload: streams the first `size` bytes of the handle's segments. */
  async read(handle: UploadHandle, size: number): Promise<Readable> {
    const { id, segments } = await this.open(handle, size, 'size');
    return this.streamPieces(id, segments.map(segmentPiece));
  }

  /**
   * StorageDriver.commitUpload: assembles bytes `[0, size)` at the S3 key `dest` (see the file comment) unless an
   * object is there already, then deletes the upload. Two commits racing to one key each publish a complete,
   * identical object.
   */
  async commit(handle: UploadHandle, size: number, dest: string): Promise<void> {
    const { id, segments } = await this.open(handle, size, 'size');
    let completed: string | undefined;
    if ((await this.bucket.head(dest)) === null) completed = await this.assemble(id, segments, dest);
    await this.remove(id, completed);
  }

  /** StorageDriver.abortUpload. */
  async abort(handle: UploadHandle): Promise<void> {
    const id = issuedUploadId(handle);
    if (id === undefined) return; // a handle we could never have issued
    await this.remove(id);
  }

  /**
   * Yields one entry per upload id found below `_uploads/`, marker or not (a crash during a commit's or an
   * abort's cleanup leaves segments without a marker; garbage collection aborts those too). `modifiedAt` is the
   * latest modification of any of its objects, so the last append. The handles carry only the id: enough to
   * abort, not to continue.
   */
  async *list(): AsyncIterable<UploadInfo> {
    let current: { id: string; modifiedAt: Date } | undefined;
    for await (const object of this.bucket.listObjects(this.keys.uploads)) {
      const id = this.keys.uploadIdOf(object.Key as string);
      if (id === undefined) continue;
      const modifiedAt = object.LastModified ?? new Date(0);
      if (current?.id === id) {
        if (modifiedAt > current.modifiedAt) current.modifiedAt = modifiedAt;
        continue;
      }
      if (current !== undefined) yield { handle: { id: current.id }, modifiedAt: current.modifiedAt };
      current = { id, modifiedAt };
    }
    if (current !== undefined) yield { handle: { id: current.id }, modifiedAt: current.modifiedAt };
  }

  /**
   * The id of `handle` and the segments holding its bytes `[0, size)`, once the upload is known to exist: the
   * handle's segments, cut at `size`. A handle holding fewer bytes is not the latest one for that size (the
   * contract asks callers to hand back the latest), and is refused. `what` names `size` in a RangeError.
   */
  private async open(
    handle: UploadHandle,
    size: number,
    what: 'offset' | 'size',
  ): Promise<{ id: string; segments: Segment[] }> {
    const { id, parts } = parseHandle(handle);
    assertByteCount(size, what);
    if ((await this.bucket.head(this.keys.markerKey(id))) === null) throw new UploadNotFoundError(id);
    if (size > totalSize(parts)) throw new UploadNotFoundError(id, 'upload is shorter than expected');
    return { id, segments: truncate(parts, size) };
  }

  /** Stores `pieces` as one new segment starting at upload byte `start`. */
  private async writeSegment(id: string, start: number, pieces: readonly Piece[]): Promise<Segment> {
    const name = newSegmentName(start);
    const size = piecesSize(pieces);
    const only = pieces.length === 1 ? pieces[0] : undefined;
    if (only !== undefined && 'bytes' in only) {
      await this.bucket.putObject(this.keys.uploadKey(id, name), only.bytes);
    } else {
      await this.bucket.putObject(this.keys.uploadKey(id, name), this.streamPieces(id, pieces), size);
    }
    return { name, size };
  }

  /**
   * A stream over the concatenated pieces, fetching one segment at a time. A missing segment (the upload was
   * committed or aborted meanwhile) errors the stream with UploadNotFoundError.
   */
  private streamPieces(id: string, pieces: readonly Piece[]): Readable {
    return Readable.from(this.piecesOf(id, pieces), { objectMode: false });
  }

  private async *piecesOf(id: string, pieces: readonly Piece[]): AsyncGenerator<Uint8Array> {
    for (const piece of pieces) {
      if ('bytes' in piece) {
        if (piece.bytes.byteLength > 0) yield piece.bytes;
        continue;
      }
      const { name, size } = piece.segment;
      let stream: Readable;
      try {
        stream = await this.bucket.getObjectRange(this.keys.uploadKey(id, name), 0, size - 1);
      } catch (err) {
        if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
        if (err instanceof OutOfRange) throw new UploadNotFoundError(id, 'upload segment is short');
        throw err;
      }
      yield* stream;
    }
  }

  /**
   * Publishes `parts` at `dest`. Returns the id of the multipart upload it completed, if it used one.
   */
  private async assemble(id: string, parts: readonly Segment[], dest: string): Promise<string | undefined> {
    const groups = groupParts(parts, this.partSize);
    if (groups.length > MAX_PARTS) throw new StorageError(`upload ${id} too large for ${MAX_PARTS} parts`);
    if (groups.length === 0) {
      await this.bucket.putObject(dest, new Uint8Array(0));
      return undefined;
    }
    if (groups.length === 1) {
      const group = groups[0] as Segment[];
      const only = group.length === 1 ? (group[0] as Segment) : undefined;
      const stored = only === undefined ? null : await this.bucket.head(this.keys.uploadKey(id, only.name));
      if (only !== undefined && stored === null) throw new UploadNotFoundError(id, 'upload segment is gone');
      if (only !== undefined && stored?.size === only.size) {
        await this.copySegment(id, only, dest);
      } else {
        await this.bucket.putObject(dest, this.streamPieces(id, group.map(segmentPiece)), totalSize(group));
      }
      return undefined;
    }

    const upload = await MultipartUpload.start(this.bucket, dest);
    try {
      // Recorded before any part, so that an abort after a crash from here on can abort the multipart upload.
      const note = JSON.stringify({ key: dest, uploadId: upload.uploadId });
      await this.bucket.putObject(this.keys.uploadKey(id, newCommitNoteName()), Buffer.from(note));
      const completed = await mapLimit(groups, COMMIT_CONCURRENCY, (group, i) =>
        this.assemblePart(id, upload, i + 1, group),
      );
      await upload.complete(completed);
      return upload.uploadId;
    } catch (err) {
      await upload.abort().catch(() => undefined);
      throw err;
    }
  }

  /** One part of a commit: a server-side copy of one large segment, or the group's bytes streamed through. */
  private async assemblePart(
    id: string,
    upload: MultipartUpload,
    number: number,
    group: readonly Segment[],
  ): Promise<CompletedPart> {
    const only = group.length === 1 ? (group[0] as Segment) : undefined;
    if (only !== undefined && only.size >= MIN_PART_SIZE && this.partCopySupported) {
      try {
        return await upload.copyPart(number, this.keys.uploadKey(id, only.name), only.size);
      } catch (err) {
        if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
        if (!isUnsupported(err)) throw err;
        this.partCopySupported = false;
      }
    }
    const body = this.streamPieces(id, group.map(segmentPiece));
    return upload.sendPart(number, body, totalSize(group));
  }

  /** Copies a whole segment to `dest` server-side. */
  private async copySegment(id: string, segment: Segment, dest: string): Promise<void> {
    try {
      await this.bucket.copyObject(this.keys.uploadKey(id, segment.name), dest);
    } catch (err) {
      if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
      throw err;
    }
  }

  /**
   * Deletes everything below `_uploads/<id>/`: the marker first (the upload is gone for every instance from
   * then on), then, page by page, the segments, after aborting the multipart uploads that commit notes name
   * (except `completed`, which a commit has just completed).
   */
  private async remove(id: string, completed?: string): Promise<void> {
    const base = this.keys.uploadKey(id, '');
    await this.bucket.deleteObject(this.keys.markerKey(id));
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const keys = batch;
      batch = [];
      await this.bucket.deleteObjects(keys);
    };
    for await (const object of this.bucket.listObjects(base)) {
      const key = object.Key as string;
      if (isCommitNoteName(key.slice(base.length))) {
        const note = await this.readCommitNote(key);
        if (note !== null && note.uploadId !== completed) {
          await new MultipartUpload(this.bucket, note.key, note.uploadId).abort();
        }
      }
      batch.push(key);
      if (batch.length === 1000) await flush();
    }
    await flush();
  }

  private async readCommitNote(s3Key: string): Promise<{ key: string; uploadId: string } | null> {
    let text: string;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.bucket.getObject(s3Key)) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    try {
      const note = JSON.parse(text) as { key?: unknown; uploadId?: unknown };
      if (typeof note.key === 'string' && typeof note.uploadId === 'string') {
        return { key: note.key, uploadId: note.uploadId };
      }
    } catch {
      // a torn or foreign note: nothing to abort
    }
    return null;
  }
}
