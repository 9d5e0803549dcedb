/**
 * Bandwidth limits: a token bucket shared by every blob stream of one execution of a policy, and a Transform that
 * passes bytes on only as fast as the bucket refills. Chunks larger than a second's worth are split, so a limit
 * holds for large chunks too.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Takers in arrival order: one waits at a time, so a big taker is not starved by small ones. */
  private queue: Promise<void> = Promise.resolve();

  /** @param rate bytes per second (also the burst). */
  constructor(readonly rate: number) {
    if (!(rate > 0)) throw new RangeError('a bandwidth limit is a positive number of bytes per second');
    this.tokens = rate;
    this.last = Date.now();
  }

  /** Resolves once `n` (at most `rate`) bytes may pass. */
  take(n: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.wait(Math.min(n, this.rate), signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = Date.now();
      this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      const ms = Math.max(1, Math.ceil(((n - this.tokens) * 1000) / this.rate));
      await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 250)));
    }
  }
}

/** `source` piped through a Transform that counts bytes (`onBytes`) and, with a bucket, throttles them. */
export function meteredStream(
  source: Readable,
  bucket: TokenBucket | null,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): Readable {
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      void (async () => {
        try {
          if (bucket === null) {
            onBytes(chunk.length);
            callback(null, chunk);
            return;
          }
          for (let offset = 0; offset < chunk.length; offset += bucket.rate) {
            const part = chunk.subarray(offset, Math.min(chunk.length, offset + bucket.rate));
            await bucket.take(part.length, signal);
            onBytes(part.length);
            this.push(part);
          }
          callback();
        } catch (e) {
          callback(e as Error);
        }
      })();
    },
  });
  source.on('error', (e) => transform.destroy(e));
  transform.on('close', () => {
    if (!source.readableEnded) source.destroy();
  });
  return source.pipe(transform);
}

/** At most `limit` holders at once per key (a remote registry), in this process. */
export class KeyedLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  /** Runs `fn` once fewer than `limit` others hold `key`. */
  async run<T>(key: string, limit: number, fn: () => Promise<T>): Promise<T> {
    while ((this.active.get(key) ?? 0) >= limit) {
      await new Promise<void>((resolve) => {
        const list = this.waiting.get(key) ?? [];
        list.push(resolve);
        this.waiting.set(key, list);
      });
    }
    this.active.set(key, (this.active.get(key) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      this.active.set(key, (this.active.get(key) ?? 1) - 1);
      this.waiting.get(key)?.shift()?.();
    }
  }
}
