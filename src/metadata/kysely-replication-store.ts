/**
 * The ReplicationStore on top of Kysely, for SQLite and PostgreSQL (tables of migration 0013; get one with
 * `KyselyMetadataStore.replicationStore()`).
 *
 * Taken names are found with `INSERT ... ON CONFLICT DO NOTHING RETURNING` (no row: `ConflictError`), never by a
 * unique violation, which would abort a PostgreSQL transaction. State changes are conditional updates (`where
 * state in (...)`), so a cancel racing the job that finishes the execution has exactly one winner.
 */
import { sql } from 'kysely';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { NewDomainEvent } from '../events/event.ts';
import { ConflictError } from './auth-store.ts';
import type {
  ExecutionProgress,
  ExecutionRecord,
  NewRemoteRegistry,
  NewReplicationPolicy,
  NewTask,
  RemoteRegistryPatch,
  RemoteRegistryRecord,
  ReplicationPolicyPatch,
  ReplicationPolicyRecord,
  ReplicationStore,
  TaskRecord,
} from './replication-store.ts';
import type {
  ReplicationExecutionsTable,
  ReplicationPoliciesTable,
  ReplicationRegistriesTable,
  ReplicationTables,
  ReplicationTasksTable,
} from './replication-tables.ts';
import type { Database, SqlDialect } from './schema.ts';

type Db = Database & ReplicationTables;
type Executor = Kysely<Db> | Transaction<Db>;

/** What the metadata store lends this store: its outbox writer and its commit notification. */
export interface ReplicationStoreHooks {
  storeEvents(trx: Transaction<Database>, events: readonly NewDomainEvent[], now: number): Promise<void>;
  notifyCommitted(): void;
}

/** Tasks inserted per statement (well below SQLite's bound-parameter limit). */
const INSERT_BATCH = 500;

export class KyselyReplicationStore implements ReplicationStore {
  private readonly db: Kysely<Db>;

  constructor(
    db: Kysely<Database>,
    readonly dialect: SqlDialect,
    private readonly hooks: ReplicationStoreHooks,
  ) {
    this.db = db as unknown as Kysely<Db>;
  }

  // --- remote registries ----------------------------------------------------------------------------------

  async createRegistry(input: NewRemoteRegistry): Promise<RemoteRegistryRecord> {
    const now = Date.now();
    const row = await this.db
      .insertInto('replication_registries')
      .values({ ...registryColumns(input), created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`a remote registry named ${input.name} already exists`);
    return registryOf(row);
  }

  async updateRegistry(id: number, patch: RemoteRegistryPatch): Promise<RemoteRegistryRecord | null> {
    const current = await this.getRegistry(id);
    if (current === null) return null;
    if (patch.name !== undefined && patch.name !== current.name) {
      if (await this.getRegistryByName(patch.name))
        throw new ConflictError(`a remote registry named ${patch.name} already exists`);
    }
    const row = await this.db
      .updateTable('replication_registries')
      .set({ ...registryColumns({ ...current, ...patch }), updated_at: Date.now() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : registryOf(row);
  }

  async deleteRegistry(id: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const used = await trx
        .selectFrom('replication_policies')
        .select('name')
        .where('registry_id', '=', id)
        .executeTakeFirst();
      if (used !== undefined)
        throw new ConflictError(
          `the remote registry is used by policy ${used.name}: delete the policy first`,
        );
      const r = await trx.deleteFrom('replication_registries').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  async getRegistry(id: number): Promise<RemoteRegistryRecord | null> {
    const row = await this.db
      .selectFrom('replication_registries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : registryOf(row);
  }

  async getRegistryByName(name: string): Promise<RemoteRegistryRecord | null> {
    const row = await this.db
      .selectFrom('replication_registries')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row === undefined ? null : registryOf(row);
  }

  async listRegistries(): Promise<RemoteRegistryRecord[]> {
    const rows = await this.db.selectFrom('replication_registries').selectAll().orderBy('name').execute();
    return rows.map(registryOf);
  }

  // --- policies ---------------------------------------------------------------------------------------------

  async createPolicy(input: NewReplicationPolicy): Promise<ReplicationPolicyRecord> {
    const now = Date.now();
    const row = await this.db
      .insertInto('replication_policies')
      .values({ ...policyColumns(input), last_slot: null, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`a replication policy named ${input.name} already exists`);
    return policyOf(row);
  }

  async updatePolicy(id: number, patch: ReplicationPolicyPatch): Promise<ReplicationPolicyRecord | null> {
    const current = await this.getPolicy(id);
    if (current === null) return null;
    if (patch.name !== undefined && patch.name !== current.name) {
      if (await this.getPolicyByName(patch.name))
        throw new ConflictError(`a replication policy named ${patch.name} already exists`);
    }
    const row = await this.db
      .updateTable('replication_policies')
      .set({ ...policyColumns({ ...current, ...patch }), updated_at: Date.now() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row === undefined ? null : policyOf(row);
  }

  async deletePolicy(id: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('replication_executions')
        .set({ policy_id: null })
        .where('policy_id', '=', id)
        .execute();
      const r = await trx.deleteFrom('replication_policies').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  async getPolicy(id: number): Promise<ReplicationPolicyRecord | null> {
    const row = await this.db
      .selectFrom('replication_policies')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : policyOf(row);
  }

  async getPolicyByName(name: string): Promise<ReplicationPolicyRecord | null> {
    const row = await this.db
      .selectFrom('replication_policies')
      .selectAll()
      .where('name', '=', name)
      .executeTakeFirst();
    return row === undefined ? null : policyOf(row);
  }

  async listPolicies(registryId?: number): Promise<ReplicationPolicyRecord[]> {
    let q = this.db.selectFrom('replication_policies').selectAll().orderBy('name');
    if (registryId !== undefined) q = q.where('registry_id', '=', registryId);
    return (await q.execute()).map(policyOf);
  }

  async claimScheduleSlot(policyId: number, slot: number): Promise<boolean> {
    const r = await this.db
      .updateTable('replication_policies')
      .set({ last_slot: slot })
      .where('id', '=', policyId)
      .where((eb) => eb.or([eb('last_slot', 'is', null), eb('last_slot', '<', slot)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  // --- executions -------------------------------------------------------------------------------------------

  async createExecution(input: {
    policy: Pick<ReplicationPolicyRecord, 'id' | 'name'>;
    trigger: string;
    requestedBy: string | null;
    planned: boolean;
    tasks: readonly NewTask[];
    dedupeKey?: string;
  }): Promise<number | null> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('replication_executions')
        .values({
          policy_id: input.policy.id,
          policy_name: input.policy.name,
          state: 'queued',
          trigger: input.trigger,
          requested_by: input.requestedBy,
          planned: input.planned ? 1 : 0,
          dedupe_key: input.dedupeKey ?? null,
          error: null,
          created_at: Date.now(),
          started_at: null,
          finished_at: null,
        })
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (row === undefined) return null;
      const id = Number(row.id);
      await insertTasks(trx, id, input.tasks);
      return id;
    });
  }

  async planExecution(id: number, tasks: readonly NewTask[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('replication_executions')
        .set({ planned: 1 })
        .where('id', '=', id)
        .where('planned', '=', 0)
        .executeTakeFirst();
      // Already planned (a run that crashed after planning): the stored list stands.
      if (Number(r.numUpdatedRows) === 0) return;
      await insertTasks(trx, id, tasks);
    });
  }

  async startExecution(id: number, now: number): Promise<boolean> {
    await this.stopExecution(id, now);
    const r = await this.db
      .updateTable('replication_executions')
      .set({ state: 'running', started_at: sql<number>`coalesce(started_at, ${now})` })
      .where('id', '=', id)
      .where('state', 'in', ['queued', 'running'])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async finishExecution(
    id: number,
    state: 'succeeded' | 'failed',
    error: string | null,
    now: number,
    events: readonly NewDomainEvent[],
  ): Promise<boolean> {
    const done = await this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('replication_executions')
        .set({ state, error, finished_at: now })
        .where('id', '=', id)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      if (events.length > 0)
        await this.hooks.storeEvents(trx as unknown as Transaction<Database>, events, now);
      return true;
    });
    if (done && events.length > 0) this.hooks.notifyCommitted();
    return done;
  }

  async cancelExecution(id: number, now: number): Promise<boolean> {
    const queued = await this.db
      .updateTable('replication_executions')
      .set({ state: 'canceled', finished_at: now, error: 'canceled' })
      .where('id', '=', id)
      .where('state', '=', 'queued')
      .executeTakeFirst();
    if (Number(queued.numUpdatedRows) > 0) return true;
    // A running execution has a handler somewhere: it stops between tasks, then marks it canceled.
    const running = await this.db
      .updateTable('replication_executions')
      .set({ state: 'canceling' })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return Number(running.numUpdatedRows) > 0;
  }

  async stopExecution(id: number, now: number): Promise<void> {
    await this.db
      .updateTable('replication_executions')
      .set({ state: 'canceled', finished_at: now, error: 'canceled' })
      .where('id', '=', id)
      .where('state', '=', 'canceling')
      .execute();
  }

  async retryExecution(id: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('replication_executions')
        .set({ state: 'queued', error: null, finished_at: null })
        .where('id', '=', id)
        .where('state', 'in', ['failed', 'canceled'])
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      await trx
        .updateTable('replication_tasks')
        .set({ state: 'pending', error: null })
        .where('execution_id', '=', id)
        .where('state', 'in', ['failed', 'running'])
        .execute();
      return true;
    });
  }

  async getExecution(id: number): Promise<ExecutionRecord | null> {
    const row = await this.db
      .selectFrom('replication_executions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined) return null;
    const progress = await this.progressOf([id]);
    return executionOf(row, progress.get(id));
  }

  async listExecutions(query: {
    limit: number;
    before?: number;
    policyId?: number;
  }): Promise<ExecutionRecord[]> {
    let q = this.db.selectFrom('replication_executions').selectAll().orderBy('id', 'desc').limit(query.limit);
    if (query.before !== undefined) q = q.where('id', '<', query.before);
    if (query.policyId !== undefined) q = q.where('policy_id', '=', query.policyId);
    const rows = await q.execute();
    const progress = await this.progressOf(rows.map((r) => Number(r.id)));
    return rows.map((r) => executionOf(r, progress.get(Number(r.id))));
  }

  private async progressOf(ids: readonly number[]): Promise<Map<number, ExecutionProgress>> {
    const out = new Map<number, ExecutionProgress>();
    if (ids.length === 0) return out;
    const rows = await this.db
      .selectFrom('replication_tasks')
      .select((eb) => [
        'execution_id',
        'state',
        eb.fn.countAll<number>().as('n'),
        eb.fn.sum<number>('bytes').as('bytes'),
      ])
      .where('execution_id', 'in', [...ids])
      .groupBy(['execution_id', 'state'])
      .execute();
    for (const r of rows) {
      const id = Number(r.execution_id);
      const p = out.get(id) ?? { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, bytes: 0 };
      const n = Number(r.n);
      out.set(id, { ...p, total: p.total + n, [r.state]: n, bytes: p.bytes + Number(r.bytes ?? 0) });
    }
    return out;
  }

  // --- tasks ------------------------------------------------------------------------------------------------

  async listTasks(executionId: number, query: { limit: number; after?: number }): Promise<TaskRecord[]> {
    let q = this.db
      .selectFrom('replication_tasks')
      .selectAll()
      .where('execution_id', '=', executionId)
      .orderBy('id')
      .limit(query.limit);
    if (query.after !== undefined) q = q.where('id', '>', query.after);
    return (await q.execute()).map(taskOf);
  }

  async unfinishedTasks(executionId: number): Promise<TaskRecord[]> {
    const rows = await this.db
      .selectFrom('replication_tasks')
      .selectAll()
      .where('execution_id', '=', executionId)
      .where('state', 'in', ['pending', 'running'])
      .orderBy('id')
      .execute();
    return rows.map(taskOf);
  }

  async startTask(id: number, now: number): Promise<void> {
    await this.db
      .updateTable('replication_tasks')
      .set((eb) => ({
        state: 'running',
        attempts: eb('attempts', '+', 1),
        started_at: now,
        error: null,
        bytes: 0,
      }))
      .where('id', '=', id)
      .execute();
  }

  async updateTaskBytes(id: number, bytes: number): Promise<void> {
    await this.db
      .updateTable('replication_tasks')
      .set({ bytes })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .execute();
  }

  async finishTask(
    id: number,
    state: 'succeeded' | 'failed',
    bytes: number,
    error: string | null,
    now: number,
  ): Promise<void> {
    await this.db
      .updateTable('replication_tasks')
      .set({ state, bytes, error, finished_at: now })
      .where('id', '=', id)
      .execute();
  }
}

async function insertTasks(trx: Executor, executionId: number, tasks: readonly NewTask[]): Promise<void> {
  for (let i = 0; i < tasks.length; i += INSERT_BATCH) {
    await trx
      .insertInto('replication_tasks')
      .values(
        tasks.slice(i, i + INSERT_BATCH).map((t) => ({
          execution_id: executionId,
          kind: t.kind,
          source_repository: t.sourceRepository,
          source_reference: t.sourceReference,
          destination_repository: t.destinationRepository,
          state: 'pending' as const,
          attempts: 0,
          bytes: 0,
          error: null,
          started_at: null,
          finished_at: null,
        })),
      )
      .execute();
  }
}

function registryColumns(
  r: NewRemoteRegistry,
): Omit<ReplicationRegistriesTable, 'id' | 'created_at' | 'updated_at'> {
  return {
    name: r.name,
    url: r.url,
    username: r.username,
    sealed_password: r.sealedPassword,
    ca_bundle: r.caBundle,
    insecure: r.insecure ? 1 : 0,
    concurrency: r.concurrency,
  };
}

function registryOf(row: Selectable<ReplicationRegistriesTable>): RemoteRegistryRecord {
  return {
    id: Number(row.id),
    name: row.name,
    url: row.url,
    username: row.username,
    sealedPassword: row.sealed_password,
    caBundle: row.ca_bundle,
    insecure: Number(row.insecure) === 1,
    concurrency: Number(row.concurrency),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function policyColumns(
  p: NewReplicationPolicy,
): Omit<ReplicationPoliciesTable, 'id' | 'created_at' | 'updated_at' | 'last_slot'> {
  return {
    name: p.name,
    registry_id: p.registryId,
    direction: p.direction,
    repositories: JSON.stringify(p.repositories),
    exclude_repositories: JSON.stringify(p.excludeRepositories),
    tags: JSON.stringify(p.tags),
    exclude_tags: JSON.stringify(p.excludeTags),
    rewrite_strip: p.rewrite.stripPrefix,
    rewrite_add: p.rewrite.addPrefix,
    trigger: p.trigger,
    schedule: p.schedule,
    replicate_deletions: p.replicateDeletions ? 1 : 0,
    bandwidth_limit: p.bandwidthLimit,
    enabled: p.enabled ? 1 : 0,
  };
}

function policyOf(row: Selectable<ReplicationPoliciesTable>): ReplicationPolicyRecord {
  return {
    id: Number(row.id),
    name: row.name,
    registryId: Number(row.registry_id),
    direction: row.direction,
    repositories: JSON.parse(row.repositories) as string[],
    excludeRepositories: JSON.parse(row.exclude_repositories) as string[],
    tags: JSON.parse(row.tags) as string[],
    excludeTags: JSON.parse(row.exclude_tags) as string[],
    rewrite: { stripPrefix: row.rewrite_strip, addPrefix: row.rewrite_add },
    trigger: row.trigger,
    schedule: row.schedule,
    replicateDeletions: Number(row.replicate_deletions) === 1,
    bandwidthLimit: row.bandwidth_limit === null ? null : Number(row.bandwidth_limit),
    enabled: Number(row.enabled) === 1,
    lastScheduledSlot: row.last_slot === null ? null : Number(row.last_slot),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function executionOf(
  row: Selectable<ReplicationExecutionsTable>,
  progress: ExecutionProgress | undefined,
): ExecutionRecord {
  return {
    id: Number(row.id),
    policyId: row.policy_id === null ? null : Number(row.policy_id),
    policyName: row.policy_name,
    state: row.state,
    trigger: row.trigger,
    requestedBy: row.requested_by,
    planned: Number(row.planned) === 1,
    progress: progress ?? { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, bytes: 0 },
    error: row.error,
    createdAt: new Date(Number(row.created_at)),
    startedAt: row.started_at === null ? null : new Date(Number(row.started_at)),
    finishedAt: row.finished_at === null ? null : new Date(Number(row.finished_at)),
  };
}

function taskOf(row: Selectable<ReplicationTasksTable>): TaskRecord {
  return {
    id: Number(row.id),
    executionId: Number(row.execution_id),
    kind: row.kind,
    sourceRepository: row.source_repository,
    sourceReference: row.source_reference,
    destinationRepository: row.destination_repository,
    state: row.state,
    attempts: Number(row.attempts),
    bytes: Number(row.bytes),
    error: row.error,
    startedAt: row.started_at === null ? null : new Date(Number(row.started_at)),
    finishedAt: row.finished_at === null ? null : new Date(Number(row.finished_at)),
  };
}
