/**
 * The durable job runner: runs the handlers of registered queues for jobs stored in the metadata database (the
 * `jobs` table, through `JobStore`), and fires recurring schedules. Every instance sharing the database runs one;
 * together they share the queue.
 *
 * Protocol (see `metadata/job-store.ts` for the guarantees each store call gives):
 * - Claiming marks a due job running under this runner's lease (`leaseDurationMs`) and counts the attempt; a
 *   job whose lease expired (its runner died) is claimable again, so work survives a crash (at least once).
 * - While a handler runs, its lease is renewed every third of the lease duration. A renewal that finds the job
 *   no longer ours (cancelled, redriven, or taken over after a stall longer than the lease) aborts the handler's
 *   signal, and the handler's outcome is then dropped: the store's owner checks make it change nothing anyway.
 * - A failed attempt is retried after an exponential backoff with jitter (`backoff.ts`), or at a
 *   `RetryLaterError`'s time; after `maxAttempts` attempts, or at a `PermanentJobError`, the job is `dead`.
 * - Polling: every `pollIntervalMs`, and at once when this instance enqueues work or a job finishes.
 */
import { randomUUID } from 'node:crypto';
import { silentLogger, type Logger } from '../logger.ts';
import type {
  EnqueueInput,
  JobCount,
  JobListQuery,
  JobRecord,
  JobStore,
  JobTransition,
} from '../metadata/job-store.ts';
import type { Page } from '../metadata/store.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { PermanentJobError, RetryLaterError } from './job.ts';
import type { EnqueueOptions, JobContext, JobHandler, JobQueue } from './job.ts';
import { Deferral, type LoadGate } from './request-pressure.ts';
import { slotClock, slotKey, type ScheduleSpec, type SlotClock } from './schedule.ts';

export type { ScheduleSpec };

/** Attempts of a job whose queue has no registered `maxAttempts` (and no `maxAttempts` in its enqueue options). */
export const DEFAULT_MAX_ATTEMPTS = 5;

/** How long a finished job's slot waits for others to free up before the runner claims again (ms). */
const NUDGE_DELAY_MS = 2;

export interface JobRunnerOptions {
  /** This runner's name as a lease owner; unique per process. Default: a random UUID. */
  readonly instanceId?: string;
  /** Jobs run at once over all queues (config `jobs.concurrency`). Default 4. */
  readonly concurrency?: number;
  /** How often an idle runner looks for due jobs (config `jobs.pollInterval`). Default 1 s. */
  readonly pollIntervalMs?: number;
  /** How long a claim lasts without renewal (config `jobs.leaseDuration`). Default 30 s. */
  readonly leaseDurationMs?: number;
  /** Succeeded and cancelled jobs are deleted this long after they finished (config `jobs.retention`). Default 7 d. */
  readonly retentionMs?: number;
  /** How often the retention cleanup runs. Default 1 min. */
  readonly cleanupIntervalMs?: number;
  /** How long `stop()` waits for running handlers before aborting their signals. Default 10 s. */
  readonly stopTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  readonly logger?: Logger;
  /** The clock (epoch ms) for run times, leases and schedule slots. Default `Date.now`. */
  readonly now?: () => number;
  /** While it says busy, no new job is claimed (see `request-pressure.ts`), for at most `maxDeferMs`. */
  readonly gate?: LoadGate;
  /** The longest claiming waits for a busy gate. Default 5 s. */
  readonly maxDeferMs?: number;
}

export interface RegisterOptions {
  /** Attempts before a job of this queue is dead (default for its enqueues). Default `DEFAULT_MAX_ATTEMPTS`. */
  readonly maxAttempts?: number;
  /** At most this many jobs of this queue run at once on this instance (within the runner's concurrency). */
  readonly concurrency?: number;
}

export interface ScheduleOptions {
  /** The `maxAttempts` of each slot's job. Default: the queue's. */
  readonly maxAttempts?: number;
}

interface Registration {
  readonly handler: JobHandler;
  readonly maxAttempts: number;
  readonly concurrency: number | undefined;
  running: number;
}

interface Schedule {
  readonly clock: SlotClock;
  readonly queue: string;
  readonly payload: unknown;
  readonly maxAttempts: number | undefined;
  /** The latest slot this instance has enqueued (or found enqueued). */
  lastSlot: number | null;
}

interface InFlight {
  readonly controller: AbortController;
  readonly renewal: NodeJS.Timeout;
  readonly done: Promise<void>;
}

/** Why a handler's signal was aborted. */
class JobAbort extends Error {
  constructor(
    readonly why: 'lost' | 'stopping',
    message: string,
  ) {
    super(message);
    this.name = 'JobAbort';
  }
}

/** Runs registered queues' jobs and fires schedules; also the `JobQueue` producers enqueue through. */
export class JobRunner implements JobQueue {
  readonly instanceId: string;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly leaseMs: number;
  private readonly retentionMs: number;
  private readonly cleanupIntervalMs: number;
  private readonly stopTimeoutMs: number;
  private readonly log: Logger;
  private readonly now: () => number;

  private readonly queues = new Map<string, Registration>();
  private readonly schedules = new Map<string, Schedule>();
  private readonly inFlight = new Map<number, InFlight>();
  private running = false;
  /** Claims wait while the gate is busy (see `request-pressure.ts`). */
  private readonly deferral: Deferral;
  private timer: NodeJS.Timeout | undefined;
  /** The pending `nudgeSoon`, if any. */
  private soon: NodeJS.Timeout | undefined;
  /** The poll in progress, if any; `again` asks it to poll once more when done. */
  private polling: Promise<void> | undefined;
  private again = false;
  private lastCleanup = Number.NEGATIVE_INFINITY;

  /**
   * @param store the job table; the runner does not own it (close the metadata store after `stop()`).
   */
  constructor(
    readonly store: JobStore,
    private readonly options: JobRunnerOptions = {},
  ) {
    this.instanceId = options.instanceId ?? randomUUID();
    this.deferral = new Deferral(options.gate, options.maxDeferMs);
    this.concurrency = positive('concurrency', options.concurrency ?? 4);
    this.pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 1_000);
    this.leaseMs = positive('leaseDurationMs', options.leaseDurationMs ?? 30_000);
    this.retentionMs = options.retentionMs ?? 7 * 24 * 60 * 60 * 1_000;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.log = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
  }

  /** Whether `start()` was called and `stop()` not yet. */
  get started(): boolean {
    return this.running;
  }

  /**
   * Runs `handler` for the jobs of `queue` once started (this runner claims only registered queues). Register
   * before `start()` to have the queue claimed from the first poll. A queue is registered once.
   */
  register<P>(queue: string, handler: JobHandler<P>, options: RegisterOptions = {}): void {
    if (this.queues.has(queue)) throw new Error(`job queue ${queue} is already registered`);
    this.queues.set(queue, {
      handler: handler as JobHandler,
      maxAttempts: positive('maxAttempts', options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS),
      concurrency:
        options.concurrency === undefined ? undefined : positive('concurrency', options.concurrency),
      running: 0,
    });
    if (this.running) this.nudge();
  }

  /**
   * Enqueues a job of `queue` with `payload` for every slot of `spec` (a cron expression in UTC, or
   * `{ everyMs }`), while the runner runs: on each poll the latest slot at or before now is enqueued with the
   * dedupe key `schedule:<name>:<slot epoch ms>`, so each slot fires once across every runner sharing the database,
   * and after downtime only the latest missed slot fires. Throws a RangeError for an invalid spec, and an Error
   * for a name already scheduled.
   */
  schedule(
    name: string,
    spec: ScheduleSpec,
    queue: string,
    payload: unknown = null,
    options: ScheduleOptions = {},
  ): void {
    if (this.schedules.has(name)) throw new Error(`job schedule ${name} is already defined`);
    this.schedules.set(name, {
      clock: slotClock(spec),
      queue,
      payload,
      maxAttempts:
        options.maxAttempts === undefined ? undefined : positive('maxAttempts', options.maxAttempts),
      lastSlot: null,
    });
    if (this.running) this.nudge();
  }

  async enqueue(queue: string, payload: unknown, options: EnqueueOptions = {}): Promise<number | null> {
    const input = this.enqueueInput(queue, payload, options, this.now());
    const id = await this.store.enqueue(input);
    if (id !== null && input.runAt <= input.now && this.queues.has(queue)) this.nudge();
    return id;
  }

  async enqueueMany(
    queue: string,
    jobs: readonly { readonly payload: unknown; readonly options?: EnqueueOptions }[],
  ): Promise<number> {
    if (jobs.length === 0) return 0;
    const now = this.now();
    const inputs = jobs.map((job) => this.enqueueInput(queue, job.payload, job.options ?? {}, now));
    const added = await this.store.enqueueMany(inputs);
    if (added > 0 && this.queues.has(queue) && inputs.some((i) => i.runAt <= now)) this.nudge();
    return added;
  }

  /** The row `enqueue` inserts: run now unless `runAt`, the queue's attempts unless `maxAttempts`. */
  private enqueueInput(queue: string, payload: unknown, options: EnqueueOptions, now: number): EnqueueInput {
    const runAt = options.runAt?.getTime() ?? now;
    if (!Number.isFinite(runAt)) throw new RangeError('runAt is not a valid date');
    const maxAttempts = options.maxAttempts ?? this.queues.get(queue)?.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    return {
      queue,
      payload,
      dedupeKey: options.dedupeKey,
      runAt,
      maxAttempts: positive('maxAttempts', maxAttempts),
      now,
    };
  }

  /** Redrives a dead or cancelled job (see `JobStore.retry`); null when it does not exist. */
  async retry(id: number): Promise<JobTransition | null> {
    const result = await this.store.retry(id, this.now());
    if (result?.changed === true && this.queues.has(result.job.queue)) this.nudge();
    return result;
  }

  /** Cancels a queued, running or dead job (see `JobStore.cancel`); null when it does not exist. */
  async cancel(id: number): Promise<JobTransition | null> {
    return this.store.cancel(id, this.now());
  }

  /** One job, or null. */
  get(id: number): Promise<JobRecord | null> {
    return this.store.get(id);
  }

  /** Jobs, newest first (see `JobStore.list`). */
  list(query: JobListQuery): Promise<Page<JobRecord>> {
    return this.store.list(query);
  }

  /** The number of jobs per queue and state (see `JobStore.counts`). */
  counts(): Promise<JobCount[]> {
    return this.store.counts();
  }

  /** Starts polling (idempotent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.nudge();
  }

  /**
   * Stops claiming, waits up to `stopTimeoutMs` for running handlers, then aborts the signals of those still
   * running and gives their jobs back (`release`, only while they are still this runner's). A handler that ignores
   * its signal is left behind: its lease is no longer renewed, so another runner recovers the job once it expires.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearTimeout(this.soon);
    this.soon = undefined;
    await this.polling;
    const settled = async (ms: number): Promise<void> => {
      const all = Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((resolve) => (timeout = setTimeout(resolve, ms)))]);
      clearTimeout(timeout);
    };
    await settled(this.stopTimeoutMs);
    for (const job of this.inFlight.values()) {
      job.controller.abort(new JobAbort('stopping', 'the job runner is stopping'));
    }
    await settled(Math.min(this.stopTimeoutMs, 1_000));
    for (const job of this.inFlight.values()) clearInterval(job.renewal);
  }

  /**
   * Polls in a moment: jobs that finish together (a backlog of short deliveries) are replaced by one claim of
   * several, not one claim (transaction) each.
   */
  private nudgeSoon(): void {
    if (this.soon !== undefined || !this.running) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.nudge();
    }, NUDGE_DELAY_MS);
    this.soon.unref();
  }

  /** Polls soon: now, or right after the poll in progress. */
  private nudge(): void {
    if (!this.running) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.polling = this.pollLoop().finally(() => {
      this.polling = undefined;
      if (this.running) {
        this.timer = setTimeout(() => this.nudge(), this.pollIntervalMs);
        this.timer.unref();
      }
    });
  }

  private async pollLoop(): Promise<void> {
    do {
      this.again = false;
      await this.fireSchedules();
      await this.cleanup();
      await this.claimAndRun();
    } while (this.again && this.running);
  }

  private async fireSchedules(): Promise<void> {
    for (const [name, schedule] of this.schedules) {
      if (!this.running) return;
      const slot = schedule.clock.latestSlot(this.now());
      if (slot === null || slot === schedule.lastSlot) continue;
      try {
        const id = await this.enqueue(schedule.queue, schedule.payload, {
          dedupeKey: slotKey(name, slot),
          ...(schedule.maxAttempts === undefined ? {} : { maxAttempts: schedule.maxAttempts }),
        });
        schedule.lastSlot = slot;
        if (id !== null) this.log.debug({ schedule: name, slot, job: id }, 'scheduled job enqueued');
      } catch (err) {
        this.log.warn({ err, schedule: name }, 'cannot enqueue a scheduled job');
      }
    }
  }

  private async cleanup(): Promise<void> {
    const now = this.now();
    if (now - this.lastCleanup < this.cleanupIntervalMs) return;
    this.lastCleanup = now;
    try {
      // The current slots' jobs stay whatever the retention: deleting one would let its slot fire again.
      const keep: string[] = [];
      for (const [name, schedule] of this.schedules) {
        const slot = schedule.clock.latestSlot(now);
        if (slot !== null) keep.push(slotKey(name, slot));
      }
      const deleted = await this.store.deleteFinished(now - this.retentionMs, keep);
      if (deleted > 0) this.log.debug({ deleted }, 'deleted finished jobs');
    } catch (err) {
      this.log.warn({ err }, 'cannot delete finished jobs');
    }
  }

  /** Claims as many jobs as there are free slots, and starts them; polls again when it filled every slot. */
  private async claimAndRun(): Promise<void> {
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0 || !this.running || this.deferral.defer()) return;
    // Queues with their own limit are claimed one by one up to it; the others together.
    const open: string[] = [];
    const limited: [string, number][] = [];
    for (const [queue, r] of this.queues) {
      if (r.concurrency === undefined) open.push(queue);
      else if (r.concurrency > r.running) limited.push([queue, r.concurrency - r.running]);
    }
    let left = free;
    const claimGroup = async (queues: string[], limit: number): Promise<void> => {
      if (queues.length === 0 || limit <= 0 || !this.running) return;
      let jobs: JobRecord[];
      try {
        jobs = await this.store.claim({
          queues,
          owner: this.instanceId,
          now: this.now(),
          leaseMs: this.leaseMs,
          limit,
        });
      } catch (err) {
        this.log.warn({ err }, 'cannot claim jobs');
        return;
      }
      for (const job of jobs) this.run(job);
      left -= jobs.length;
      if (jobs.length === limit) this.again = true;
    };
    for (const [queue, limit] of limited) await claimGroup([queue], Math.min(limit, left));
    await claimGroup(open, left);
  }

  private run(job: JobRecord): void {
    const registration = this.queues.get(job.queue);
    if (registration === undefined) return; // not claimable: claims name registered queues only
    // Our own job, reclaimed after its renewals failed to reach the database in time: the claim renewed our
    // lease, and the handler already running goes on (a second one would run the job twice here).
    if (this.inFlight.has(job.id)) return;
    registration.running++;
    const controller = new AbortController();
    let renewing = false;
    const renewal = setInterval(
      () => {
        if (renewing) return;
        renewing = true;
        this.store
          .renew(job.id, this.instanceId, this.now(), this.leaseMs)
          .then((ours) => {
            if (!ours && !controller.signal.aborted) {
              controller.abort(new JobAbort('lost', `job ${job.id} is no longer held by this runner`));
            }
          })
          // A database hiccup: keep running; if the lease does expire, the owner checks settle it.
          .catch((err: unknown) => this.log.warn({ err, job: job.id }, 'cannot renew a job lease'))
          .finally(() => (renewing = false));
      },
      Math.max(1, Math.floor(this.leaseMs / 3)),
    );
    renewal.unref();
    const done = this.execute(job, registration.handler, controller.signal).finally(() => {
      clearInterval(renewal);
      registration.running--;
      this.inFlight.delete(job.id);
      this.nudgeSoon();
    });
    this.inFlight.set(job.id, { controller, renewal, done });
  }

  /** Runs one attempt of `job` and records its outcome (never rejects). */
  private async execute(job: JobRecord, handler: JobHandler, signal: AbortSignal): Promise<void> {
    const context: JobContext = {
      id: job.id,
      queue: job.queue,
      attempt: job.attempts,
      maxAttempts: job.maxAttempts,
      signal,
    };
    const fields = { job: job.id, queue: job.queue, attempt: job.attempts };
    const reason = (): JobAbort | undefined =>
      signal.aborted && signal.reason instanceof JobAbort ? signal.reason : undefined;
    try {
      try {
        await handler(job.payload, context);
      } catch (err) {
        const abort = reason();
        if (abort?.why === 'lost') {
          this.log.info(fields, 'job aborted: no longer held by this runner');
        } else if (abort?.why === 'stopping') {
          await this.store.release(job.id, this.instanceId, this.now());
          this.log.info(fields, 'job given back: the runner is stopping');
        } else {
          await this.recordFailure(job, err);
        }
        return;
      }
      if (reason()?.why === 'lost') {
        this.log.info(fields, 'job finished after it was lost: its outcome is dropped');
        return;
      }
      if (!(await this.store.complete(job.id, this.instanceId, this.now()))) {
        this.log.info(fields, 'job finished after it was lost: its outcome is dropped');
      }
    } catch (err) {
      this.log.warn({ ...fields, err }, 'cannot record the outcome of a job');
    }
  }

  private async recordFailure(job: JobRecord, err: unknown): Promise<void> {
    const now = this.now();
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    let retryAt: number | null;
    if (err instanceof PermanentJobError || job.attempts >= job.maxAttempts) {
      retryAt = null;
    } else if (err instanceof RetryLaterError) {
      const at = err.retryAt.getTime();
      retryAt = Number.isFinite(at)
        ? Math.max(at, now)
        : now + backoffDelay(job.attempts, this.options.backoff);
    } else {
      retryAt = now + backoffDelay(job.attempts, this.options.backoff);
    }
    const fields = { job: job.id, queue: job.queue, attempt: job.attempts, err };
    if (!(await this.store.fail(job.id, this.instanceId, message, retryAt, now))) {
      this.log.info(fields, 'job failed after it was lost: its outcome is dropped');
    } else if (retryAt === null) {
      this.log.warn(fields, 'job dead');
    } else {
      this.log.info({ ...fields, retryAt: new Date(retryAt).toISOString() }, 'job failed: retrying later');
    }
  }
}

function positive(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new RangeError(`${what} must be a positive whole number, got ${n}`);
  return n;
}
