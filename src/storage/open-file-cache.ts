/**
 * Open file descriptors of immutable files, shared by concurrent reads and kept for a short while after the last.
 *
 * Why: a pull of a small blob costs an open(2), an fstat(2) and a close(2) besides its one read, each a round
 * trip through libuv's thread pool; under many parallel pulls of the same layers those round trips are a large
 * part of the work. Reads use positional pread(2), so any number of them can share one descriptor.
 *
 * Only for files whose bytes never change while they exist (content-addressed blobs). The cache cannot see
 * changes made by other processes, so an entry is reused for at most `maxAgeMs` after it was opened and closed
 * after `idleMs` without use: a file another process deleted stays readable (with its old, identical bytes) and
 * keeps its disk space for at most that long. Changes made through the owner are announced with `invalidate`.
 *
 * A descriptor is closed only when no lease holds it: evicting or invalidating an entry in use just stops new
 * leases from getting it.
 */
import { close, fstat, open, type Stats } from 'node:fs';

export interface OpenFileCacheOptions {
  /** Most descriptors kept open at once, in use or idle (in-use ones of evicted entries not counted). */
  readonly maxEntries: number;
  /** An unused descriptor is closed after this long. */
  readonly idleMs: number;
  /** A descriptor is not handed to new leases once it has been open this long. */
  readonly maxAgeMs: number;
}

/** One reader's use of a cached descriptor. */
export interface FileLease {
  readonly fd: number;
  /** fstat of the file when it was opened. */
  readonly stats: Stats;
  /** Gives the descriptor back. Call exactly once, after the last read through `fd` has completed. */
  release(): void;
}

/** An open in progress; its identity tells whether it is still the one the cache wants (see `invalidate`). */
interface PendingOpen {
  readonly promise: Promise<Entry>;
  /** Callers awaiting it: the entry starts with this many leases. */
  waiters: number;
}

interface Entry {
  readonly file: string;
  readonly fd: number;
  readonly stats: Stats;
  readonly openedAt: number;
  lastUsed: number;
  leases: number;
  /** Out of the map: closes when its last lease is released. */
  evicted: boolean;
}

export const DEFAULT_OPEN_FILE_CACHE: OpenFileCacheOptions = {
  maxEntries: 256,
  idleMs: 5_000,
  maxAgeMs: 30_000,
};

export class OpenFileCache {
  /** Entries by path, least recently used first (a use moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  /** Opens in progress, so that a burst of reads of one file opens it once. */
  private readonly opening = new Map<string, PendingOpen>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: OpenFileCacheOptions = DEFAULT_OPEN_FILE_CACHE) {}

  /**
   * Leases a descriptor of `file`, opening it (read-only) unless a fresh one is cached. Rejects with open(2)'s
   * error (ENOENT...) as it is; a failed open caches nothing. Every concurrent caller waiting on the same open
   * gets the same descriptor. A file that is not a regular file is not kept: its descriptor closes on release.
   */
  async lease(file: string): Promise<FileLease> {
    const now = Date.now();
    let entry = this.entries.get(file);
    if (entry && now - entry.openedAt > this.options.maxAgeMs) {
      this.evict(entry);
      entry = undefined;
    }
    if (entry) {
      // Most recently used goes last.
      this.entries.delete(file);
      this.entries.set(file, entry);
      entry.leases++;
    } else {
      let pending = this.opening.get(file);
      if (!pending) {
        const started: { promise?: Promise<Entry>; waiters: number } = { waiters: 0 };
        started.promise = this.openEntry(file, started as PendingOpen);
        pending = started as PendingOpen;
        this.opening.set(file, pending);
      }
      // Counted before the open completes, so that nothing can close the new descriptor before we use it.
      pending.waiters++;
      entry = await pending.promise;
    }
    // No lastUsed update here: only an entry without leases can idle, and release() stamps it.
    const leased = entry;
    let released = false;
    return {
      fd: leased.fd,
      stats: leased.stats,
      release: () => {
        if (released) throw new Error('file lease released twice');
        released = true;
        leased.leases--;
        leased.lastUsed = Date.now();
        if (leased.evicted && leased.leases === 0) closeQuietly(leased.fd);
      },
    };
  }

  /**
   * Forgets `file` (it was replaced or deleted): later leases open it afresh. An open of it already in progress
   * still serves the callers waiting on it but is not cached.
   */
  invalidate(file: string): void {
    this.opening.delete(file);
    const entry = this.entries.get(file);
    if (entry) this.evict(entry);
  }

  /** Closes every idle descriptor and stops caching; descriptors in use close when released. */
  close(): void {
    this.closed = true;
    for (const entry of [...this.entries.values()]) this.evict(entry);
    this.opening.clear();
    this.stopSweeper();
  }

  /** Descriptors held open now by cache entries (idle or leased), not counting evicted ones still in use. */
  get size(): number {
    return this.entries.size;
  }

  /** Opens and fstats `file`; caches the entry if `pending` is still the open the cache wants when it is done. */
  private async openEntry(file: string, pending: PendingOpen): Promise<Entry> {
    try {
      const fd = await new Promise<number>((resolve, reject) =>
        open(file, 'r', (err, opened) => (err ? reject(err) : resolve(opened))),
      );
      let stats: Stats;
      try {
        stats = await new Promise<Stats>((resolve, reject) =>
          fstat(fd, (err, st) => (err ? reject(err) : resolve(st))),
        );
      } catch (err) {
        closeQuietly(fd);
        throw err;
      }
      const now = Date.now();
      const leases = pending.waiters;
      const entry: Entry = { file, fd, stats, openedAt: now, lastUsed: now, leases, evicted: true };
      // Cached only if still wanted: not invalidated meanwhile (the map then holds another promise or none),
      // the cache is open, and the file is a regular file.
      if (this.opening.get(file) === pending && !this.closed && stats.isFile()) {
        entry.evicted = false;
        this.entries.set(file, entry);
        this.trim();
        this.startSweeper();
      }
      return entry;
    } finally {
      if (this.opening.get(file) === pending) this.opening.delete(file);
    }
  }

  /** Keeps at most `maxEntries` entries, evicting the least recently used (idle ones first). */
  private trim(): void {
    let excess = this.entries.size - this.options.maxEntries;
    if (excess <= 0) return;
    for (const entry of this.entries.values()) {
      if (excess === 0) return;
      if (entry.leases === 0) {
        this.evict(entry);
        excess--;
      }
    }
    for (const entry of this.entries.values()) {
      if (excess === 0) return;
      this.evict(entry);
      excess--;
    }
  }

  private evict(entry: Entry): void {
    if (entry.evicted) return;
    entry.evicted = true;
    if (this.entries.get(entry.file) === entry) this.entries.delete(entry.file);
    if (entry.leases === 0) closeQuietly(entry.fd);
    if (this.entries.size === 0) this.stopSweeper();
  }

  /** Closes idle and over-age entries every half `idleMs` while any entry exists. */
  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(
      () => {
        const now = Date.now();
        for (const entry of [...this.entries.values()]) {
          const idle = entry.leases === 0 && now - entry.lastUsed >= this.options.idleMs;
          if (idle || now - entry.openedAt > this.options.maxAgeMs) this.evict(entry);
        }
      },
      Math.max(10, this.options.idleMs / 2),
    ).unref();
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

function closeQuietly(fd: number): void {
  close(fd, () => {});
}
