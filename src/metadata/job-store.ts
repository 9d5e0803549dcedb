/**
 * The port of the durable job queue (`jobs` table, migration 0006): what the job runner (`jobs/runner.ts`), the
 * admin API and the CLI need from the metadata database. `KyselyJobStore` implements it on SQLite and PostgreSQL.
 *
 * Ownership: a running job belongs to the runner named by its `leaseOwner` until `leaseExpiresAt`. Every change a
 * runner makes to a running job (renew, complete, fail, release) names the owner and changes nothing when the job
 * is no longer that owner's (its lease expired and another runner took it over, or an operator cancelled it), so a
 * runner that lost a job can never overwrite the state its new owner or the operator gave it.
 *
 * Times are epoch milliseconds given by the caller (the runner's clock), never read from the database server.
 */
import type { JobState } from './schema.ts';
import type { Page } from './store.ts';

export type { JobState };

/** The job states, in their usual order of life. */
export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'dead', 'cancelled'];

/** A job as stored. */
export interface JobRecord {
  readonly id: number;
  readonly queue: string;
  /** The payload given to `enqueue`, parsed back from its JSON text. */
  readonly payload: unknown;
  readonly state: JobState;
  readonly dedupeKey: string | null;
  /** Attempts started so far (claiming increments it). */
  readonly attempts: number;
  readonly maxAttempts: number;
  /** When a queued job is due. */
  readonly runAt: number;
  /** The runner instance holding a running job (kept after it ends, for the record). */
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: number | null;
  /** The error of the last failed attempt. */
  readonly lastError: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When the job reached `succeeded`, `dead` or `cancelled`. */
  readonly finishedAt: number | null;
}

export interface EnqueueInput {
  readonly queue: string;
  /** Any JSON-serializable value. */
  readonly payload: unknown;
  readonly dedupeKey?: string | undefined;
  readonly runAt: number;
  readonly maxAttempts: number;
  readonly now: number;
}

export interface ClaimInput {
  /** Only jobs of these queues are claimed (the ones the runner has handlers for). */
  readonly queues: readonly string[];
  /** The claiming runner's instance id. */
  readonly owner: string;
  readonly now: number;
  /** The lease runs until `now + leaseMs`. */
  readonly leaseMs: number;
  /** At most this many jobs. */
  readonly limit: number;
}

export interface JobListQuery {
  readonly queue?: string | undefined;
  readonly state?: JobState | undefined;
  /** Maximum number of jobs, >= 0. */
  readonly limit: number;
  /** Jobs with a smaller id than this one (the list goes from the newest job to the oldest). */
  readonly after?: number | undefined;
}

/** How many jobs of a queue are in a state (only non-zero counts are returned). */
export interface JobCount {
  readonly queue: string;
  readonly state: JobState;
  readonly count: number;
}

/**
 * The outcome of an operator's `retry` or `cancel`: the job after the call, and whether the call changed it (false
 * when its state does not allow the transition: the job is returned as it is).
 */
export interface JobTransition {
  readonly job: JobRecord;
  readonly changed: boolean;
}

export interface JobStore {
  /**
   * Inserts a queued job and returns its id. With a `dedupeKey` that a job of the same queue already has (in any
   * state, until that job is deleted), inserts nothing and returns null; racing enqueuers of one key never fail
   * and exactly one of them gets the id.
   */
  enqueue(input: EnqueueInput): Promise<number | null>;

  /** Inserts several jobs in one statement, each as `enqueue` would; returns how many were inserted. */
  enqueueMany(inputs: readonly EnqueueInput[]): Promise<number>;

  /**
   * Claims up to `limit` jobs of `queues`, oldest due first: queued jobs with `runAt <= now`, and running jobs
   * whose lease expired (`leaseExpiresAt < now`: their runner died). Each claimed job becomes `running`, owned by
   * `owner` until `now + leaseMs`, with `attempts` incremented; the jobs are returned as claimed. One job is never
   * claimed by two callers at once (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write lock of an immediate
   * transaction). A recovered job that had already used all its attempts is not returned but marked `dead`.
   */
  claim(input: ClaimInput): Promise<JobRecord[]>;

  /**
   * Extends the lease of a job `owner` is running to `now + leaseMs`. Returns false, changing nothing, when the
   * job is no longer running under `owner` (cancelled, retried, or taken over): the runner must stop the handler.
   */
  renew(id: number, owner: string, now: number, leaseMs: number): Promise<boolean>;

  /** Marks a job `owner` is running as `succeeded`. Returns false, changing nothing, when it is not `owner`'s. */
  complete(id: number, owner: string, now: number): Promise<boolean>;

  /**
   * Records a failed attempt of a job `owner` is running: back to `queued`, due at `retryAt`, or `dead` when
   * `retryAt` is null. Returns false, changing nothing, when the job is not `owner`'s.
   */
  fail(id: number, owner: string, error: string, retryAt: number | null, now: number): Promise<boolean>;

  /**
   * Gives back a job `owner` is running without counting the attempt (the runner is stopping): `queued`, due
   * now, `attempts` decremented. Returns false, changing nothing, when it is not `owner`'s.
   */
  release(id: number, owner: string, now: number): Promise<boolean>;

  /**
   * Redrives a `dead` or `cancelled` job: `queued`, due now, attempts reset to 0, lease cleared. Null when the
   * job does not exist; `changed: false` for a job in another state.
   */
  retry(id: number, now: number): Promise<JobTransition | null>;

  /**
   * Cancels a `queued`, `running` or `dead` job. A running job's handler goes on until its runner next renews the
   * lease (which then fails, aborting the handler) and its outcome is then ignored. Null when the job does not
   * exist; `changed: false` for a job already `succeeded` or `cancelled`.
   */
  cancel(id: number, now: number): Promise<JobTransition | null>;

  /** One job, or null. */
  get(id: number): Promise<JobRecord | null>;

  /** Jobs, newest first, optionally of one queue and/or state. */
  list(query: JobListQuery): Promise<Page<JobRecord>>;

  /** The number of jobs per queue and state (non-zero counts only), e.g. for a queue depth gauge. */
  counts(): Promise<JobCount[]>;

  /**
   * Deletes `succeeded` and `cancelled` jobs that finished before `before`, except those whose dedupe key is one
   * of `keepDedupeKeys`; returns how many.
   */
  deleteFinished(before: number, keepDedupeKeys?: readonly string[]): Promise<number>;
}
