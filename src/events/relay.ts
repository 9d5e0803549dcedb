/**
 * The event relay: reads committed domain events from the outbox in commit order and hands them to the
 * subscribers that work after the commit (webhooks, and later replication and scanning triggers), then marks them
 * dispatched.
 *
 * Why this is safe with several instances and crashes:
 * - One relay works at a time across the fleet: each round first takes (or extends) the `event-relay` lease. An
 *   instance that dies holding it stops extending it, and another takes over once it expires.
 * - A batch is marked dispatched only after every subscriber has taken it, so a crash in between hands the batch
 *   over again (at least once). Subscribers make that harmless: the webhook subscriber enqueues one delivery job per
 *   (event, endpoint) under a dedupe key, so a repeated batch enqueues nothing new.
 * - A subscriber that fails leaves the batch pending; the relay retries it after a pause (head-of-line: events are
 *   never handed out of order).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { MetadataStore } from '../metadata/store.ts';
import { Deferral, type LoadGate } from '../jobs/request-pressure.ts';
import type { DomainEvent } from './event.ts';

/** Takes committed events after the fact. */
export interface EventSubscriber {
  /** For logs. */
  readonly name: string;
  /**
   * Takes a batch of events in commit order. May be called again with events it already took (after a crash), so
   * it must be idempotent. Throws to have the batch handed over again later.
   */
  handle(events: readonly DomainEvent[]): Promise<void>;
}

export interface EventRelayOptions {
  /** This process, as the lease holder. */
  readonly instanceId?: string;
  /** How often to look for events when nothing woke the relay. */
  readonly pollIntervalMs: number;
  /** Dispatched events are deleted after this long. */
  readonly retentionMs: number;
  readonly batchSize?: number;
  readonly logger: Logger;
  /**
   * While it says busy, rounds wait (for at most `maxDeferMs`), so that a saturated registry serves requests
   * first and later relays many events per round (see `jobs/request-pressure.ts`).
   */
  readonly gate?: LoadGate;
  /** The longest a round waits for a busy gate. Default 5 s. */
  readonly maxDeferMs?: number;
}

const LEASE = 'event-relay';
const PRUNE_EVERY_MS = 60_000;

export class EventRelay {
  private readonly instanceId: string;
  private readonly batchSize: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  /** Set by `stop()`: a round in progress ends after its batch. */
  private stopping = false;
  private failures = 0;
  private lastPrune = 0;
  /** Rounds wait while the gate is busy. */
  private readonly deferral: Deferral;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly subscribers: readonly EventSubscriber[],
    private readonly options: EventRelayOptions,
  ) {
    this.instanceId = options.instanceId ?? randomUUID();
    this.batchSize = options.batchSize ?? 100;
    this.deferral = new Deferral(options.gate, options.maxDeferMs);
  }

  /** Starts relaying: at once, after each local commit with events, and every poll interval. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopping = false;
    this.metadata.onEventsCommitted(() => this.wake());
    this.schedule(0);
  }

  /** Stops relaying and waits for the round in progress; gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping = true;
    clearTimeout(this.timer);
    await this.running;
    await this.metadata.releaseLease(LEASE, this.instanceId).catch(() => undefined);
  }

  /** Runs a round now (or right after the one in progress). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /**
   * One round: when this instance holds (or takes) the lease, hands every pending event to the subscribers.
   * Returns how many events were dispatched; 0 also when another instance holds the lease.
   */
  async relayPending(): Promise<number> {
    // The lease outlives a few polls, so that the holder keeps it while it is alive.
    const ttl = Math.max(this.options.pollIntervalMs * 5, 5_000);
    if (!(await this.metadata.tryAcquireLease(LEASE, this.instanceId, ttl))) return 0;
    let total = 0;
    for (;;) {
      const batch = await this.metadata.pendingEvents(this.batchSize);
      if (batch.length === 0) break;
      const events = batch.map((b) => b.event);
      for (const subscriber of this.subscribers) await subscriber.handle(events);
      await this.metadata.markEventsDispatched(batch.map((b) => b.seq));
      total += batch.length;
      if (batch.length < this.batchSize || this.stopping) break;
    }
    const now = Date.now();
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.metadata.pruneEvents(new Date(now - this.options.retentionMs), 10_000);
    }
    return total;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.round(), delayMs);
    this.timer.unref();
  }

  private round(): void {
    if (this.stopped || this.running) return;
    if (this.deferral.defer()) {
      this.schedule(this.options.pollIntervalMs);
      return;
    }
    this.again = false;
    this.running = this.relayPending()
      .then(() => {
        this.failures = 0;
      })
      .catch((err: unknown) => {
        this.failures++;
        this.options.logger.warn({ err, failures: this.failures }, 'event relay round failed');
      })
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        // After failures, back off (up to a minute) rather than hammer a database that is down.
        const pause =
          this.failures > 0 ? Math.min(60_000, 1000 * 2 ** Math.min(this.failures, 6)) : undefined;
        this.schedule(pause ?? (this.again ? 0 : this.options.pollIntervalMs));
      });
  }
}
