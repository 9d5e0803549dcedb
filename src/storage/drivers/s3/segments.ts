/**
 * The segment list of an S3 upload handle (see `uploads.ts`): parsing a handle that comes back from a client's
 * session, and the arithmetic on segments that appends and commits share. No request is made here.
 */
import { UploadNotFoundError, type UploadHandle } from '../../driver.ts';
import { uploadIdOf } from '../../driver-helpers.ts';
import { isSegmentName } from './keys.ts';
import { MIN_PART_SIZE } from './parts.ts';

/** One segment of an open upload: the first `size` bytes of `_uploads/<id>/<name>`. */
export interface Segment {
  readonly name: string;
  readonly size: number;
}

export interface ParsedHandle {
  readonly id: string;
  readonly parts: readonly Segment[];
}

/** What an upload's bytes are made of at commit or in a merged segment: stored segments and in-memory bytes. */
export type Piece = { readonly segment: Segment } | { readonly bytes: Uint8Array };

/** The id and segments of a handle that may have been through JSON and a database; UploadNotFoundError if bad. */
export function parseHandle(handle: UploadHandle): ParsedHandle {
  const id = uploadIdOf(handle);
  const raw = handle.parts ?? [];
  if (!Array.isArray(raw)) throw new UploadNotFoundError(id, 'malformed upload handle');
  const parts: Segment[] = [];
  for (const item of raw as unknown[]) {
    const { name, size } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (
      typeof name !== 'string' ||
      !isSegmentName(name) ||
      !Number.isSafeInteger(size) ||
      (size as number) < 1
    ) {
      throw new UploadNotFoundError(id, 'malformed upload handle');
    }
    parts.push({ name, size: size as number });
  }
  return { id, parts };
}

/** The handle of upload `id` made of `parts`: plain JSON. */
export function toHandle(id: string, parts: readonly Segment[]): UploadHandle {
  return { id, parts: parts.map(({ name, size }) => ({ name, size })) };
}

export function totalSize(parts: readonly Segment[]): number {
  let total = 0;
  for (const part of parts) total += part.size;
  return total;
}

export function piecesSize(pieces: readonly Piece[]): number {
  let total = 0;
  for (const piece of pieces) total += 'bytes' in piece ? piece.bytes.byteLength : piece.segment.size;
  return total;
}

export function segmentPiece(segment: Segment): Piece {
  return { segment };
}

/** The segments covering exactly bytes `[0, size)`; the last one may be cut short. */
export function truncate(parts: readonly Segment[], size: number): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (const part of parts) {
    if (at >= size) break;
    const keep = Math.min(part.size, size - at);
    out.push(keep === part.size ? part : { name: part.name, size: keep });
    at += keep;
  }
  return out;
}

/**
 * Groups segments into the parts of a multipart upload: a segment of at least 5 MiB alone (copied server-side),
 * runs of smaller ones together until they reach `partSize` (streamed), so that every part but the last is at
 * least 5 MiB. Appends leave small segments only at the end; a handle cut short can have them elsewhere.
 */
export function groupParts(parts: readonly Segment[], partSize: number): Segment[][] {
  const groups: Segment[][] = [];
  let run: Segment[] = [];
  let runSize = 0;
  for (const part of parts) {
    if (part.size >= MIN_PART_SIZE && (run.length === 0 || runSize >= MIN_PART_SIZE)) {
      if (run.length > 0) groups.push(run);
      groups.push([part]);
      run = [];
      runSize = 0;
      continue;
    }
    run.push(part);
    runSize += part.size;
    if (runSize >= partSize) {
      groups.push(run);
      run = [];
      runSize = 0;
    }
  }
  if (run.length > 0) groups.push(run);
  return groups;
}
