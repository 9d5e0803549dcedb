/**
 * Pull-based reading of exact byte counts from a chunked stream, holding only the chunks not yet consumed: the
 * tar reader asks for 512-byte headers, small bodies it wants, and skips everything else without copying.
 */

/** A chunk as async iteration over a Node stream yields it. */
export type Chunk = Buffer | Uint8Array | string;

/** Bytes pulled on demand from an async iterator of chunks. Not safe for concurrent calls. */
export class ByteSource {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;

  constructor(private readonly iterator: AsyncIterator<Chunk>) {}

  /** Pulls chunks until at least `n` bytes are buffered or the stream ended; true when `n` are available. */
  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        break;
      }
      const chunk =
        typeof next.value === 'string'
          ? Buffer.from(next.value)
          : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.length > 0) {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
      }
    }
    return this.buffered >= n;
  }

  /**
   * The next `n` bytes, or fewer only when the stream ends first (an empty buffer at a clean end). The result
   * is a copy, so it never pins a larger chunk in memory.
   */
  async readUpTo(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const out = Buffer.allocUnsafe(take);
    let filled = 0;
    while (filled < take) {
      const first = this.chunks[0]!;
      const part = Math.min(first.length, take - filled);
      first.copy(out, filled, 0, part);
      filled += part;
      if (part === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(part);
    }
    this.buffered -= take;
    return out;
  }

  /**
   * Up to `max` (> 0) of the next bytes, as they are buffered: at least one unless the stream ended (then an
   * empty buffer). Not a copy: the result may be a view of a larger chunk, so keep a copy of what you keep.
   */
  async readSome(max: number): Promise<Buffer> {
    if (this.chunks.length === 0 && !(await this.fill(1))) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length <= max) {
      this.chunks.shift();
      this.buffered -= first.length;
      return first;
    }
    this.chunks[0] = first.subarray(max);
    this.buffered -= max;
    return first.subarray(0, max);
  }

  /** Puts `bytes` back in front of the stream: the next read returns them first. */
  unread(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.chunks.unshift(bytes);
    this.buffered += bytes.length;
  }

  /** Discards the next `n` bytes without keeping them; returns how many were discarded (fewer at the end). */
  async skip(n: number): Promise<number> {
    let remaining = n;
    while (remaining > 0) {
      if (this.chunks.length === 0 && !(await this.fill(1))) break;
      const first = this.chunks[0]!;
      if (first.length <= remaining) {
        this.chunks.shift();
        this.buffered -= first.length;
        remaining -= first.length;
      } else {
        this.chunks[0] = first.subarray(remaining);
        this.buffered -= remaining;
        remaining = 0;
      }
    }
    return n - remaining;
  }

  /** Stops the underlying stream (destroying it) when the reader is done before its end. */
  async close(): Promise<void> {
    this.chunks.length = 0;
    this.buffered = 0;
    if (!this.ended) {
      this.ended = true;
      await this.iterator.return?.();
    }
  }
}
