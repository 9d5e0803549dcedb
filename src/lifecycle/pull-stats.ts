/**
 * Pull statistics (count and latest pull per manifest and per tag), kept off the request path. A pull only
 * updates two in-memory counters (no await, no I/O); every `flushMs` (a minute) the counters accumulated since the
 * previous flush are written in one batch (`LifecycleStore.addPulls`: one statement per table), so each manifest
 * and tag costs at most one database write per flush per instance however often it is pulled. Stopping flushes
 * what is pending. A failed flush keeps its counts for the next one (merged with the newer pulls); a crash loses
 * at most a minute of counts, and while more than `maxEntries` distinct manifests and tags wait, pulls of further
 * ones are not counted (logged), which bounds memory while the database is away.
 *
 * Why one timer armed on demand: an idle registry writes nothing, and the first pull after a quiet period is
 * flushed within a minute like every other.
 */
import type { Logger } from '../logger.ts';
import type { LifecycleStore, ManifestPulls, TagPulls } from '../metadata/lifecycle-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { PullStatsSink } from '../registry/options.ts';

export interface PullStatsRecorderOptions {
  readonly logger: Logger;
  /** How long pulls accumulate before they are written (default one minute). */
  readonly flushMs?: number;
  /** Distinct manifests and tags kept waiting at most (default 100,000). */
  readonly maxEntries?: number;
  /** The clock (epoch ms). Default `Date.now`. */
  readonly now?: () => number;
}

type Counts = Map<string, Map<string, Pending>>;

interface Pending {
  readonly repository: string;
  /** A digest (manifests) or a tag name (tags). */
  readonly key: string;
  count: number;
  at: number;
}

export class PullStatsRecorder implements PullStatsSink {
  /** Per repository, per digest (manifests) or tag name (tags): nested maps, so a pull builds no key string. */
  private manifests: Counts = new Map();
  private tags: Counts = new Map();
  /** Entries in `manifests` and `tags`. */
  private entries = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;
  /** Pulls not counted because too many entries waited. */
  dropped = 0;

  constructor(
    private readonly store: Pick<LifecycleStore, 'addPulls'>,
    private readonly options: PullStatsRecorderOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  record(repository: string, digest: Digest, tag: string | null): void {
    if (this.stopped) return;
    const at = this.now();
    this.add(this.manifests, repository, digest, 1, at);
    if (tag !== null) this.add(this.tags, repository, tag, 1, at);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.options.flushMs ?? 60_000);
      this.timer.unref();
    }
  }

  /** Distinct manifests and tags waiting for the next flush. */
  get pending(): number {
    return this.entries;
  }

  /** Writes what has accumulated now (one batch); never throws (a failure is logged and retried next flush). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.entries === 0) return;
    const manifests = [...entriesOf(this.manifests)];
    const tags = [...entriesOf(this.tags)];
    this.manifests = new Map();
    this.tags = new Map();
    this.entries = 0;
    this.flushing = this.store
      .addPulls(
        manifests.map((p): ManifestPulls => ({
          repository: p.repository,
          digest: p.key as Digest,
          count: p.count,
          at: p.at,
        })),
        tags.map((p): TagPulls => ({
          repository: p.repository,
          tag: p.key,
          count: p.count,
          at: p.at,
        })),
      )
      .catch((err: unknown) => {
        this.options.logger.warn(
          { err, manifests: manifests.length, tags: tags.length },
          'cannot write pull statistics; retrying with the next flush',
        );
        // Merge back, so the counts are written by a later flush.
        for (const p of manifests) this.add(this.manifests, p.repository, p.key, p.count, p.at);
        for (const p of tags) this.add(this.tags, p.repository, p.key, p.count, p.at);
        if (!this.stopped && this.timer === undefined) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.flush();
          }, this.options.flushMs ?? 60_000);
          this.timer.unref();
        }
      })
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }

  /** Stops counting and writes what is pending (once; later calls wait for nothing). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private add(into: Counts, repository: string, key: string, count: number, at: number): void {
    let byKey = into.get(repository);
    const entry = byKey?.get(key);
    if (entry !== undefined) {
      entry.count += count;
      if (at > entry.at) entry.at = at;
      return;
    }
    if (this.entries >= (this.options.maxEntries ?? 100_000)) {
      if (this.dropped++ % 10_000 === 0) {
        this.options.logger.warn({ dropped: this.dropped }, 'pull statistics dropped: too many waiting');
      }
      return;
    }
    if (byKey === undefined) {
      byKey = new Map();
      into.set(repository, byKey);
    }
    byKey.set(key, { repository, key, count, at });
    this.entries++;
  }
}

function* entriesOf(counts: Counts): Iterable<Pending> {
  for (const byKey of counts.values()) yield* byKey.values();
}
