/**
 * 0002: identities and access control (see `../auth-store.ts`): users, robots, teams and their members,
 * namespaces with their members and repository rules, token signing keys, refresh tokens and the audit log.
 *
 * Memberships and rules name their principal with three nullable foreign keys (`user_id`, `team_id`,
 * `robot_id`), exactly one of them set as `kind` says (a CHECK): every reference is a real foreign key with
 * ON DELETE CASCADE on both dialects. Refresh tokens name their subject by kind and name, without a foreign
 * key: deleting a user or robot revokes its tokens rather than deleting them (the store does it).
 *
 * Booleans are integers 0/1 on both dialects (better-sqlite3 binds no booleans).
 */
import { sql } from 'kysely';
import type { CreateTableBuilder, Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

/** Builds the migration for `dialect`. Never edit it once released: add a new migration instead. */
export function accessControlMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  // Byte-wise comparison and ordering of names, as in 0001.
  const name = pg ? sql`text collate "C"` : sql`text`;
  const idType = pg ? 'bigint' : 'integer';
  const flag = (column: string) => sql`${sql.ref(column)} in (0, 1)`;
  const roleCheck = sql`role in ('reader', 'developer', 'maintainer', 'admin')`;
  // Exactly the foreign key that `kind` names is set.
  const principalCheck = sql`(kind = 'user' and user_id is not null and team_id is null and robot_id is null)
    or (kind = 'team' and team_id is not null and user_id is null and robot_id is null)
    or (kind = 'robot' and robot_id is not null and user_id is null and team_id is null)`;

  /** The three principal columns, each a cascading foreign key. */
  function principalColumns<T extends string, C extends string>(
    table: CreateTableBuilder<T, C>,
  ): CreateTableBuilder<T, C | 'kind' | 'user_id' | 'team_id' | 'robot_id'> {
    return table
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('user_id', idType, (c) => c.references('users.id').onDelete('cascade'))
      .addColumn('team_id', idType, (c) => c.references('teams.id').onDelete('cascade'))
      .addColumn('robot_id', idType, (c) => c.references('robots.id').onDelete('cascade'));
  }

  return {
    async up(db: Kysely<unknown>): Promise<void> {
      const identity = (table: string) =>
        db.schema
          .createTable(table)
          .addColumn('id', idType, (c) =>
            pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
          );

      await identity('users')
        .addColumn('username', name, (c) => c.notNull())
        .addColumn('password_hash', 'text')
        .addColumn('email', 'text')
        .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('users_username_key', ['username'])
        .addCheckConstraint('users_is_admin_check', flag('is_admin'))
        .addCheckConstraint('users_disabled_check', flag('disabled'))
        .execute();

      await identity('robots')
        .addColumn('name', name, (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        // A username kept as history, not a reference: the robot outlives its creator.
        .addColumn('created_by', name)
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addUniqueConstraint('robots_name_key', ['name'])
        .execute();

      await identity('teams')
        .addColumn('name', name, (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('teams_name_key', ['name'])
        .execute();

      await db.schema
        .createTable('team_members')
        .addColumn('team_id', idType, (c) => c.notNull().references('teams.id').onDelete('cascade'))
        .addColumn('user_id', idType, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('team_members_pkey', ['team_id', 'user_id'])
        .execute();
      // teamsOf, membershipsOf and rulesOf start from the user; deleting a user cascades by user_id.
      await db.schema.createIndex('team_members_user_idx').on('team_members').column('user_id').execute();

      await identity('namespaces')
        .addColumn('name', name, (c) => c.notNull())
        .addColumn('visibility', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('namespaces_name_key', ['name'])
        .addCheckConstraint('namespaces_visibility_check', sql`visibility in ('public', 'private')`)
        .execute();

      await principalColumns(
        db.schema
          .createTable('namespace_members')
          .addColumn('namespace_id', idType, (c) =>
            c.notNull().references('namespaces.id').onDelete('cascade'),
          ),
      )
        .addColumn('role', 'text', (c) => c.notNull())
        // NULLs are distinct in unique constraints: each constraint only binds rows of its kind, so together
        // they make (namespace, kind, principal) unique, and serve as ON CONFLICT targets.
        .addUniqueConstraint('namespace_members_user_key', ['namespace_id', 'user_id'])
        .addUniqueConstraint('namespace_members_team_key', ['namespace_id', 'team_id'])
        .addUniqueConstraint('namespace_members_robot_key', ['namespace_id', 'robot_id'])
        .addCheckConstraint('namespace_members_kind_check', principalCheck)
        .addCheckConstraint('namespace_members_role_check', roleCheck)
        .execute();
      // membershipsOf and cascading deletes look members up by principal.
      for (const column of ['user_id', 'team_id', 'robot_id']) {
        await db.schema
          .createIndex(`namespace_members_${column.replace('_id', '')}_idx`)
          .on('namespace_members')
          .column(column)
          .execute();
      }

      await principalColumns(
        identity('repository_rules')
          .addColumn('namespace_id', idType, (c) =>
            c.notNull().references('namespaces.id').onDelete('cascade'),
          )
          .addColumn('pattern', name, (c) => c.notNull()),
      )
        .addColumn('role', 'text', (c) => c.notNull())
        .addCheckConstraint('repository_rules_kind_check', principalCheck)
        .addCheckConstraint('repository_rules_role_check', roleCheck)
        .execute();
      await db.schema
        .createIndex('repository_rules_namespace_idx')
        .on('repository_rules')
        .column('namespace_id')
        .execute();
      for (const column of ['user_id', 'team_id', 'robot_id']) {
        await db.schema
          .createIndex(`repository_rules_${column.replace('_id', '')}_idx`)
          .on('repository_rules')
          .column(column)
          .execute();
      }

      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', name, (c) => c.primaryKey())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('private_jwk', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .execute();

      await db.schema
        .createTable('refresh_tokens')
        .addColumn('id', name, (c) => c.primaryKey())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('subject_kind', 'text', (c) => c.notNull())
        .addColumn('subject', name, (c) => c.notNull())
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addCheckConstraint('refresh_tokens_subject_kind_check', sql`subject_kind in ('user', 'robot')`)
        .execute();
      await db.schema
        .createIndex('refresh_tokens_subject_idx')
        .on('refresh_tokens')
        .columns(['subject_kind', 'subject'])
        .execute();

      await db.schema
        .createTable('audit_events')
        .addColumn('id', idType, (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('actor', name)
        .addColumn('actor_kind', 'text', (c) => c.notNull())
        .addColumn('action', name, (c) => c.notNull())
        .addColumn('target', name)
        .addColumn('source_addr', 'text')
        .addColumn('success', 'integer', (c) => c.notNull())
        .addColumn('detail', 'text')
        .addCheckConstraint(
          'audit_events_actor_kind_check',
          sql`actor_kind in ('user', 'robot', 'anonymous', 'system', 'external')`,
        )
        .addCheckConstraint('audit_events_success_check', flag('success'))
        .execute();
      // Queries list newest first (id descending), filtered by time, actor, action or target (exact or prefix).
      await db.schema.createIndex('audit_events_time_idx').on('audit_events').column('time').execute();
      for (const column of ['actor', 'action', 'target']) {
        await db.schema
          .createIndex(`audit_events_${column}_idx`)
          .on('audit_events')
          .columns([column, 'id'])
          .execute();
      }
    },
  };
}
