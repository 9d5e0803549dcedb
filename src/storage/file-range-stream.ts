/**
 * A readable stream of a byte range of an open file, with a fast path for HTTP responses.
 *
 * Read as an ordinary stream (`on('data')`, `pipeline` into a hash, async iteration), it hands out a fresh buffer
 * per chunk like `fs.createReadStream`. Piped into an `http.ServerResponse` before anything was read, it copies the
 * range itself with two reused buffers from a shared pool instead: read into one buffer while the other is being
 * written to the socket, and reuse a buffer only once the response's write callback reported that its bytes have
 * left the process (handed to the kernel, or encrypted by TLS). Node has no sendfile(2); this is the nearest: large
 * syscalls, no garbage per chunk, and memory bounded by the pool however large the file or however many
 * downloads run. The fast path is limited to `ServerResponse` because a generic Writable may keep a chunk after
 * its write callback (a PassThrough pushes the very same buffer on), which would make reuse unsafe.
 *
 * The stream owns the file descriptor and closes it (or hands it back to its lender) when it ends, fails or is
 * destroyed. It works on a plain descriptor with the callback API rather than a `FileHandle`: for the small blobs
 * most pulls are, the promise machinery of `FileHandle` cost three times the CPU of open, fstat, read and close
 * themselves.
 */
import { close, fstat, open, read, type Stats } from 'node:fs';
import { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { BufferPool } from './buffer-pool.ts';
import type { OpenFileCache } from './open-file-cache.ts';

/** Size of the pooled buffers: measured on loopback, 1 MiB writes reach ~2.5 GB/s where 64 KiB ones reach ~0.5. */
const CHUNK_SIZE = 1 << 20;
/** Buffer size for a transfer that finds the pool exhausted (many downloads at once). */
const FALLBACK_CHUNK_SIZE = 64 << 10;
/**
 * How long transfers queued for a pooled buffer wait while none comes back before they copy with 64 KiB buffers
 * instead (see BufferPool.acquireQueued). A turning pool returns a buffer every millisecond or so.
 */
const POOL_STALL_MS = 100;
/** 16 MiB in all: eight large downloads at full speed; more share the rest of the machine's bandwidth anyway. */
const sharedPool = new BufferPool(CHUNK_SIZE, 16, POOL_STALL_MS);
/** Chunk size on the ordinary stream path. */
const STREAM_CHUNK_SIZE = 256 << 10;

export class FileRangeStream extends Readable {
  private position: number;
  private readonly endExclusive: number;
  private fastPath = false;
  /** Reads in flight, and what to run once there are none (closing the descriptor must wait for them). */
  private reading = 0;
  private onIdle: (() => void) | null = null;

  /**
   * @param fd an open file descriptor; the stream closes it
   * @param start first byte offset to read
   * @param endExclusive offset after the last byte to read (`start` for an empty range)
   * @param pool where the fast path borrows its buffers
   * @param releaseFd what to do with `fd` once the stream is done with it (default: close it); called once,
   *   after the last read through it has completed
   */
  constructor(
    private readonly fd: number,
    start: number,
    endExclusive: number,
    private readonly pool: BufferPool = sharedPool,
    private readonly releaseFd?: () => void,
  ) {
    super({ highWaterMark: STREAM_CHUNK_SIZE });
    this.position = start;
    this.endExclusive = endExclusive;
  }

  override _read(size: number): void {
    const length = Math.min(Math.max(size, STREAM_CHUNK_SIZE), this.endExclusive - this.position);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(length);
    this.readAt(buffer, length).then(
      (bytesRead) => {
        if (bytesRead === 0) {
          this.destroy(new Error('file ended before the requested range'));
          return;
        }
        this.position += bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  /** Reads up to `length` bytes at the current position into `buffer`; resolves to the count read. */
  private readAt(buffer: Buffer, length: number): Promise<number> {
    this.reading++;
    return new Promise((resolve, reject) => {
      read(this.fd, buffer, 0, length, this.position, (err, bytesRead) => {
        if (--this.reading === 0 && this.onIdle) this.onIdle();
        if (err) reject(err);
        else resolve(bytesRead);
      });
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Never close under a read in flight: the descriptor number could be reused by another open meanwhile, and
    // the read would then see that file. No read starts once the stream is destroyed.
    const closeFd = (): void => {
      this.onIdle = null;
      if (this.releaseFd) {
        this.releaseFd();
        callback(error);
      } else {
        close(this.fd, (closeError) => callback(error ?? closeError));
      }
    };
    if (this.reading > 0) this.onIdle = closeFd;
    else closeFd();
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    const untouched = !this.fastPath && this.readableFlowing === null && this.readableLength === 0;
    if (!untouched || this.destroyed || !(destination instanceof ServerResponse)) {
      return super.pipe(destination, options);
    }
    this.fastPath = true;
    void this.copyTo(destination, options?.end !== false);
    return destination;
  }

  /** The fast path: copies the rest of the range into `response` with reused buffers (see the file comment). */
  private async copyTo(response: ServerResponse, end: boolean): Promise<void> {
    let gone = false;
    let wake: () => void = () => {};
    const responseGone = new Promise<void>((resolve) => (wake = resolve));
    const onGone = (): void => {
      gone = true;
      wake();
    };
    response.once('close', onGone);

    const remaining = this.endExclusive - this.position;
    const slots = await this.borrowBuffers(remaining);
    // pending[i]: the write of slots[i] in flight, if any; done[i]: whether its callback has run.
    const pending: (Promise<void> | null)[] = slots.map(() => null);
    const done: boolean[] = slots.map(() => true);
    let failure: Error | null = null;
    try {
      let i = 0;
      while (this.position < this.endExclusive && !gone && !this.destroyed) {
        if (pending[i]) await Promise.race([pending[i], responseGone]);
        if (gone || this.destroyed) break;
        const buffer = slots[i]!.buffer;
        const length = Math.min(buffer.length, this.endExclusive - this.position);
        const bytesRead = await this.readAt(buffer, length);
        if (bytesRead === 0) throw new Error('file ended before the requested range');
        if (gone || this.destroyed) break;
        this.position += bytesRead;
        done[i] = false;
        const slot = i;
        pending[i] = new Promise<void>((resolve) => {
          response.write(buffer.subarray(0, bytesRead), () => {
            done[slot] = true;
            resolve();
          });
        });
        i = (i + 1) % slots.length;
      }
      await Promise.race([Promise.all(pending), responseGone]);
    } catch (err) {
      failure = err as Error;
    } finally {
      response.off('close', onGone);
      // A buffer whose write never completed may still be referenced by the socket: let it go, do not reuse it.
      slots.forEach((slot, i) => {
        if (slot.pooled) this.pool.release(slot.buffer, done[i]);
      });
    }
    if (failure) {
      this.destroy(failure);
    } else if (gone || this.destroyed) {
      this.destroy();
    } else {
      // As with pipe(): the source ends first, then ends the destination (a consumer watching both sees the
      // response finish only after the source has ended, never as a premature close of the source).
      if (end) this.once('end', () => response.end());
      this.push(null);
      this.resume(); // emits 'end' (then 'close')
    }
  }

  /**
   * The buffers of a copy: one sized to a range of at most 64 KiB. A range that fits in one pooled buffer queues
   * for one when none is free: it holds it for a single read and write, so the queue moves quickly, and one large
   * read and write cost far less than sixteen 64 KiB ones (200 parallel pulls of a 1 MiB blob went from 2.3 to
   * 1.75 ms of CPU per pull). A longer range takes two pooled buffers to double-buffer, if free, without
   * queueing (it would hold them for its whole transfer). A slot the exhausted pool cannot fill gets a
   * 64 KiB buffer of its own, and a copy left with a single 64 KiB buffer gets a second one, so it still
   * double-buffers.
   */
  private async borrowBuffers(length: number): Promise<{ buffer: Buffer; pooled: boolean }[]> {
    const small = (): { buffer: Buffer; pooled: boolean } => ({
      buffer: Buffer.allocUnsafeSlow(FALLBACK_CHUNK_SIZE),
      pooled: false,
    });
    if (length <= FALLBACK_CHUNK_SIZE)
      return [{ buffer: Buffer.allocUnsafe(Math.max(length, 1)), pooled: false }];
    const slots: { buffer: Buffer; pooled: boolean }[] = [];
    if (length <= this.pool.bufferSize) {
      const pooled = await this.pool.acquireQueued();
      slots.push(pooled ? { buffer: pooled, pooled: true } : small());
    } else {
      for (let n = 2; n > 0; n--) {
        const pooled = this.pool.acquire();
        slots.push(pooled ? { buffer: pooled, pooled: true } : small());
      }
    }
    if (slots.length === 1 && !slots[0]!.pooled) slots.push(small());
    return slots;
  }
}

/**
 * Opens `file` for reading and streams the range `choose` picks from its fstat (`[start, endExclusive)`); when
 * `choose` throws (a directory, a range outside the file...), the descriptor is closed and the error rethrown.
 * Errors of open(2) (ENOENT...) reject as they are. Opening before streaming makes absence a rejected promise
 * rather than a later 'error' event.
 */
export async function openFileRange(
  file: string,
  choose: (stats: Stats) => readonly [start: number, endExclusive: number],
): Promise<FileRangeStream> {
  const fd = await new Promise<number>((resolve, reject) =>
    open(file, 'r', (err, opened) => (err ? reject(err) : resolve(opened))),
  );
  try {
    const stats = await new Promise<Stats>((resolve, reject) =>
      fstat(fd, (err, st) => (err ? reject(err) : resolve(st))),
    );
    const [start, endExclusive] = choose(stats);
    return new FileRangeStream(fd, start, endExclusive);
  } catch (err) {
    close(fd, () => {});
    throw err;
  }
}

/**
 * As `openFileRange`, but over a descriptor leased from `cache` (shared with concurrent reads of the same file and
 * kept open after the stream is done). For immutable files only: see OpenFileCache.
 */
export async function leaseFileRange(
  cache: OpenFileCache,
  file: string,
  choose: (stats: Stats) => readonly [start: number, endExclusive: number],
): Promise<FileRangeStream> {
  const lease = await cache.lease(file);
  try {
    const [start, endExclusive] = choose(lease.stats);
    return new FileRangeStream(lease.fd, start, endExclusive, sharedPool, lease.release);
  } catch (err) {
    lease.release();
    throw err;
  }
}
