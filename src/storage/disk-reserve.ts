/**
 * A reserve file: disk space set aside while the filesystem has plenty, and given back the moment a write fails
 * for lack of space, so that the SQLite database beside it can still record the cleanup that frees space (the
 * row of an upload session whose bytes were just deleted, say). Once the filesystem has room again, the reserve
 * is re-created.
 *
 * It must never be the cause of a failure itself:
 * - it is created only when the filesystem keeps `headroom` plus the reserve's size free afterwards, so it never
 *   takes the last free bytes another write was about to use;
 * - it is written aside and renamed into place, so an interrupted or failed write leaves no partial reserve, and
 *   what was written is removed;
 * - every error is logged as a warning, never thrown: the registry runs the same without a reserve.
 *
 * The bytes are random: a filesystem that compresses or deduplicates (btrfs, ZFS) would store zeros in no space.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger, type Logger } from '../logger.ts';
import { FreeSpaceProbe, type StatfsFn } from './free-space.ts';

/** The reserve's size by default: SQLite's write-ahead log cycles within about 4 MiB, twice that is ample. */
export const DEFAULT_DISK_RESERVE_BYTES = 8 * 1024 * 1024;

const CHUNK = 1024 * 1024;

export interface DiskReserveOptions {
  /** The reserve file; its directory must be on the filesystem to protect. */
  readonly file: string;
  /** Its size in bytes. Default DEFAULT_DISK_RESERVE_BYTES. */
  readonly size?: number;
  /** Bytes that must stay free besides the reserve's own size of slack once it is created. Default 0. */
  readonly headroom?: number;
  /** While the reserve is missing, how often to look whether there is room for it again, in ms. Default 30 s. */
  readonly recheckMs?: number;
  readonly log?: Logger;
  /** How free space is read; default `fs.promises.statfs` (tests inject one). */
  readonly statfs?: StatfsFn;
}

export class DiskReserve {
  readonly file: string;
  readonly size: number;
  private readonly log: Logger;
  private readonly space: FreeSpaceProbe;
  /** Creation and release run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private recheck: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: DiskReserveOptions) {
    this.file = options.file;
    this.size = options.size ?? DEFAULT_DISK_RESERVE_BYTES;
    this.log = options.log ?? silentLogger;
    this.space = new FreeSpaceProbe(path.dirname(options.file), { statfs: options.statfs, maxAgeMs: 0 });
  }

  /**
   * Creates the reserve file unless it is there whole, when the filesystem has room for it (see the file comment);
   * otherwise warns and looks again every `recheckMs` until it can. Resolves with whether the reserve is in place.
   * Never rejects.
   */
  ensure(): Promise<boolean> {
    return this.serially(() => this.create(true));
  }

  /**
   * Deletes the reserve file, so that the writes that follow can use its space, and looks every `recheckMs` for
   * room to create it again. A reserve already released is left alone. Never rejects.
   */
  release(): Promise<void> {
    return this.serially(async () => {
      if (this.closed) return;
      try {
        await unlink(this.file);
        this.log.warn({ file: this.file, bytes: this.size }, 'disk full: released the disk reserve');
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT') {
          this.log.warn({ err, file: this.file }, 'cannot release the disk reserve');
        }
      }
      this.watch();
    });
  }

  /** Stops looking for room; the file stays as it is. */
  close(): void {
    this.closed = true;
    clearInterval(this.recheck);
    this.recheck = undefined;
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** `announce`: warn when the reserve cannot be created (once, not on every recheck). */
  private async create(announce: boolean): Promise<boolean> {
    if (this.closed) return false;
    const tmp = `${this.file}.tmp`;
    try {
      const existing = await stat(this.file).catch(() => null);
      if (existing?.isFile() && existing.size === this.size) {
        this.stopWatching();
        return true;
      }
      const free = await this.space.available();
      const needed = 2 * this.size + (this.options.headroom ?? 0);
      if (free < needed) {
        if (announce) {
          this.log.warn(
            { file: this.file, free, needed },
            'not enough free space for the disk reserve; it is created once there is',
          );
        }
        this.watch();
        return false;
      }
      const fh = await open(tmp, 'w');
      try {
        for (let done = 0; done < this.size;) {
          const chunk = randomBytes(Math.min(CHUNK, this.size - done));
          const { bytesWritten } = await fh.write(chunk, 0, chunk.length, done);
          done += bytesWritten;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      if (announce) this.log.warn({ err, file: this.file }, 'cannot create the disk reserve');
      this.watch();
      return false;
    }
    if (this.recheck !== undefined) this.log.info({ file: this.file }, 'disk reserve re-created');
    this.stopWatching();
    return true;
  }

  private watch(): void {
    if (this.recheck !== undefined || this.closed) return;
    this.recheck = setInterval(
      () => void this.serially(() => this.create(false)),
      this.options.recheckMs ?? 30_000,
    );
    this.recheck.unref();
  }

  private stopWatching(): void {
    clearInterval(this.recheck);
    this.recheck = undefined;
  }
}
