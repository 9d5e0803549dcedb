/**
 * 0006: the event outbox, the job queue, and webhook subscriptions with their delivery log.
 *
 * - `events`: the transactional outbox. A metadata write inserts its domain events in its own transaction; the
 *   event relay (`events/relay.ts`) later marks each dispatched once it has turned it into work for its
 *   subscribers. `seq` orders events as they committed on one database.
 * - `jobs`: the job queue of `jobs/` (one table for every queue). A unique `(queue, dedupe_key)` makes enqueueing
 *   idempotent, which is also how a scheduled job fires once per slot across instances.
 * - `webhooks` and `webhook_deliveries`: endpoints (global or per namespace) and the last attempts of each.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function eventsAndJobsMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('events')
        .addColumn('seq', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('id', name, (c) => c.notNull().unique())
        .addColumn('type', name, (c) => c.notNull())
        .addColumn('repository', name)
        .addColumn('occurred_at', 'bigint', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('dispatched_at', 'bigint')
        .execute();
      // The relay reads the undispatched events in order; retention prunes dispatched ones by age.
      await db.schema
        .createIndex('events_pending_idx')
        .on('events')
        .column('seq')
        .where(sql.ref('dispatched_at'), 'is', null)
        .execute();
      await db.schema.createIndex('events_dispatched_idx').on('events').column('dispatched_at').execute();

      await db.schema
        .createTable('jobs')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('queue', name, (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('state', name, (c) => c.notNull())
        .addColumn('dedupe_key', name)
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('max_attempts', 'integer', (c) => c.notNull())
        .addColumn('run_at', 'bigint', (c) => c.notNull())
        .addColumn('lease_owner', 'text')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .addCheckConstraint(
          'jobs_state_check',
          sql`state in ('queued', 'running', 'succeeded', 'dead', 'cancelled')`,
        )
        .execute();
      await db.schema
        .createIndex('jobs_dedupe_idx')
        .on('jobs')
        .columns(['queue', 'dedupe_key'])
        .unique()
        .where(sql.ref('dedupe_key'), 'is not', null)
        .execute();
      // Claiming looks for due queued jobs and expired leases; listing goes by queue and state.
      await db.schema.createIndex('jobs_due_idx').on('jobs').columns(['state', 'run_at']).execute();
      await db.schema
        .createIndex('jobs_queue_state_idx')
        .on('jobs')
        .columns(['queue', 'state', 'id'])
        .execute();
      await db.schema.createIndex('jobs_finished_idx').on('jobs').column('finished_at').execute();

      await db.schema
        .createTable('webhooks')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('name', name, (c) => c.notNull())
        // null: a global endpoint (system admins); else the namespace it belongs to.
        .addColumn('namespace', name)
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('format', name, (c) => c.notNull())
        .addColumn('events', 'text', (c) => c.notNull())
        .addColumn('repository_glob', 'text', (c) => c.notNull())
        .addColumn('tag_glob', 'text', (c) => c.notNull())
        .addColumn('include_pulls', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('headers', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('previous_secret', 'text')
        .addColumn('previous_secret_until', 'bigint')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('disabled_reason', 'text')
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('webhooks_scope_name_idx')
        .on('webhooks')
        .expression(sql`coalesce(namespace, ''), name`)
        .unique()
        .execute();

      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', id, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('webhook_id', 'bigint', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('event_id', name, (c) => c.notNull())
        .addColumn('event_type', name, (c) => c.notNull())
        .addColumn('job_id', 'bigint')
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('outcome', name, (c) => c.notNull())
        .addColumn('status_code', 'integer')
        .addColumn('duration_ms', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('response_snippet', 'text')
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('webhook_deliveries_webhook_idx')
        .on('webhook_deliveries')
        .columns(['webhook_id', 'id'])
        .execute();
    },
  };
}
