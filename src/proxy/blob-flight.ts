/**
 * One fetch of a blob from an upstream, shared by every request of this process that wants the blob meanwhile.
 *
 * Why this shape:
 * - The upstream is asked once however many clients want the blob at the same time: the first request starts
 *   the flight, later ones join it.
 * - The bytes go two ways as they arrive: into a spool file, which every client reads at its own pace (a slow
 *   client never holds the fetch back, a fast one never waits for the slowest, and memory stays bounded however
 *   many clients there are), and into an upload to the registry's storage (`commit`), which verifies the digest
 *   and commits and links the blob atomically: it never becomes visible half-written.
 * - A client is never given a short or wrong blob as a whole one: the flight hashes the bytes as they arrive,
 *   each reader holds back the blob's last byte until the whole blob has arrived and matched its digest, and a
 *   failure before that (upstream cut, digest mismatch, spool error) destroys every reader, so the client's
 *   connection is aborted before its `Content-Length` is complete. Readers do not wait for the commit (the
 *   storage's fsync of a large blob takes seconds): the bytes they serve are verified, and a commit that fails
 *   afterwards only means the next request fetches the blob again.
 * - The spool file is removed once the flight has ended and its last reader has finished.
 */
import { EventEmitter } from 'node:events';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { type Digest, DigestHasher, parseDigest } from '../oci/digest.ts';
import { UnavailableError } from '../oci/errors.ts';
import type { RemoteBlob } from '../remote/registry-client.ts';

const READ_CHUNK = 1024 * 1024;
/** Bytes gathered before one write to the spool file. */
const SPOOL_BATCH = 1024 * 1024;
/** Most bytes waiting for the spool file before the network is read on. */
const SPOOL_QUEUE = 8 * 1024 * 1024;

export type FlightState = 'fetching' | 'done' | 'failed';

/** Commits the bytes read from `body` as the blob (verifying its digest); rejects when anything fails. */
export type BlobCommit = (body: Readable, size: number) => Promise<void>;

export class BlobFlight {
  readonly #events = new EventEmitter();
  readonly #spoolPath: string;
  #file: FileHandle | null = null;
  #readers = 0;
  #written = 0;
  #state: FlightState = 'fetching';
  #error: Error | null = null;
  /** Every byte arrived and the digest matched: readers may finish (see the top comment). */
  #verified = false;
  /** Resolves when the flight has ended (committed or failed); never rejects. */
  readonly finished: Promise<void>;

  private constructor(
    readonly digest: Digest,
    readonly size: number,
    spoolPath: string,
  ) {
    this.#spoolPath = spoolPath;
    this.#events.setMaxListeners(0);
    this.finished = new Promise((resolve) => this.#events.once('end', resolve));
  }

  /**
   * Starts a flight for the blob the upstream is sending (`blob`): spools it to `spoolPath` and commits it with
   * `commit`. Resolves once the spool file is open, with the flight already running.
   */
  static async start(
    digest: Digest,
    blob: RemoteBlob,
    spoolPath: string,
    commit: BlobCommit,
  ): Promise<BlobFlight> {
    const flight = new BlobFlight(digest, blob.size, spoolPath);
    try {
      flight.#file = await open(spoolPath, 'w+', 0o600);
    } catch (e) {
      blob.body.destroy();
      throw e;
    }
    void flight.#run(blob, commit);
    return flight;
  }

  get state(): FlightState {
    return this.#state;
  }

  /** Bytes received from the upstream so far. */
  get written(): number {
    return this.#written;
  }

  /** Why the flight failed, once it has. */
  get error(): Error | null {
    return this.#error;
  }

  /**
   * The bytes `start`..`end` (inclusive; default the whole blob) as they arrive. Errors when the flight fails;
   * ends only after the blob was verified and committed.
   */
  reader(start = 0, end = this.size - 1): Readable {
    this.#readers++;
    let position = start;
    let waiting = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#readers--;
      this.#cleanUpIfUnused();
    };
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        void pump();
      },
      destroy(error, callback) {
        release();
        callback(error);
      },
    });
    stream.once('end', release);
    let pumping = false;
    const pump = async (): Promise<void> => {
      if (pumping || waiting) return;
      pumping = true;
      try {
        for (;;) {
          if (stream.destroyed) return;
          if (this.#state === 'failed' && !this.#verified) {
            // Before the response started this becomes a 503; after, the connection is cut.
            stream.destroy(
              new UnavailableError(`fetching blob ${this.digest} from the upstream failed; try again`, {
                cause: this.#error,
              }),
            );
            return;
          }
          // The last byte waits for the verification: a client that got it all would take the blob as complete.
          const available = this.#verified ? end + 1 : Math.min(end + 1, this.#written, this.size - 1);
          if (position > end) {
            if (this.#verified) stream.push(null);
            else
              this.#waitThen(
                () => void pump(),
                (w) => (waiting = w),
              );
            return;
          }
          if (position >= available) {
            this.#waitThen(
              () => void pump(),
              (w) => (waiting = w),
            );
            return;
          }
          const file = this.#file;
          if (!file) {
            stream.destroy(new Error('spool file closed'));
            return;
          }
          const length = Math.min(READ_CHUNK, available - position);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await file.read(buffer, 0, length, position);
          if (bytesRead === 0) {
            this.#waitThen(
              () => void pump(),
              (w) => (waiting = w),
            );
            return;
          }
          position += bytesRead;
          if (!stream.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))) return;
        }
      } catch (e) {
        stream.destroy(e as Error);
      } finally {
        pumping = false;
      }
    };
    return stream;
  }

  /** Calls `then` at the flight's next progress (bytes written, or its end). */
  #waitThen(then: () => void, setWaiting: (waiting: boolean) => void): void {
    setWaiting(true);
    this.#events.once('progress', () => {
      setWaiting(false);
      then();
    });
  }

  async #run(blob: RemoteBlob, commit: BlobCommit): Promise<void> {
    const hasher = new DigestHasher(parseDigest(this.digest).algorithm);
    const toStorage = new PassThrough({ highWaterMark: READ_CHUNK });
    // Destroyed with the fetch's error when it fails, maybe before the upload has started reading it (it then
    // finds the error on the stream): never an unhandled 'error' event.
    toStorage.on('error', () => undefined);
    let commitError: Error | null = null;
    const committed = commit(toStorage, this.size).catch((e: unknown) => {
      commitError = e as Error;
      throw e;
    });
    // Settled here too, so that an early rejection is never unhandled while the loop below still runs.
    committed.catch(() => undefined);
    try {
      const file = this.#file as FileHandle;
      // Network chunks are small (16-128 KiB): they are gathered into batches of SPOOL_BATCH bytes, each written
      // with one call to the spool file and handed to storage as one chunk (a file write per network chunk costs
      // more than the network delivers). Spool writes are queued so that they overlap the reading of the network
      // (at most SPOOL_QUEUE bytes wait).
      let batch: Buffer[] = [];
      let batched = 0;
      let queued = 0;
      let spoolEnd = 0;
      let writing: Promise<void> = Promise.resolve();
      let writeError: Error | null = null;
      const flush = async (): Promise<void> => {
        if (batched === 0) return;
        const bytes = batched;
        const buffer = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes);
        const at = spoolEnd;
        batch = [];
        batched = 0;
        spoolEnd += bytes;
        queued += bytes;
        writing = writing.then(async () => {
          let done = 0;
          while (done < bytes) {
            const { bytesWritten } = await file.write(buffer, done, bytes - done, at + done);
            done += bytesWritten;
          }
          this.#written += bytes;
          queued -= bytes;
          this.#events.emit('progress');
        });
        writing.catch((e: unknown) => (writeError ??= e as Error));
        if (!toStorage.write(buffer)) {
          await Promise.race([new Promise((resolve) => toStorage.once('drain', resolve)), committed]);
        }
        if (queued > SPOOL_QUEUE) await writing;
      };
      let received = 0;
      for await (const chunk of blob.body as AsyncIterable<Buffer>) {
        if (commitError) throw commitError;
        if (writeError) throw writeError;
        received += chunk.length;
        if (received > this.size) {
          throw new Error(`upstream sent more than the ${this.size} bytes it announced`);
        }
        hasher.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= SPOOL_BATCH) await flush();
      }
      await flush();
      await writing;
      if (this.#written !== this.size) {
        throw new Error(`upstream sent ${this.#written} of ${this.size} bytes`);
      }
      const actual = hasher.digest();
      if (actual !== this.digest) {
        throw new Error(`upstream sent bytes with digest ${actual}, not ${this.digest}`);
      }
      this.#verified = true;
      this.#events.emit('progress');
      toStorage.end();
      await committed;
      this.#state = 'done';
    } catch (e) {
      this.#error = e instanceof Error ? e : new Error(String(e));
      this.#state = 'failed';
      // Readers learn of it now, not once the commit has given up.
      this.#events.emit('progress');
      blob.body.destroy();
      toStorage.destroy(this.#error);
      await committed.catch(() => undefined);
    } finally {
      this.#events.emit('progress');
      this.#events.emit('end');
      this.#cleanUpIfUnused();
    }
  }

  #cleanUpIfUnused(): void {
    if (this.#state === 'fetching' || this.#readers > 0 || !this.#file) return;
    const file = this.#file;
    this.#file = null;
    void file
      .close()
      .catch(() => undefined)
      .then(() => rm(this.#spoolPath, { force: true }))
      .catch(() => undefined);
  }
}
