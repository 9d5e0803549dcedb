/**
 * Equally sized buffers one operation hands back for reuse: `take` returns a freed buffer or allocates a new one,
 * and never refuses or waits.
 *
 * How it differs from BufferPool (`buffer-pool.ts`): that pool is shared by many transfers and bounded, so it may
 * refuse a caller or queue it. A recycler sets no limit of its own: its owner bounds how many buffers are out at
 * once (the S3 driver's put and append hold two parts at most, one being sent while the next is filled), and the
 * recycler with its buffers goes to the collector when the operation ends. What it saves is one fresh
 * part-sized allocation, and one part-sized piece of garbage, per part of a long body.
 */
export class BufferRecycler {
  private readonly free: Buffer[] = [];

  /** @param size the size of every buffer, in bytes */
  constructor(private readonly size: number) {}

  /** A buffer of `size` bytes with arbitrary contents: one handed back earlier, else a new one. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  /** Hands back a buffer `take` returned, once nothing reads or writes it any more. */
  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}
