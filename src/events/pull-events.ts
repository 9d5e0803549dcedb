/**
 * Pull events, recorded outside the write path and best effort: a pull never waits for, and never fails
 * because of, its event. Events are recorded only while some subscriber wants them (checked every few seconds),
 * batched into one outbox insert every `flushMs`, and dropped (counted, logged) when more than `maxPending`
 * wait, e.g. while the database is slow. A crash loses the batch not yet written.
 */
import type { NewDomainEvent } from './event.ts';
import type { Logger } from '../logger.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { PullEventSink } from '../registry/options.ts';

export interface PullEventRecorderOptions {
  /** Whether any subscriber wants pull events now. */
  readonly wanted: () => Promise<boolean>;
  readonly logger: Logger;
  /** How often `wanted` is asked (default 5 s). */
  readonly refreshMs?: number;
  readonly flushMs?: number;
  readonly maxPending?: number;
}

export class PullEventRecorder implements PullEventSink {
  private wantedNow = false;
  private pending: NewDomainEvent[] = [];
  private flushing: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Events dropped because too many waited. */
  dropped = 0;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: PullEventRecorderOptions,
  ) {}

  get active(): boolean {
    return this.wantedNow;
  }

  /** Starts asking whether pulls are wanted (at once, then every refresh interval). */
  async start(): Promise<void> {
    await this.refresh();
    this.refreshTimer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 5_000);
    this.refreshTimer.unref();
  }

  /** Stops, writing what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.refreshTimer);
    clearTimeout(this.flushTimer);
    await this.flushing;
    await this.flush();
  }

  /** Asks again whether pulls are wanted (after a subscription changed on this instance, say). */
  async refresh(): Promise<void> {
    try {
      this.wantedNow = await this.options.wanted();
    } catch (err) {
      this.options.logger.warn({ err }, 'cannot tell whether pull events are wanted');
    }
  }

  record(event: NewDomainEvent): void {
    if (this.pending.length >= (this.options.maxPending ?? 10_000)) {
      if (this.dropped++ % 1000 === 0) {
        this.options.logger.warn(
          { dropped: this.dropped },
          'pull events dropped: the outbox is not keeping up',
        );
      }
      return;
    }
    this.pending.push(event);
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, this.options.flushMs ?? 100);
      this.flushTimer.unref();
    }
  }

  /** Writes the pending events now. */
  async flush(): Promise<void> {
    await this.flushing;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.metadata
      .appendEvents(batch)
      .catch((err: unknown) => {
        this.dropped += batch.length;
        this.options.logger.warn({ err, events: batch.length }, 'pull events lost: cannot write them');
      })
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }
}
