/**
 * The ReplicationStore port: remote registries, replication policies, executions and their per-artifact tasks
 * (tables of migration 0013). Credentials are stored sealed (`remote/secret-box.ts`); this port never sees them
 * in clear.
 *
 * Contract shared by the implementations (checked by test/unit/replication-store.test.ts on every dialect): every
 * method is atomic; names of registries and policies are unique (a taken one is a `ConflictError`).
 */
import type { NewDomainEvent } from '../events/event.ts';

export type ReplicationDirection = 'push' | 'pull';
export type ReplicationTrigger = 'manual' | 'schedule' | 'event';
/** `canceling`: cancel was asked while running; the execution's handler makes it `canceled` once it stopped. */
export type ExecutionState = 'queued' | 'running' | 'canceling' | 'succeeded' | 'failed' | 'canceled';
export type TaskState = 'pending' | 'running' | 'succeeded' | 'failed';
/** `copy`: copy a tag or digest (with its referrers); `delete`: delete a tag (or digest) on the destination. */
export type TaskKind = 'copy' | 'delete';

export interface RemoteRegistryRecord {
  readonly id: number;
  readonly name: string;
  readonly url: string;
  readonly username: string | null;
  /** The sealed password (or token); null: anonymous. */
  readonly sealedPassword: string | null;
  readonly caBundle: string | null;
  readonly insecure: boolean;
  /** At most this many tasks copy to or from this registry at once, per instance. */
  readonly concurrency: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type NewRemoteRegistry = Omit<RemoteRegistryRecord, 'id' | 'createdAt' | 'updatedAt'>;
export type RemoteRegistryPatch = Partial<NewRemoteRegistry>;

/** How destination repository names are made from source ones: strip a leading prefix, then prepend another. */
export interface Rewrite {
  /** Removed from the start of the name when present (`prod` turns `prod/app` into `app`); empty: nothing. */
  readonly stripPrefix: string;
  /** Prepended (with `/`) after stripping (`mirror` turns `prod/app` into `mirror/prod/app`); empty: nothing. */
  readonly addPrefix: string;
}

export interface ReplicationPolicyRecord {
  readonly id: number;
  readonly name: string;
  readonly registryId: number;
  readonly direction: ReplicationDirection;
  /** Repository globs (`auth/glob.ts` syntax) of the source; empty: every repository. */
  readonly repositories: readonly string[];
  readonly excludeRepositories: readonly string[];
  /** Tag globs; empty: every tag. */
  readonly tags: readonly string[];
  readonly excludeTags: readonly string[];
  readonly rewrite: Rewrite;
  readonly trigger: ReplicationTrigger;
  /** The cron expression (UTC) of a `schedule` trigger. */
  readonly schedule: string | null;
  /** With an `event` trigger: tag and manifest deletions are replicated too. */
  readonly replicateDeletions: boolean;
  /** Bytes per second over all the policy's blob streams of one execution; null: unlimited. */
  readonly bandwidthLimit: number | null;
  readonly enabled: boolean;
  /** The latest schedule slot an execution was created for. */
  readonly lastScheduledSlot: number | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type NewReplicationPolicy = Omit<
  ReplicationPolicyRecord,
  'id' | 'createdAt' | 'updatedAt' | 'lastScheduledSlot'
>;
export type ReplicationPolicyPatch = Partial<NewReplicationPolicy>;

/** Counters of an execution's tasks (computed from the tasks). */
export interface ExecutionProgress {
  readonly total: number;
  readonly pending: number;
  readonly running: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Blob bytes copied (tasks finished, and progress of running ones as last stored). */
  readonly bytes: number;
}

export interface ExecutionRecord {
  readonly id: number;
  readonly policyId: number | null;
  readonly policyName: string;
  readonly state: ExecutionState;
  /** `manual`, `schedule`, `event` or `retry`. */
  readonly trigger: string;
  readonly requestedBy: string | null;
  /** Whether the task list is complete (a manual or scheduled execution lists its tasks once it runs). */
  readonly planned: boolean;
  readonly progress: ExecutionProgress;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface TaskRecord {
  readonly id: number;
  readonly executionId: number;
  readonly kind: TaskKind;
  readonly sourceRepository: string;
  /** A tag or a digest. */
  readonly sourceReference: string;
  readonly destinationRepository: string;
  readonly state: TaskState;
  readonly attempts: number;
  readonly bytes: number;
  readonly error: string | null;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface NewTask {
  readonly kind: TaskKind;
  readonly sourceRepository: string;
  readonly sourceReference: string;
  readonly destinationRepository: string;
}

export interface ReplicationStore {
  // --- remote registries ----------------------------------------------------------------------------------

  /** Creates a registry; ConflictError when the name is taken. */
  createRegistry(input: NewRemoteRegistry): Promise<RemoteRegistryRecord>;
  /** Changes the given fields; null when it does not exist; ConflictError when renamed to a taken name. */
  updateRegistry(id: number, patch: RemoteRegistryPatch): Promise<RemoteRegistryRecord | null>;
  /** Deletes a registry; false when absent. Throws ConflictError while policies use it. */
  deleteRegistry(id: number): Promise<boolean>;
  /** The registry, or null. */
  getRegistry(id: number): Promise<RemoteRegistryRecord | null>;
  /** The registry named `name`, or null. */
  getRegistryByName(name: string): Promise<RemoteRegistryRecord | null>;
  /** Every registry, by name. */
  listRegistries(): Promise<RemoteRegistryRecord[]>;

  // --- policies ---------------------------------------------------------------------------------------------

  /** Creates a policy; ConflictError when the name is taken. */
  createPolicy(input: NewReplicationPolicy): Promise<ReplicationPolicyRecord>;
  /** Changes the given fields; null when it does not exist; ConflictError when renamed to a taken name. */
  updatePolicy(id: number, patch: ReplicationPolicyPatch): Promise<ReplicationPolicyRecord | null>;
  /** Deletes a policy (its executions stay, without a policy id); false when absent. */
  deletePolicy(id: number): Promise<boolean>;
  /** The policy, or null. */
  getPolicy(id: number): Promise<ReplicationPolicyRecord | null>;
  /** The policy named `name`, or null. */
  getPolicyByName(name: string): Promise<ReplicationPolicyRecord | null>;
  /** Every policy, by name; with `registryId`, only that registry's. */
  listPolicies(registryId?: number): Promise<ReplicationPolicyRecord[]>;
  /**
   * Advances the policy's `lastScheduledSlot` to `slot` when it is older (or unset); true when this call did, so
   * that among instances checking schedules at once exactly one creates the slot's execution.
   */
  claimScheduleSlot(policyId: number, slot: number): Promise<boolean>;

  // --- executions -------------------------------------------------------------------------------------------

  /**
   * Creates a queued execution of `policy` with `tasks` (planned when `planned`). With `dedupeKey`, an execution
   * with that key already existing makes this a no-op resolving to null (an event handed over twice).
   */
  createExecution(input: {
    policy: Pick<ReplicationPolicyRecord, 'id' | 'name'>;
    trigger: string;
    requestedBy: string | null;
    planned: boolean;
    tasks: readonly NewTask[];
    dedupeKey?: string;
  }): Promise<number | null>;
  /** Adds the planned tasks to an execution not yet planned and marks it planned (both or neither). */
  planExecution(id: number, tasks: readonly NewTask[]): Promise<void>;
  /**
   * Marks a queued (or running, after a crash) execution running; false when it is finished or canceled. A
   * `canceling` one (its previous handler died before stopping) becomes `canceled`, and this returns false.
   */
  startExecution(id: number, now: number): Promise<boolean>;
  /**
   * Finishes a running execution as `state` with `error`, storing `events` in the same transaction; false (and
   * nothing stored) when it was not running (canceled meanwhile).
   */
  finishExecution(
    id: number,
    state: 'succeeded' | 'failed',
    error: string | null,
    now: number,
    events: readonly NewDomainEvent[],
  ): Promise<boolean>;
  /**
   * Cancels a queued execution (`canceled`), or asks a running one to stop (`canceling`: its handler stops
   * between tasks and calls `stopExecution`); false when it is neither.
   */
  cancelExecution(id: number, now: number): Promise<boolean>;
  /** Makes a `canceling` execution `canceled` (its handler has stopped). */
  stopExecution(id: number, now: number): Promise<void>;
  /**
   * Makes a failed (or canceled) execution queued again with its failed (and not yet done) tasks pending; false
   * when it is not failed or canceled.
   */
  retryExecution(id: number): Promise<boolean>;
  /** The execution with its progress (counted from its tasks), or null. */
  getExecution(id: number): Promise<ExecutionRecord | null>;
  /** Executions, newest first, ids below `before` when given, only `policyId`'s when given. */
  listExecutions(query: { limit: number; before?: number; policyId?: number }): Promise<ExecutionRecord[]>;

  // --- tasks ------------------------------------------------------------------------------------------------

  /** Tasks of the execution in id order after `after`, at most `limit`. */
  listTasks(executionId: number, query: { limit: number; after?: number }): Promise<TaskRecord[]>;
  /** The execution's tasks not succeeded or failed (pending, or running when their holder died), in id order. */
  unfinishedTasks(executionId: number): Promise<TaskRecord[]>;
  /** Marks the task running and counts the attempt. */
  startTask(id: number, now: number): Promise<void>;
  /** Stores the bytes copied so far by a running task. */
  updateTaskBytes(id: number, bytes: number): Promise<void>;
  /** Finishes the task with its final byte count and error. */
  finishTask(
    id: number,
    state: 'succeeded' | 'failed',
    bytes: number,
    error: string | null,
    now: number,
  ): Promise<void>;
}
