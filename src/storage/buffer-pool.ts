/**
 * A bounded pool of equally sized, reusable buffers for copying file bytes to sockets.
 *
 * Why a pool: allocating a fresh buffer for every read turns a 1 GiB download into 1 GiB of garbage, and lets the
 * process's memory grow with the number of downloads in flight until the collector catches up. Reusing a few
 * large buffers keeps the copy fast (few, large syscalls) and its memory fixed: at most `capacity` buffers exist
 * at once. A transfer that finds the pool exhausted either uses small buffers of its own (`acquire`) or queues for
 * a pooled one while the pool keeps turning over (`acquireQueued`).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private inUse = 0;
  /** Callers queued in `acquireQueued`, first come first served. */
  private readonly waiters: ((buffer: Buffer | null) => void)[] = [];
  /** Armed while callers are queued; restarted by every release; fires when the pool has stalled. */
  private stallTimer: NodeJS.Timeout | null = null;

  /**
   * @param bufferSize the size of every pooled buffer, in bytes
   * @param capacity how many pooled buffers may exist at once (free and lent out together)
   * @param stallMs how long queued callers wait without any buffer coming back before they give up
   */
  constructor(
    readonly bufferSize: number,
    readonly capacity: number,
    readonly stallMs = 100,
  ) {}

  /** Lends a buffer of `bufferSize` bytes, or returns null when `capacity` buffers are already lent out. */
  acquire(): Buffer | null {
    if (this.inUse >= this.capacity) return null;
    this.inUse++;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
  }

  /**
   * Lends a buffer as `acquire` does, but when the pool is exhausted queues behind earlier callers until one is
   * released. The queue lasts as long as the pool keeps moving: when no buffer has come back for `stallMs` (the
   * holders are stuck, e.g. behind clients that stopped reading), every queued caller resolves null and should
   * make do without. A buffer it resolves with must be released like any other.
   *
   * Why "no release for stallMs" rather than a deadline per caller: a burst of hundreds of short transfers
   * queues far longer than any sensible deadline while the pool turns over every millisecond, and giving up then
   * would make them copy in small chunks at twice the CPU; a pool that has stopped turning over is what waiting
   * cannot fix.
   */
  acquireQueued(): Promise<Buffer | null> {
    const now = this.acquire();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.stallTimer ??= setTimeout(() => this.giveUpWaiting(), this.stallMs);
    });
  }

  /**
   * Returns a buffer lent by `acquire` or `acquireQueued`. With `reusable` false (its bytes may still be
   * referenced by a write that never completed), the buffer is not reused but its slot is freed. Must be called
   * exactly once per buffer. The first queued caller, if any, gets the slot at once.
   */
  release(buffer: Buffer, reusable = true): void {
    this.inUse--;
    if (reusable && buffer.length === this.bufferSize) this.free.push(buffer);
    const next = this.waiters.shift();
    if (next) next(this.acquire());
    if (this.stallTimer) {
      if (this.waiters.length > 0) this.stallTimer.refresh();
      else this.clearStallTimer();
    }
  }

  /** How many buffers are lent out now. */
  get lent(): number {
    return this.inUse;
  }

  /** How many callers are queued in `acquireQueued` now. */
  get queued(): number {
    return this.waiters.length;
  }

  private giveUpWaiting(): void {
    this.stallTimer = null;
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  private clearStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}
