/**
 * A bounded pool of equally sized, reusable buffers for copying file bytes to sockets.
 *
 * Why a pool: allocating a fresh buffer for every read turns a 1 GiB download into 1 GiB of garbage, and lets the
 * process's memory grow with the number of downloads in flight until the collector catches up. Reusing a few
 * large buffers keeps the copy fast (few, large syscalls) and its memory fixed: at most `capacity` buffers exist
 * at once; a transfer that finds the pool exhausted uses small buffers of its own instead of waiting.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private inUse = 0;

  /**
   * @param bufferSize the size of every pooled buffer, in bytes
   * @param capacity how many pooled buffers may exist at once (free and lent out together)
   */
  constructor(
    readonly bufferSize: number,
    readonly capacity: number,
  ) {}

  /** Lends a buffer of `bufferSize` bytes, or returns null when `capacity` buffers are already lent out. */
  acquire(): Buffer | null {
    if (this.inUse >= this.capacity) return null;
    this.inUse++;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
  }

  /**
   * Returns a buffer lent by `acquire`. With `reusable` false (its bytes may still be referenced by a write that
   * never completed), the buffer is not reused but its slot is freed. Must be called exactly once per buffer.
   */
  release(buffer: Buffer, reusable = true): void {
    this.inUse--;
    if (reusable && buffer.length === this.bufferSize) this.free.push(buffer);
  }

  /** How many buffers are lent out now. */
  get lent(): number {
    return this.inUse;
  }
}
