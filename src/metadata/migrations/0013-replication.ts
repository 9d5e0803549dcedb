/**
 * 0013: replication between registries.
 *
 * - `replication_registries`: remote registries (URL, username, sealed password, CA bundle, insecure flag, the
 *   most tasks run at once against it per instance).
 * - `replication_policies`: what to copy (repository and tag globs), in which direction, under which names
 *   (`rewrite_*`), when (`trigger`, `schedule`; `last_slot` is the latest schedule slot an execution was created
 *   for) and how fast (`bandwidth_limit`, bytes per second).
 * - `replication_executions`: one run of a policy; `dedupe_key` makes an event handed over twice create one
 *   execution. `policy_id` is cleared when the policy goes; the name stays for the history.
 * - `replication_tasks`: one artifact (a tag or a digest, with its referrers) to copy or delete.
 */
import { sql } from 'kysely';
import type { ColumnDefinitionBuilder, Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function replicationMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  const idColumn = (c: ColumnDefinitionBuilder): ColumnDefinitionBuilder =>
    pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement();
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('replication_registries')
        .addColumn('id', id, idColumn)
        .addColumn('name', name, (c) => c.notNull().unique())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('username', 'text')
        .addColumn('sealed_password', 'text')
        .addColumn('ca_bundle', 'text')
        .addColumn('insecure', 'integer', (c) => c.notNull())
        .addColumn('concurrency', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('replication_policies')
        .addColumn('id', id, idColumn)
        .addColumn('name', name, (c) => c.notNull().unique())
        .addColumn('registry_id', id, (c) => c.notNull().references('replication_registries.id'))
        .addColumn('direction', 'text', (c) => c.notNull())
        .addColumn('repositories', 'text', (c) => c.notNull())
        .addColumn('exclude_repositories', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('exclude_tags', 'text', (c) => c.notNull())
        .addColumn('rewrite_strip', 'text', (c) => c.notNull())
        .addColumn('rewrite_add', 'text', (c) => c.notNull())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('schedule', 'text')
        .addColumn('replicate_deletions', 'integer', (c) => c.notNull())
        .addColumn('bandwidth_limit', 'bigint')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('last_slot', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addCheckConstraint('replication_policies_direction_check', sql`direction in ('push', 'pull')`)
        .addCheckConstraint(
          'replication_policies_trigger_check',
          sql`trigger in ('manual', 'schedule', 'event')`,
        )
        .execute();
      await db.schema
        .createIndex('replication_policies_registry_idx')
        .on('replication_policies')
        .column('registry_id')
        .execute();

      await db.schema
        .createTable('replication_executions')
        .addColumn('id', id, idColumn)
        .addColumn('policy_id', id)
        .addColumn('policy_name', 'text', (c) => c.notNull())
        .addColumn('state', name, (c) => c.notNull())
        .addColumn('trigger', 'text', (c) => c.notNull())
        .addColumn('requested_by', 'text')
        .addColumn('planned', 'integer', (c) => c.notNull())
        .addColumn('dedupe_key', name, (c) => c.unique())
        .addColumn('error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .addCheckConstraint(
          'replication_executions_state_check',
          sql`state in ('queued', 'running', 'canceling', 'succeeded', 'failed', 'canceled')`,
        )
        .execute();
      await db.schema
        .createIndex('replication_executions_policy_idx')
        .on('replication_executions')
        .columns(['policy_id', 'id'])
        .execute();

      await db.schema
        .createTable('replication_tasks')
        .addColumn('id', id, idColumn)
        .addColumn('execution_id', id, (c) =>
          c.notNull().references('replication_executions.id').onDelete('cascade'),
        )
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('source_repository', 'text', (c) => c.notNull())
        .addColumn('source_reference', 'text', (c) => c.notNull())
        .addColumn('destination_repository', 'text', (c) => c.notNull())
        .addColumn('state', name, (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .addCheckConstraint(
          'replication_tasks_state_check',
          sql`state in ('pending', 'running', 'succeeded', 'failed')`,
        )
        .execute();
      await db.schema
        .createIndex('replication_tasks_execution_idx')
        .on('replication_tasks')
        .columns(['execution_id', 'state'])
        .execute();
    },
  };
}
