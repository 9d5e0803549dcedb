/**
 * The job runner's contract with the code that enqueues jobs and the handlers that run them (see `runner.ts`).
 *
 * Delivery is at least once: a handler may run again for a job it already finished when its instance died
 * before recording the outcome, so handlers are idempotent.
 */

/** What a handler is given. */
export interface JobContext {
  readonly id: number;
  readonly queue: string;
  /** 1 on the first attempt. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Aborted when the runner stops or loses the job's lease: stop work and throw. */
  readonly signal: AbortSignal;
}

/** Runs one job; resolves on success, throws to fail the attempt (see `RetryLaterError`, `PermanentJobError`). */
export type JobHandler<P = unknown> = (payload: P, context: JobContext) => Promise<void>;

/** Thrown by a handler to fail the attempt and retry no earlier than `retryAt` (e.g. from a `Retry-After`). */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly retryAt: Date,
  ) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/** Thrown by a handler when retrying cannot help: the job goes to `dead` at once. */
export class PermanentJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentJobError';
  }
}

export interface EnqueueOptions {
  /** Enqueueing a key that a job of the queue already has is a no-op (returns null). */
  readonly dedupeKey?: string;
  /** Not before this time (default: now). */
  readonly runAt?: Date;
  /** Default: the queue's registered `maxAttempts`. */
  readonly maxAttempts?: number;
}

/** Enqueues jobs; what producers (the event relay, the admin API, schedules) depend on. */
export interface JobQueue {
  /** Adds a job to `queue`; resolves to its id, or null when `dedupeKey` already exists in the queue. */
  enqueue(queue: string, payload: unknown, options?: EnqueueOptions): Promise<number | null>;

  /**
   * Adds several jobs to `queue` at once (one statement): as `enqueue` for each, atomically. Resolves to how many
   * were added (those whose dedupe key the queue already had are not).
   */
  enqueueMany(
    queue: string,
    jobs: readonly { readonly payload: unknown; readonly options?: EnqueueOptions }[],
  ): Promise<number>;
}
