/**
 * The JobStore on top of Kysely, for SQLite and PostgreSQL, over the `jobs` table of migration 0006 (get one with
 * `KyselyMetadataStore.jobStore()`).
 *
 * Claiming: the due rows are selected and marked running in one transaction. On PostgreSQL the select takes
 * `FOR UPDATE SKIP LOCKED`, so concurrent claimers each lock different rows and never wait on (or return) a row
 * another claimer is taking. On SQLite every transaction is `BEGIN IMMEDIATE` (see `dialects.ts`): the whole
 * select-then-update runs under the database's write lock, so claimers are serialized.
 *
 * Ownership: the updates of a running job carry `state = 'running' and lease_owner = owner` in their WHERE clause,
 * so they are atomic compare-and-set operations: a runner that lost its job changes no row.
 *
 * Dedupe: `INSERT ... ON CONFLICT (queue, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING` against the
 * partial unique index `jobs_dedupe_idx` (both databases infer the index from the conflict target and predicate).
 */
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import type {
  ClaimInput,
  EnqueueInput,
  JobCount,
  JobListQuery,
  JobRecord,
  JobStore,
  JobTransition,
} from './job-store.ts';
import { isOneOf } from './list-parameter.ts';
import type { Database, JobsTable, SqlDialect } from './schema.ts';
import type { Page } from './store.ts';

/** Stored error texts are cut to this many characters (a stack or a response body can be long). */
const MAX_ERROR_LENGTH = 4000;

/** A `JobStore` over a Kysely instance on SQLite or PostgreSQL. It does not own the connection. */
export class KyselyJobStore implements JobStore {
  /**
   * @param db the metadata database, migrated (0006 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: SqlDialect,
  ) {}

  async enqueue(input: EnqueueInput): Promise<number | null> {
    const row = await this.db
      .insertInto('jobs')
      .values({
        queue: input.queue,
        payload: JSON.stringify(input.payload ?? null),
        state: 'queued',
        dedupe_key: input.dedupeKey ?? null,
        attempts: 0,
        max_attempts: input.maxAttempts,
        run_at: input.runAt,
        created_at: input.now,
        updated_at: input.now,
      })
      .onConflict((oc) => oc.columns(['queue', 'dedupe_key']).where('dedupe_key', 'is not', null).doNothing())
      .returning('id')
      .executeTakeFirst();
    return row === undefined ? null : Number(row.id);
  }

  async enqueueMany(inputs: readonly EnqueueInput[]): Promise<number> {
    if (inputs.length === 0) return 0;
    const rows = await this.db
      .insertInto('jobs')
      .values(
        inputs.map((input) => ({
          queue: input.queue,
          payload: JSON.stringify(input.payload ?? null),
          state: 'queued' as const,
          dedupe_key: input.dedupeKey ?? null,
          attempts: 0,
          max_attempts: input.maxAttempts,
          run_at: input.runAt,
          created_at: input.now,
          updated_at: input.now,
        })),
      )
      .onConflict((oc) => oc.columns(['queue', 'dedupe_key']).where('dedupe_key', 'is not', null).doNothing())
      .returning('id')
      .execute();
    return rows.length;
  }

  async claim(input: ClaimInput): Promise<JobRecord[]> {
    if (input.queues.length === 0 || input.limit <= 0) return [];
    const { now, owner } = input;
    return this.db.transaction().execute(async (tx) => {
      // One search per queue and state rather than one with an OR over both states and a list of queues: each
      // walks the index (state, queue, run_at) (0007) to just the rows it returns, however long the backlog
      // (the OR made SQLite scan and sort the whole table).
      const candidates = (state: 'queued' | 'running', queue: string) => {
        let q = tx
          .selectFrom('jobs')
          .select(['id', 'state', 'attempts', 'max_attempts', 'run_at'])
          .where('state', '=', state)
          .where('queue', '=', queue);
        q =
          state === 'queued'
            ? q.where('run_at', '<=', now).orderBy('run_at').orderBy('id')
            : q.where('lease_expires_at', '<', now).orderBy('id');
        q = q.limit(input.limit);
        return this.dialect === 'postgres' ? q.forUpdate().skipLocked() : q;
      };
      const found: { id: number; state: string; attempts: number; max_attempts: number; run_at: number }[] =
        [];
      for (const queue of input.queues) {
        found.push(...(await candidates('running', queue).execute()));
        found.push(...(await candidates('queued', queue).execute()));
      }
      const rows = found
        .sort((a, b) => Number(a.run_at) - Number(b.run_at) || Number(a.id) - Number(b.id))
        .slice(0, input.limit);
      if (rows.length === 0) return [];

      // A job recovered from a dead runner after its last attempt has no attempt left: it dies here.
      const exhausted = rows.filter((r) => r.state === 'running' && r.attempts >= r.max_attempts);
      if (exhausted.length > 0) {
        await tx
          .updateTable('jobs')
          .set({
            state: 'dead',
            last_error: 'the lease expired during the last attempt (the runner stopped or died)',
            updated_at: now,
            finished_at: now,
          })
          .where(
            'id',
            'in',
            exhausted.map((r) => r.id),
          )
          .execute();
      }
      const ids = rows.filter((r) => !exhausted.includes(r)).map((r) => r.id);
      if (ids.length === 0) return [];
      const claimed = await tx
        .updateTable('jobs')
        .set((eb) => ({
          state: 'running',
          attempts: eb('attempts', '+', 1),
          lease_owner: owner,
          lease_expires_at: now + input.leaseMs,
          updated_at: now,
        }))
        .where('id', 'in', ids)
        .returningAll()
        .execute();
      return claimed.map(toRecord).sort((a, b) => a.runAt - b.runAt || a.id - b.id);
    });
  }

  async renew(id: number, owner: string, now: number, leaseMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('jobs')
      .set({ lease_expires_at: now + leaseMs, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async complete(id: number, owner: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('jobs')
      .set({ state: 'succeeded', lease_expires_at: null, updated_at: now, finished_at: now })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async fail(
    id: number,
    owner: string,
    error: string,
    retryAt: number | null,
    now: number,
  ): Promise<boolean> {
    const last_error = error.length > MAX_ERROR_LENGTH ? `${error.slice(0, MAX_ERROR_LENGTH)}…` : error;
    const result = await this.db
      .updateTable('jobs')
      .set(
        retryAt === null
          ? { state: 'dead', last_error, lease_expires_at: null, updated_at: now, finished_at: now }
          : { state: 'queued', last_error, run_at: retryAt, lease_expires_at: null, updated_at: now },
      )
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async release(id: number, owner: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('jobs')
      .set((eb) => ({
        state: 'queued',
        attempts: sql<number>`case when ${eb.ref('attempts')} > 0 then ${eb.ref('attempts')} - 1 else 0 end`,
        run_at: now,
        lease_owner: null,
        lease_expires_at: null,
        updated_at: now,
      }))
      .where('id', '=', id)
      .where('state', '=', 'running')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async retry(id: number, now: number): Promise<JobTransition | null> {
    return this.transition(id, ['dead', 'cancelled'], {
      state: 'queued',
      attempts: 0,
      run_at: now,
      lease_owner: null,
      lease_expires_at: null,
      updated_at: now,
      finished_at: null,
    });
  }

  async cancel(id: number, now: number): Promise<JobTransition | null> {
    // The lease owner is kept: the running handler's next renewal finds the job not running and aborts.
    return this.transition(id, ['queued', 'running', 'dead'], {
      state: 'cancelled',
      lease_expires_at: null,
      updated_at: now,
      finished_at: now,
    });
  }

  async get(id: number): Promise<JobRecord | null> {
    const row = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  async list(query: JobListQuery): Promise<Page<JobRecord>> {
    if (!Number.isSafeInteger(query.limit) || query.limit < 0)
      throw new RangeError(`limit must be a non-negative integer, got ${query.limit}`);
    let q = this.db
      .selectFrom('jobs')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(query.limit + 1);
    if (query.queue !== undefined) q = q.where('queue', '=', query.queue);
    if (query.state !== undefined) q = q.where('state', '=', query.state);
    if (query.after !== undefined) q = q.where('id', '<', query.after);
    const rows = await q.execute();
    return { items: rows.slice(0, query.limit).map(toRecord), hasMore: rows.length > query.limit };
  }

  async counts(): Promise<JobCount[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select(['queue', 'state', (eb) => eb.fn.countAll<number | string | bigint>().as('count')])
      .groupBy(['queue', 'state'])
      .orderBy('queue')
      .orderBy('state')
      .execute();
    return rows.map((r) => ({ queue: r.queue, state: r.state, count: Number(r.count) }));
  }

  async deleteFinished(before: number, keepDedupeKeys: readonly string[] = []): Promise<number> {
    let query = this.db
      .deleteFrom('jobs')
      .where('state', 'in', ['succeeded', 'cancelled'])
      .where('finished_at', '<', before);
    if (keepDedupeKeys.length > 0) {
      const keep = isOneOf(this.dialect, 'dedupe_key', keepDedupeKeys);
      query = query.where((eb) => eb.or([eb('dedupe_key', 'is', null), eb.not(keep)]));
    }
    const result = await query.executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Moves job `id` to the values of `set` when its state is one of `from` (a compare-and-set on the state). */
  private async transition(
    id: number,
    from: readonly JobsTable['state'][],
    set: Partial<Omit<Selectable<JobsTable>, 'id'>>,
  ): Promise<JobTransition | null> {
    const updated = await this.db
      .updateTable('jobs')
      .set(set)
      .where('id', '=', id)
      .where('state', 'in', from)
      .returningAll()
      .executeTakeFirst();
    if (updated !== undefined) return { job: toRecord(updated), changed: true };
    const job = await this.get(id);
    return job === null ? null : { job, changed: false };
  }
}

function toRecord(row: Selectable<JobsTable>): JobRecord {
  return {
    id: Number(row.id),
    queue: row.queue,
    payload: JSON.parse(row.payload) as unknown,
    state: row.state,
    dedupeKey: row.dedupe_key,
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    runAt: Number(row.run_at),
    leaseOwner: row.lease_owner,
    leaseExpiresAt: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    lastError: row.last_error,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}
