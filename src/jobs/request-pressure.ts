/**
 * Background jobs yield to registry requests. While the process is saturated serving clients (several requests
 * in flight and its event loop busy nearly all the time), the job runner postpones claiming new jobs, so that
 * pushes and pulls keep their throughput and latency; the jobs (webhook deliveries, purges, ...) catch up as soon as
 * there is spare capacity. A job never waits for its turn longer than the runner's `maxDeferMs`, so a registry
 * that stays saturated still makes progress on its queue.
 *
 * Both signals are needed: the runner's own work also keeps the event loop busy, and a busy loop without
 * requests waiting must not hold the runner back (it would slow down its own backlog).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** What the job runner asks before it claims work. */
export interface LoadGate {
  /** True while background work should wait. Cheap: called on every poll. */
  busy(): boolean;
}

export interface RequestPressureOptions {
  /** Requests in flight at or above which the process may be saturated. Default 2. */
  readonly minRequests?: number;
  /** Event-loop utilization (0..1) over the last window at or above which it is. Default 0.85. */
  readonly utilization?: number;
  /** The window over which utilization is measured, in ms. Default 250. */
  readonly windowMs?: number;
}

export class RequestPressure implements LoadGate {
  private inFlight = 0;
  private readonly minRequests: number;
  private readonly threshold: number;
  private readonly windowMs: number;
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private lastAt = performance.now();
  private saturated = false;

  constructor(options: RequestPressureOptions = {}) {
    this.minRequests = options.minRequests ?? 2;
    this.threshold = options.utilization ?? 0.85;
    this.windowMs = options.windowMs ?? 250;
  }

  /** A request started (the HTTP layer calls this once per request). */
  requestStarted(): void {
    this.inFlight++;
  }

  /** A request ended (answered or aborted; once per `requestStarted`). */
  requestEnded(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  /** Requests in flight now. */
  get requests(): number {
    return this.inFlight;
  }

  busy(): boolean {
    const now = performance.now();
    if (now - this.lastAt >= this.windowMs) {
      const current = performance.eventLoopUtilization();
      this.saturated = performance.eventLoopUtilization(current, this.last).utilization >= this.threshold;
      this.last = current;
      this.lastAt = now;
    }
    return this.saturated && this.inFlight >= this.minRequests;
  }
}

/**
 * Background work asks `defer()` before it starts a unit of work: true while the gate is busy, for at most
 * `maxDeferMs` in a row (then one unit goes ahead and the wait starts again), so saturation slows the work down but
 * never starves it.
 */
export class Deferral {
  private since: number | undefined;

  constructor(
    private readonly gate: LoadGate | undefined,
    private readonly maxDeferMs = 5_000,
  ) {}

  defer(): boolean {
    if (this.gate === undefined || !this.gate.busy()) {
      this.since = undefined;
      return false;
    }
    const now = performance.now();
    this.since ??= now;
    if (now - this.since < this.maxDeferMs) return true;
    this.since = now;
    return false;
  }
}
