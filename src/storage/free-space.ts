/**
 * The free space of a local filesystem, from statfs(2), sampled at most once per `maxAgeMs` (a second by
 * default): request paths ask on every new upload, and a second-old answer is as good as a fresh one.
 */
import { statfs as nodeStatfs } from 'node:fs/promises';
import path from 'node:path';

/** statfs(2) as `fs.promises.statfs` answers it (only the fields used); tests inject their own. */
export type StatfsFn = (path: string) => Promise<{ readonly bavail: number; readonly bsize: number }>;

export interface FreeSpaceProbeOptions {
  /** Default `fs.promises.statfs`. */
  readonly statfs?: StatfsFn;
  /** How long a sample is reused, in ms. Default 1000; 0 measures every time. */
  readonly maxAgeMs?: number;
  /** The clock, in ms. Default `Date.now`. */
  readonly now?: () => number;
}

export class FreeSpaceProbe {
  private sample: { readonly at: number; readonly bytes: number } | undefined;
  private pending: Promise<number> | undefined;

  constructor(
    private readonly dir: string,
    private readonly options: FreeSpaceProbeOptions = {},
  ) {}

  /**
   * Bytes available to unprivileged writers on the filesystem of `dir` (of its nearest existing ancestor while
   * `dir` does not exist yet). Concurrent callers share one measurement. Throws what statfs throws.
   */
  async available(): Promise<number> {
    const now = (this.options.now ?? Date.now)();
    if (this.sample !== undefined && now - this.sample.at < (this.options.maxAgeMs ?? 1000)) {
      return this.sample.bytes;
    }
    this.pending ??= this.measure()
      .then((bytes) => {
        this.sample = { at: now, bytes };
        return bytes;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }

  private async measure(): Promise<number> {
    const statfs = this.options.statfs ?? nodeStatfs;
    for (let dir = path.resolve(this.dir); ; dir = path.dirname(dir)) {
      try {
        const st = await statfs(dir);
        return st.bavail * st.bsize;
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
      }
    }
  }
}
