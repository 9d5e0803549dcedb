/**
 * Replication as the registry runs it: executions of policies on the job runner (queue `replication`), triggered
 * by hand (API, CLI), by a policy's schedule, or by push and delete events.
 *
 * Why an execution never runs twice at once, and survives a crash:
 * - One job per execution (dedupe key `execution:<id>[:<retry>]`), and only the handler holding that job's lease
 *   processes the execution's tasks. The runner renews the lease while the handler runs; a lease lost (the
 *   instance stalled longer than the lease, or was cancelled) aborts the handler's signal, which stops every copy.
 * - Tasks are recorded (`replication_tasks`) before any is run, and each is marked succeeded only after its copy
 *   finished. When the process dies, the job's lease expires and another run of the job (here or on another
 *   instance) continues with the tasks not yet succeeded; copying is idempotent (what the destination has is
 *   skipped), so redoing a half-done task is harmless.
 * - A cancelled execution is seen by its handler between tasks; a retried one gets a new job.
 */
import type { NewDomainEvent, DomainEvent } from '../events/event.ts';
import type { EventSubscriber } from '../events/relay.ts';
import { PermanentJobError } from '../jobs/job.ts';
import type { JobContext } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';
import { slotClock } from '../jobs/schedule.ts';
import { silentLogger, type Logger } from '../logger.ts';
import type {
  ExecutionRecord,
  NewTask,
  RemoteRegistryRecord,
  ReplicationPolicyRecord,
  ReplicationStore,
  TaskRecord,
} from '../metadata/replication-store.ts';
import type { Digest } from '../oci/digest.ts';
import { isValidTag } from '../oci/reference.ts';
import type { Registry } from '../registry/registry.ts';
import type { RegistryClient, RemoteEndpoint } from '../remote/registry-client.ts';
import { RemoteError } from '../remote/registry-client.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import { Copier, SourceMissingError } from './copier.ts';
import { isReferrerTag, repositoryMatches, rewriteName, tagMatches } from './filters.ts';
import { LocalRegistryClient, REPLICATION_CONTEXT } from './local-client.ts';
import { KeyedLimiter, TokenBucket } from './throttle.ts';

/** The job queue of executions. */
export const REPLICATION_QUEUE = 'replication';
/** The queue (and schedule) that checks the policies' schedules. */
export const REPLICATION_SCHEDULE_QUEUE = 'replication-schedule';

/** Attempts of an execution's job: each run continues where the previous one stopped. */
const JOB_ATTEMPTS = 10;
/** Tries of one task within a run, for transient remote errors. */
const TASK_TRIES = 3;
/** How often a running task stores its byte count. */
const PROGRESS_INTERVAL_MS = 1_000;

interface ExecutionPayload {
  readonly executionId: number;
}

/** Builds a client of a remote registry (`remote/http-registry-client.ts` in production). */
export type ClientFactory = (endpoint: RemoteEndpoint) => RegistryClient;

export interface ReplicationServiceOptions {
  readonly store: ReplicationStore;
  readonly registry: Registry;
  readonly secrets: SecretBox;
  readonly jobs: JobRunner;
  readonly clientFactory: ClientFactory;
  readonly logger?: Logger;
  /** How often the schedules of policies are checked (ms). Default 1 min. */
  readonly scheduleCheckIntervalMs?: number;
}

export interface RunRequest {
  readonly trigger: string;
  readonly requestedBy: string | null;
}

export class ReplicationService {
  readonly store: ReplicationStore;
  private readonly local: LocalRegistryClient;
  private readonly log: Logger;
  private readonly limiter = new KeyedLimiter();

  constructor(private readonly options: ReplicationServiceOptions) {
    this.store = options.store;
    this.local = new LocalRegistryClient(options.registry);
    this.log = options.logger ?? silentLogger;
  }

  /** Seals and opens stored credentials of remote registries. */
  get secrets(): SecretBox {
    return this.options.secrets;
  }

  /** The event subscriber creating executions of `event`-triggered push policies (for the relay). */
  get subscriber(): EventSubscriber {
    return { name: 'replication', handle: (events) => this.handleEvents(events) };
  }

  /** Registers the queues on the job runner (before it starts) and the schedule check. */
  register(): void {
    const { jobs } = this.options;
    this.registerExecutions();
    jobs.register(REPLICATION_SCHEDULE_QUEUE, () => this.checkSchedules(Date.now()), { maxAttempts: 1 });
    jobs.schedule(
      REPLICATION_SCHEDULE_QUEUE,
      { everyMs: this.options.scheduleCheckIntervalMs ?? 60_000 },
      REPLICATION_SCHEDULE_QUEUE,
    );
  }

  /** Registers the executions' queue only (what `berth replicate run --wait` runs in its own process). */
  registerExecutions(): void {
    this.options.jobs.register<ExecutionPayload>(
      REPLICATION_QUEUE,
      (payload, context) => this.runExecution(payload.executionId, context),
      { maxAttempts: JOB_ATTEMPTS },
    );
  }

  /** Queues an execution of `policy` (its tasks are listed when it starts); returns it. */
  async run(
    policy: ReplicationPolicyRecord,
    request: RunRequest,
    dedupeKey?: string,
  ): Promise<number | null> {
    const id = await this.store.createExecution({
      policy,
      trigger: request.trigger,
      requestedBy: request.requestedBy,
      planned: false,
      tasks: [],
      ...(dedupeKey !== undefined ? { dedupeKey } : {}),
    });
    if (id !== null) await this.enqueue(id, `execution:${id}`);
    return id;
  }

  /** Queues a failed or canceled execution again, its failed tasks only; false when it is not retryable. */
  async retry(id: number): Promise<boolean> {
    if (!(await this.store.retryExecution(id))) return false;
    await this.enqueue(id, `execution:${id}:retry:${Date.now()}`);
    return true;
  }

  /**
   * Cancels a queued execution, or has a running one stop between tasks (`canceling`, then `canceled`). An
   * execution whose job is no longer queued or running (it died on its last attempt) has no handler left to stop:
   * it is canceled at once.
   */
  async cancel(id: number): Promise<boolean> {
    if (!(await this.store.cancelExecution(id, Date.now()))) return false;
    if ((await this.store.getExecution(id))?.state === 'canceling' && !(await this.hasLiveJob(id))) {
      await this.store.stopExecution(id, Date.now());
    }
    return true;
  }

  /** Whether a job of execution `id` is queued or running. */
  private async hasLiveJob(id: number): Promise<boolean> {
    for (const state of ['running', 'queued'] as const) {
      let after: number | undefined;
      for (;;) {
        const page = await this.options.jobs.list({ queue: REPLICATION_QUEUE, state, limit: 500, after });
        if (page.items.some((j) => (j.payload as ExecutionPayload | null)?.executionId === id)) return true;
        const last = page.items[page.items.length - 1];
        if (!page.hasMore || last === undefined) break;
        after = last.id;
      }
    }
    return false;
  }

  private async enqueue(id: number, dedupeKey: string): Promise<void> {
    await this.options.jobs.enqueue(REPLICATION_QUEUE, { executionId: id } satisfies ExecutionPayload, {
      dedupeKey,
    });
  }

  private async clientFor(registry: RemoteRegistryRecord): Promise<RegistryClient> {
    const password =
      registry.sealedPassword === null ? null : await this.options.secrets.open(registry.sealedPassword);
    return this.options.clientFactory({
      urls: [registry.url],
      credentials:
        registry.username !== null && password !== null ? { username: registry.username, password } : null,
      caBundle: registry.caBundle,
      insecure: registry.insecure,
    });
  }

  // --- the job ------------------------------------------------------------------------------------------

  /** Runs (or continues) execution `id` under its job's lease. */
  async runExecution(id: number, context: JobContext): Promise<void> {
    const execution = await this.store.getExecution(id);
    if (execution === null || !['queued', 'running'].includes(execution.state)) return;
    const policy = execution.policyId === null ? null : await this.store.getPolicy(execution.policyId);
    const registry = policy === null ? null : await this.store.getRegistry(policy.registryId);
    if (!(await this.store.startExecution(id, Date.now()))) return;
    if (policy === null || registry === null) {
      await this.finish(execution, 'failed', 'the policy was deleted');
      return;
    }
    try {
      const remote = await this.clientFor(registry);
      const [source, destination] = policy.direction === 'push' ? [this.local, remote] : [remote, this.local];
      if (!execution.planned) {
        await this.store.planExecution(id, await this.plan(policy, source, context.signal));
      }
      const copier = new Copier({
        source,
        destination,
        bucket: policy.bandwidthLimit === null ? null : new TokenBucket(policy.bandwidthLimit),
        signal: context.signal,
      });
      const tasks = await this.store.unfinishedTasks(id);
      let canceled = false;
      const queue = [...tasks];
      const worker = async (): Promise<void> => {
        for (let task = queue.shift(); task !== undefined; task = queue.shift()) {
          context.signal.throwIfAborted();
          if ((await this.store.getExecution(id))?.state !== 'running') {
            canceled = true;
            return;
          }
          await this.limiter.run(String(registry.id), registry.concurrency, () =>
            this.runTask(task, policy, copier, source, context.signal),
          );
        }
      };
      await Promise.all(
        Array.from({ length: Math.max(1, Math.min(registry.concurrency, tasks.length)) }, worker),
      );
      if (canceled) {
        // Only this handler (the job's lease holder) works on the execution: now that it stopped, a retry may go.
        await this.store.stopExecution(id, Date.now());
        return;
      }
      const done = await this.store.getExecution(id);
      if (done === null) return;
      const failed = done.progress.failed;
      await this.finish(
        done,
        failed > 0 ? 'failed' : 'succeeded',
        failed > 0 ? `${failed} of ${done.progress.total} task(s) failed` : null,
      );
    } catch (e) {
      // Lost lease or stopping: the next run of the job continues (the tasks say where).
      if (context.signal.aborted) throw e;
      const message = e instanceof Error ? e.message : String(e);
      if (context.attempt < context.maxAttempts && !(e instanceof PermanentJobError)) {
        this.log.warn({ execution: id, err: e }, 'replication execution failed; the job will try again');
        throw e;
      }
      const current = await this.store.getExecution(id);
      if (current !== null) await this.finish(current, 'failed', message);
    }
  }

  /** The tasks of a manual or scheduled execution: every matching tag of every matching repository. */
  private async plan(
    policy: ReplicationPolicyRecord,
    source: RegistryClient,
    signal: AbortSignal,
  ): Promise<NewTask[]> {
    const repositories: string[] = [];
    // Literal names need no catalog (some registries do not serve one).
    const literal = policy.repositories.length > 0 && policy.repositories.every((g) => !/[*?]/.test(g));
    if (literal) {
      for (const name of policy.repositories) if (repositoryMatches(policy, name)) repositories.push(name);
    } else {
      for await (const name of source.catalog({ signal })) {
        if (repositoryMatches(policy, name)) repositories.push(name);
      }
    }
    const tasks: NewTask[] = [];
    for (const repository of repositories) {
      const destinationRepository = rewriteName(policy.rewrite, repository);
      for await (const tag of source.listTags(repository, { signal })) {
        if (!tagMatches(policy, tag)) continue;
        tasks.push({
          kind: 'copy',
          sourceRepository: repository,
          sourceReference: tag,
          destinationRepository,
        });
      }
    }
    return tasks;
  }

  private async runTask(
    task: TaskRecord,
    policy: ReplicationPolicyRecord,
    copier: Copier,
    source: RegistryClient,
    signal: AbortSignal,
  ): Promise<void> {
    await this.store.startTask(task.id, Date.now());
    let bytes = 0;
    let saved = Date.now();
    const onBytes = (n: number): void => {
      bytes += n;
      const now = Date.now();
      if (now - saved < PROGRESS_INTERVAL_MS) return;
      saved = now;
      void this.store.updateTaskBytes(task.id, bytes).catch(() => undefined);
    };
    let error: unknown = null;
    for (let attempt = 1; attempt <= TASK_TRIES; attempt++) {
      signal.throwIfAborted();
      try {
        if (task.kind === 'copy') {
          await copier.copy(task.sourceRepository, task.sourceReference, task.destinationRepository, onBytes);
        } else if (
          (await source.headManifest(task.sourceRepository, task.sourceReference, undefined, { signal })) ===
          null
        ) {
          // Deleted only while still gone at the source: a tag pushed again since must not be deleted late.
          await copier.delete(task.destinationRepository, task.sourceReference, (digest) =>
            this.stillTagged(source, task.sourceRepository, digest, signal),
          );
        }
        error = null;
        break;
      } catch (e) {
        if (signal.aborted) throw e;
        error = e;
        const transient = e instanceof RemoteError ? e.transient : !(e instanceof SourceMissingError);
        if (!transient || attempt === TASK_TRIES) break;
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
    const message = error === null ? null : error instanceof Error ? error.message : String(error);
    if (message !== null) {
      this.log.warn(
        { policy: policy.name, task: task.id, repository: task.sourceRepository, err: error },
        'replication task failed',
      );
    }
    await this.store.finishTask(
      task.id,
      message === null ? 'succeeded' : 'failed',
      bytes,
      message,
      Date.now(),
    );
  }

  /** Whether a tag of `repository` at the source still points at `digest`. */
  private async stillTagged(
    source: RegistryClient,
    repository: string,
    digest: Digest,
    signal: AbortSignal,
  ): Promise<boolean> {
    for await (const tag of source.listTags(repository, { signal })) {
      if (isReferrerTag(tag)) continue;
      const head = await source.headManifest(repository, tag, undefined, { signal });
      if (head?.digest === digest) return true;
    }
    return false;
  }

  private async finish(
    execution: ExecutionRecord,
    state: 'succeeded' | 'failed',
    error: string | null,
  ): Promise<void> {
    const latest = (await this.store.getExecution(execution.id)) ?? execution;
    const event: NewDomainEvent = {
      type: state === 'succeeded' ? 'replication.completed' : 'replication.failed',
      target: { repository: '' },
      actor: REPLICATION_CONTEXT.actor,
      request: null,
      detail: {
        execution: execution.id,
        policy: execution.policyName,
        trigger: execution.trigger,
        tasks: latest.progress.total,
        succeeded: latest.progress.succeeded,
        failed: latest.progress.failed,
        bytes: latest.progress.bytes,
        ...(error !== null ? { error } : {}),
      },
    };
    if (await this.store.finishExecution(execution.id, state, error, Date.now(), [event])) {
      this.log.info(
        { execution: execution.id, policy: execution.policyName, state, ...latest.progress },
        'replication execution finished',
      );
    } else {
      // Canceled after its last task: it has stopped all the same.
      await this.store.stopExecution(execution.id, Date.now());
    }
  }

  // --- schedules ------------------------------------------------------------------------------------------

  /** Creates the executions of scheduled policies whose latest slot has not had one yet. */
  async checkSchedules(now: number): Promise<void> {
    for (const policy of await this.store.listPolicies()) {
      if (!policy.enabled || policy.trigger !== 'schedule' || policy.schedule === null) continue;
      let slot: number | null;
      try {
        slot = slotClock(policy.schedule).latestSlot(now);
      } catch {
        continue;
      }
      if (slot === null || (policy.lastScheduledSlot !== null && slot <= policy.lastScheduledSlot)) continue;
      if (!(await this.store.claimScheduleSlot(policy.id, slot))) continue;
      // A slot from before the policy existed (or was last changed) only sets where the schedule starts.
      if (slot < policy.updatedAt.getTime()) continue;
      await this.run(policy, { trigger: 'schedule', requestedBy: null }, `schedule:${policy.id}:${slot}`);
    }
  }

  // --- events ---------------------------------------------------------------------------------------------

  /**
   * Creates one execution per event-triggered push policy with the tasks `events` call for. The dedupe key (the
   * policy and the batch's first and last event) makes a batch handed over twice create its executions once.
   */
  async handleEvents(events: readonly DomainEvent[]): Promise<void> {
    const relevant = events.filter(
      (e) =>
        !(e.actor?.kind === 'system' && e.actor.name === REPLICATION_CONTEXT.actor?.name) &&
        (e.type === 'manifest.pushed' || e.type === 'tag.deleted' || e.type === 'manifest.deleted'),
    );
    if (relevant.length === 0) return;
    const policies = (await this.store.listPolicies()).filter(
      (p) => p.enabled && p.trigger === 'event' && p.direction === 'push',
    );
    if (policies.length === 0) return;
    const first = relevant[0] as DomainEvent;
    const last = relevant[relevant.length - 1] as DomainEvent;
    for (const policy of policies) {
      const tasks: NewTask[] = [];
      const seen = new Set<string>();
      const add = (t: NewTask): void => {
        const key = `${t.kind} ${t.sourceRepository} ${t.sourceReference}`;
        if (seen.has(key)) return;
        seen.add(key);
        tasks.push(t);
      };
      for (const event of relevant) {
        const repository = event.target.repository;
        if (!repositoryMatches(policy, repository)) continue;
        const destinationRepository = rewriteName(policy.rewrite, repository);
        const base = { sourceRepository: repository, destinationRepository };
        if (event.type === 'manifest.pushed') {
          const tags = event.target.tags ?? (event.target.tag !== undefined ? [event.target.tag] : []);
          for (const tag of tags)
            if (tagMatches(policy, tag)) add({ kind: 'copy', sourceReference: tag, ...base });
          if (tags.length === 0 && event.target.digest !== undefined) {
            // A referrer pushed by digest: copy its subject's referrers (the subject itself is skipped when there).
            const subject = await this.subjectOf(repository, event.target.digest);
            if (subject !== null) add({ kind: 'copy', sourceReference: subject, ...base });
          }
        } else if (policy.replicateDeletions) {
          if (
            event.type === 'tag.deleted' &&
            event.target.tag !== undefined &&
            isValidTag(event.target.tag)
          ) {
            if (tagMatches(policy, event.target.tag))
              add({ kind: 'delete', sourceReference: event.target.tag, ...base });
          } else if (event.type === 'manifest.deleted' && event.target.digest !== undefined) {
            add({ kind: 'delete', sourceReference: event.target.digest, ...base });
          }
        }
      }
      if (tasks.length === 0) continue;
      const id = await this.store.createExecution({
        policy,
        trigger: 'event',
        requestedBy: null,
        planned: true,
        tasks,
        dedupeKey: `events:${policy.id}:${first.id}:${last.id}`,
      });
      if (id !== null) await this.enqueue(id, `execution:${id}`);
    }
  }

  private async subjectOf(repository: string, digest: Digest): Promise<Digest | null> {
    try {
      return (await this.options.registry.manifests.get(repository, { kind: 'digest', digest })).subject;
    } catch {
      return null;
    }
  }
}
