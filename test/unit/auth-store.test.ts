/**
 * Runs the AuthStore contract suite on SQLite (a temporary file per test) and on PostgreSQL (a fresh schema per
 * test) when reachable at BERTH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), plus
 * schema checks: upgrading a database migrated to 0001 only, and cascades declared by the schema itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import type { Migration } from 'kysely';
import pg from 'pg';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { BetterSqlite3, createPostgresStore, createSqliteStore } from '../../src/metadata/dialects.ts';
import { KyselyAuthStore } from '../../src/metadata/kysely-auth-store.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { initialMigration } from '../../src/metadata/migrations/0001-initial.ts';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationsFor } from '../../src/metadata/migrations/index.ts';
import type { SqlDialect } from '../../src/metadata/schema.ts';
import { runAuthStoreSuite } from '../../src/metadata/testing/auth-store-suite.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-auth-'));
}

/** Applies only migration 0001 through `db` (a database as released before 0002), then destroys `db`. */
async function migrateTo0001(db: Kysely<unknown>, dialect: SqlDialect, schema?: string): Promise<void> {
  try {
    const migrator = new Migrator({
      db,
      provider: {
        getMigrations: (): Promise<Record<string, Migration>> =>
          Promise.resolve({ '0001-initial': initialMigration(dialect) }),
      },
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
      migrationTableSchema: schema,
    });
    const { error } = await migrator.migrateToLatest();
    if (error !== undefined) throw error;
  } finally {
    await db.destroy();
  }
}

/**
 * Checks the upgrade path: `store` opens a database migrated to 0001 only, holding a repository. `tables()` lists
 * the database's tables; `migrations()` the applied migration names.
 */
async function checkUpgrade(
  store: KyselyMetadataStore,
  tables: () => Promise<string[]>,
  migrations: () => Promise<string[]>,
): Promise<void> {
  assert.deepEqual(await migrations(), ['0001-initial']);
  assert.equal((await tables()).includes('users'), false, 'before: no 0002 tables');

  await store.migrate();
  assert.deepEqual(await migrations(), Object.keys(migrationsFor(store.dialect)).sort());
  assert.ok((await migrations()).includes('0002-access-control'));
  const now = await tables();
  for (const table of [
    'users',
    'robots',
    'teams',
    'team_members',
    'namespaces',
    'namespace_members',
    'repository_rules',
    'signing_keys',
    'refresh_tokens',
    'audit_events',
  ]) {
    assert.ok(now.includes(table), `${table} exists after the upgrade`);
  }
  // The 0001 data is intact and both stores work.
  assert.deepEqual((await store.listRepositories({ limit: 10 })).items, ['old/repo']);
  const auth = store.authStore();
  await auth.createUser({ username: 'admin', passwordHash: null, isAdmin: true });
  await auth.createNamespace({ name: 'old', visibility: 'public', description: '' });
  await auth.setMember('old', 'user', 'admin', 'admin');
  assert.deepEqual(await auth.membershipsOf('user', 'admin'), [
    { namespace: 'old', kind: 'user', principal: 'admin', role: 'admin' },
  ]);
  // Migrating again changes nothing.
  await store.migrate();
  assert.deepEqual(await migrations(), Object.keys(migrationsFor(store.dialect)).sort());
  assert.equal(await auth.countAdmins(), 1);
}

/**
 * Checks that the schema itself cascades (not only the store's explicit deletes): deleting principal and
 * namespace rows with plain SQL through `exec` removes their memberships, team memberships and rules. `count`
 * answers a `select count(*)` statement.
 */
async function checkSchemaCascades(
  store: KyselyMetadataStore,
  exec: (statement: string) => Promise<void>,
  count: (statement: string) => Promise<number>,
): Promise<void> {
  await store.migrate();
  const auth = store.authStore();
  await auth.createUser({ username: 'alice', passwordHash: null, isAdmin: false });
  await auth.createUser({ username: 'bob', passwordHash: null, isAdmin: false });
  await auth.createTeam({ name: 'devs', description: '' });
  await auth.createRobot({ name: 'ci', description: '', secretHash: 's', expiresAt: null, createdBy: null });
  await auth.createNamespace({ name: 'acme', visibility: 'private', description: '' });
  await auth.createNamespace({ name: 'other', visibility: 'private', description: '' });
  await auth.addTeamMember('devs', 'alice');
  await auth.addTeamMember('devs', 'bob');
  for (const ns of ['acme', 'other']) {
    await auth.setMember(ns, 'user', 'alice', 'reader');
    await auth.setMember(ns, 'team', 'devs', 'reader');
    await auth.setMember(ns, 'robot', 'ci', 'reader');
    await auth.addRule({ namespace: ns, pattern: '*', kind: 'user', principal: 'alice', role: 'admin' });
    await auth.addRule({ namespace: ns, pattern: '*', kind: 'team', principal: 'devs', role: 'admin' });
    await auth.addRule({ namespace: ns, pattern: '*', kind: 'robot', principal: 'ci', role: 'admin' });
  }
  const state = async () => ({
    members: await count('select count(*) as n from namespace_members'),
    rules: await count('select count(*) as n from repository_rules'),
    teamMembers: await count('select count(*) as n from team_members'),
  });
  assert.deepEqual(await state(), { members: 6, rules: 6, teamMembers: 2 });
  await exec(`delete from users where username = 'alice'`);
  assert.deepEqual(await state(), { members: 4, rules: 4, teamMembers: 1 });
  await exec(`delete from robots where name = 'ci'`);
  assert.deepEqual(await state(), { members: 2, rules: 2, teamMembers: 1 });
  await exec(`delete from namespaces where name = 'acme'`);
  assert.deepEqual(await state(), { members: 1, rules: 1, teamMembers: 1 });
  await exec(`delete from teams where name = 'devs'`);
  assert.deepEqual(await state(), { members: 0, rules: 0, teamMembers: 0 });

  // The CHECK constraint ties `kind` to its column.
  const userId = await count(`select id as n from users where username = 'bob'`);
  const namespaceId = await count(`select id as n from namespaces where name = 'other'`);
  await assert.rejects(
    exec(
      `insert into namespace_members (namespace_id, kind, user_id, role) values (${namespaceId}, 'team', ${userId}, 'reader')`,
    ),
  );
  await assert.rejects(
    exec(
      `insert into namespace_members (namespace_id, kind, user_id, role) values (${namespaceId}, 'user', ${userId}, 'owner')`,
    ),
  );
  await exec(
    `insert into namespace_members (namespace_id, kind, user_id, role) values (${namespaceId}, 'user', ${userId}, 'reader')`,
  );
  assert.equal((await auth.listMembers('other')).length, 1);
}

// --- SQLite ----------------------------------------------------------------------------------------

runAuthStoreSuite('KyselyAuthStore on SQLite', async () => {
  const dir = await tempDir();
  const metadata = createSqliteStore(join(dir, 'metadata.db'));
  await metadata.migrate();
  return {
    store: metadata.authStore(),
    cleanup: async () => {
      await metadata.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('AuthStore on SQLite: schema', () => {
  it('authStore() is one KyselyAuthStore per metadata store', async () => {
    const store = createSqliteStore(':memory:');
    try {
      await store.migrate();
      const auth = store.authStore();
      assert.ok(auth instanceof KyselyAuthStore);
      assert.equal(store.authStore(), auth);
      assert.equal(auth.dialect, 'sqlite');
      // It shares the metadata store's database.
      await auth.createTeam({ name: 't', description: '' });
      assert.equal((await store.authStore().getTeam('t'))?.name, 't');
      await store.linkBlob('r/x', digestOf(Buffer.from('x')), 1);
    } finally {
      await store.close();
    }
  });

  it('upgrades a database migrated to 0001 only', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'metadata.db');
      const old = new BetterSqlite3(file);
      await migrateTo0001(new Kysely({ dialect: new SqliteDialect({ database: old }) }), 'sqlite');
      const raw = new BetterSqlite3(file);
      raw.prepare(`insert into repositories (name, created_at) values ('old/repo', 1)`).run();
      const tables = () =>
        Promise.resolve(
          (
            raw.prepare(`select name from sqlite_master where type = 'table'`).all() as { name: string }[]
          ).map((r) => r.name),
        );
      const migrations = () =>
        Promise.resolve(
          (raw.prepare(`select name from ${MIGRATION_TABLE} order by name`).all() as { name: string }[]).map(
            (r) => r.name,
          ),
        );
      const store = createSqliteStore(file);
      try {
        await checkUpgrade(store, tables, migrations);
      } finally {
        await store.close();
        raw.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('declares cascading foreign keys and kind checks', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'metadata.db');
      const store = createSqliteStore(file);
      const raw = new BetterSqlite3(file);
      raw.pragma('foreign_keys = ON');
      raw.pragma('busy_timeout = 5000');
      try {
        await checkSchemaCascades(
          store,
          (statement) => Promise.resolve().then(() => void raw.prepare(statement).run()),
          (statement) => Promise.resolve(Number((raw.prepare(statement).get() as { n: number }).n)),
        );
      } finally {
        raw.close();
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// --- PostgreSQL ------------------------------------------------------------------------------------

const postgresSkip = await postgresSkipReason();

if (postgresSkip !== false) {
  describe('KyselyAuthStore on PostgreSQL', { skip: postgresSkip }, () => {});
  describe('AuthStore on PostgreSQL: schema', { skip: postgresSkip }, () => {});
} else {
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  after(() => admin.end());

  const freshSchema = (): string => `berth_test_${randomBytes(6).toString('hex')}`;
  const dropSchema = async (schema: string): Promise<void> => {
    await admin.query(`drop schema if exists "${schema}" cascade`);
  };

  runAuthStoreSuite('KyselyAuthStore on PostgreSQL', async () => {
    const schema = freshSchema();
    const metadata = createPostgresStore(POSTGRES_URL, { schema });
    try {
      await metadata.migrate();
    } catch (error) {
      await metadata.close();
      await dropSchema(schema);
      throw error;
    }
    return {
      store: metadata.authStore(),
      cleanup: async () => {
        await metadata.close();
        await dropSchema(schema);
      },
    };
  });

  describe('AuthStore on PostgreSQL: schema', () => {
    it('upgrades a database migrated to 0001 only', async () => {
      const schema = freshSchema();
      try {
        const pool = new pg.Pool({
          connectionString: POSTGRES_URL,
          max: 1,
          options: `-c search_path=${schema}`,
        });
        await migrateTo0001(new Kysely({ dialect: new PostgresDialect({ pool }) }), 'postgres', schema);
        await admin.query(`insert into "${schema}".repositories (name, created_at) values ('old/repo', 1)`);
        const tables = async () =>
          (
            await admin.query<{ table_name: string }>(
              'select table_name from information_schema.tables where table_schema = $1',
              [schema],
            )
          ).rows.map((r) => r.table_name);
        const migrations = async () =>
          (
            await admin.query<{ name: string }>(
              `select name from "${schema}".${MIGRATION_TABLE} order by name`,
            )
          ).rows.map((r) => r.name);
        const store = createPostgresStore(POSTGRES_URL, { schema });
        try {
          await checkUpgrade(store, tables, migrations);
        } finally {
          await store.close();
        }
      } finally {
        await dropSchema(schema);
      }
    });

    it('declares cascading foreign keys and kind checks', async () => {
      const schema = freshSchema();
      const store = createPostgresStore(POSTGRES_URL, { schema });
      const client = await admin.connect();
      try {
        await client.query(`set search_path = "${schema}"`);
        await checkSchemaCascades(
          store,
          async (statement) => {
            await client.query(statement);
          },
          async (statement) => Number((await client.query<{ n: string | number }>(statement)).rows[0]?.n),
        );
      } finally {
        // The pooled connection goes back with its search_path reset.
        await client.query('reset search_path').catch(() => undefined);
        client.release();
        await store.close();
        await dropSchema(schema);
      }
    });
  });
}
