/**
 * Administration of the job queue (system administrators only): list and show jobs, redrive a dead or cancelled
 * job, cancel one. Used by the admin API (`http/admin/jobs.ts`); the CLI acts as the system through the same
 * class. Redrives and cancellations are audited (`job.retry`, `job.cancel`), as are refused ones.
 */
import type { AuditLog } from '../auth/audit.ts';
import { recordAction } from './audit-action.ts';
import type { JobListQuery, JobRecord, JobState, JobTransition } from '../metadata/job-store.ts';
import { JOB_STATES } from '../metadata/job-store.ts';
import type { Page } from '../metadata/store.ts';
import type { Actor } from './admin-service.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './admin-service.ts';
import { conflict, forbidden, invalid, notFound } from './errors.ts';
import { checkLimit } from './validation.ts';
import type { ListResult } from './views.ts';

/** What job administration needs of the queue (`JobRunner` has it, with its clock). */
export interface JobAdminPort {
  list(query: JobListQuery): Promise<Page<JobRecord>>;
  get(id: number): Promise<JobRecord | null>;
  retry(id: number): Promise<JobTransition | null>;
  cancel(id: number): Promise<JobTransition | null>;
}

/** A job as the API and the CLI show it. */
export interface JobView {
  readonly id: number;
  readonly queue: string;
  readonly state: JobState;
  readonly payload: unknown;
  readonly dedupeKey: string | null;
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly runAt: Date;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly lastError: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

export function jobView(j: JobRecord): JobView {
  const date = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
  return {
    id: j.id,
    queue: j.queue,
    state: j.state,
    payload: j.payload,
    dedupeKey: j.dedupeKey,
    attempts: j.attempts,
    maxAttempts: j.maxAttempts,
    runAt: new Date(j.runAt),
    leaseOwner: j.leaseOwner,
    leaseExpiresAt: date(j.leaseExpiresAt),
    lastError: j.lastError,
    createdAt: new Date(j.createdAt),
    updatedAt: new Date(j.updatedAt),
    finishedAt: date(j.finishedAt),
  };
}

export interface JobListInput {
  readonly queue?: string | undefined;
  readonly state?: string | undefined;
  readonly limit?: number | undefined;
  /** The cursor: `next` of the previous page (a job id). */
  readonly after?: string | undefined;
}

export class JobAdmin {
  constructor(
    private readonly jobs: JobAdminPort,
    private readonly audit: AuditLog | null,
  ) {}

  /** Jobs, newest first, optionally of one queue and state; the cursor is a job id. */
  async list(actor: Actor, input: JobListInput = {}): Promise<ListResult<JobView>> {
    await this.requireSystem(actor, 'listing jobs');
    if (input.state !== undefined && !(JOB_STATES as readonly string[]).includes(input.state))
      throw invalid(`state must be one of ${JOB_STATES.join(', ')}`, 'state');
    const limit = input.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(input.limit, MAX_PAGE_SIZE);
    let after: number | undefined;
    if (input.after !== undefined && input.after !== '') {
      if (!/^[1-9]\d{0,14}$/.test(input.after)) throw invalid('after must be a job id', 'after');
      after = Number(input.after);
    }
    const page = await this.jobs.list({
      queue: input.queue === '' ? undefined : input.queue,
      state: input.state as JobState | undefined,
      limit,
      after,
    });
    const last = page.items[page.items.length - 1];
    return { items: page.items.map(jobView), next: page.hasMore && last ? String(last.id) : null };
  }

  /** One job; not-found when it does not exist. */
  async get(actor: Actor, id: number): Promise<JobView> {
    await this.requireSystem(actor, 'reading jobs');
    const job = await this.jobs.get(checkId(id));
    if (job === null) throw notFound(`job ${id} does not exist`);
    return jobView(job);
  }

  /** Redrives a dead or cancelled job (queued, attempts reset, due now); conflict in any other state. */
  async retry(actor: Actor, id: number): Promise<JobView> {
    await this.requireSystem(actor, 'retrying jobs', 'job.retry', String(id));
    return this.transition(actor, 'job.retry', id, await this.jobs.retry(checkId(id)), 'retry');
  }

  /** Cancels a queued, running or dead job (a running one is aborted at its next lease renewal). */
  async cancel(actor: Actor, id: number): Promise<JobView> {
    await this.requireSystem(actor, 'cancelling jobs', 'job.cancel', String(id));
    return this.transition(actor, 'job.cancel', id, await this.jobs.cancel(checkId(id)), 'cancel');
  }

  private async transition(
    actor: Actor,
    action: string,
    id: number,
    result: JobTransition | null,
    verb: string,
  ): Promise<JobView> {
    if (result === null) throw notFound(`job ${id} does not exist`);
    if (!result.changed) throw conflict(`cannot ${verb} job ${id}: it is ${result.job.state}`);
    await recordAction(this.audit, actor, action, String(id), { queue: result.job.queue }, true);
    return jobView(result.job);
  }

  private async requireSystem(actor: Actor, what: string, action?: string, target?: string): Promise<void> {
    if (actor.principal === null || actor.principal.isAdmin) return;
    const why = `${what} needs a system administrator`;
    if (action !== undefined)
      await recordAction(this.audit, actor, action, target ?? null, { denied: why }, false);
    throw forbidden(`requested access to the resource is denied: ${why}`);
  }
}

function checkId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1) throw invalid('a job id is a positive whole number', 'id');
  return id;
}
