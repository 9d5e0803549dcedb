/**
 * Runs the MetadataStore contract suite on SQLite (a temporary file per test) and on PostgreSQL (a fresh schema
 * per test) when reachable at BERTH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test), plus
 * persistence and migration checks specific to each database.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { linkBlobsInPostgres, linkBlobsInSqlite } from '../helpers/bulk-links.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { BetterSqlite3, createPostgresStore, createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import {
  BerthMigrationProvider,
  MIGRATION_LOCK_TABLE,
  MIGRATION_TABLE,
  migrationsFor,
} from '../../src/metadata/migrations/index.ts';
import type { SqlDialect } from '../../src/metadata/schema.ts';
import { runStoreSuite } from '../../src/metadata/testing/store-suite.ts';
import type { Digest } from '../../src/oci/digest.ts';

const execFileAsync = promisify(execFile);

function randomDigest(): Digest {
  return digestOf(randomBytes(32));
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-metadata-'));
}

interface MigrationRow {
  name: string;
  timestamp: string;
}

/**
 * An upload session written by a release before 0004 (no owner column): migrates `db` up to 0003 only, inserts the
 * row as that schema had it, then lets `open()` (the current store) migrate the rest. The session must have no
 * owner and stay usable.
 */
async function checkSessionsBeforeUploadOwners(
  db: Kysely<unknown>,
  dialect: SqlDialect,
  open: () => KyselyMetadataStore,
  schema?: string,
): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new BerthMigrationProvider(dialect),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
    migrationTableSchema: schema,
  });
  const { error } = await migrator.migrateTo('0003-leases');
  assert.equal(error, undefined);
  await sql`insert into upload_sessions (id, repository, size, handle, created_at, updated_at)
    values ('old-session', 'library/app', 5, '{"id":"old-handle"}', 1, 1)`.execute(db);
  await db.destroy();
  const store = open();
  try {
    await store.migrate();
    const session = await store.getUploadSession('old-session');
    assert.equal(session?.owner, null, 'a session from before 0004 has no owner');
    assert.equal(session?.size, 5);
    assert.deepEqual(await store.findUploadSessionHandles(['old-handle']), ['old-handle']);
    assert.equal(await store.advanceUploadSession('old-session', 5, 9, { id: 'old-handle' }), true);
  } finally {
    await store.close();
  }
}

// --- SQLite ----------------------------------------------------------------------------------------

runStoreSuite('KyselyMetadataStore on SQLite', async () => {
  const dir = await tempDir();
  // A nested path: the factory creates the parent directory.
  const file = join(dir, 'nested', 'metadata.db');
  const store = createSqliteStore(file);
  return {
    store,
    linkBlobsInBulk: async (repository, digests) => linkBlobsInSqlite(file, repository, digests),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
      assert.equal(existsSync(file), false);
    },
  };
});

describe('SQLite specifics', () => {
  function readMigrations(file: string): MigrationRow[] {
    const db = new BetterSqlite3(file, { readonly: true });
    try {
      return db
        .prepare(`select name, timestamp from ${MIGRATION_TABLE} order by name`)
        .all() as MigrationRow[];
    } finally {
      db.close();
    }
  }

  it('a reopened database keeps its data and does not re-apply migrations', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'metadata.db');
      const blob = randomDigest();
      const payload = Buffer.from('{"schemaVersion":2}');
      const first = createSqliteStore(file);
      await first.migrate();
      await first.linkBlob('library/app', blob, 321);
      assert.deepEqual(
        await first.putManifest({
          repository: 'library/app',
          digest: digestOf(payload),
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          payload,
          subject: null,
          artifactType: null,
          annotations: null,
          blobs: [blob],
          manifests: [],
          tags: ['v1'],
        }),
        { ok: true },
      );
      await first.createUploadSession({ id: 'session-1', repository: 'library/app', handle: { id: 'h' } });
      await first.close();

      const applied = readMigrations(file);
      assert.deepEqual(
        applied.map((m) => m.name),
        Object.keys(migrationsFor('sqlite')).sort(),
      );
      assert.equal(
        new BetterSqlite3(file, { readonly: true }).pragma('journal_mode', { simple: true }),
        'wal',
        'the database is in WAL mode',
      );

      const second = createSqliteStore(file);
      try {
        // Re-applying 0001 would fail (its tables exist), so this also proves nothing is re-run.
        await second.migrate();
        assert.deepEqual(await second.getBlobLink('library/app', blob), { digest: blob, size: 321 });
        const manifest = await second.getManifestByTag('library/app', 'v1');
        assert.ok(manifest?.payload.equals(payload));
        assert.equal((await second.getUploadSession('session-1'))?.repository, 'library/app');
      } finally {
        await second.close();
      }
      assert.deepEqual(readMigrations(file), applied, 'migration records are unchanged');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('0004 gives sessions that existed before it no owner, and they stay usable', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'metadata.db');
      const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new BetterSqlite3(file) }) });
      await checkSessionsBeforeUploadOwners(db, 'sqlite', () => createSqliteStore(file));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('works in memory', async () => {
    const store = createSqliteStore(':memory:');
    try {
      await store.migrate();
      await store.linkBlob('mem/repo', randomDigest(), 1);
      assert.deepEqual((await store.listRepositories({ limit: 10 })).items, ['mem/repo']);
    } finally {
      await store.close();
    }
  });

  it('ping fails once the database file was removed or replaced under the open store', async () => {
    const dir = await tempDir();
    const file = join(dir, 'metadata.db');
    const store = createSqliteStore(file);
    try {
      await store.migrate();
      await store.ping();
      await rm(file);
      await assert.rejects(store.ping(), /SQLite database .* was removed/);
      // A new file at the same path (a restore copied into place) is not the database the store writes to.
      const other = createSqliteStore(file);
      await other.close();
      await assert.rejects(store.ping(), /SQLite database .* was replaced/);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('several processes can migrate and write the same database at once', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'shared.db');
      const blob = randomDigest();
      const payload = Buffer.from('{"schemaVersion":2,"shared":true}');
      const dialects = pathToFileURL(join(import.meta.dirname, '../../src/metadata/dialects.ts')).href;
      const script = `
        import { createSqliteStore } from ${JSON.stringify(dialects)};
        const [file, blob, payloadHex, worker, digest, startAt] = process.argv.slice(1);
        const payload = Buffer.from(payloadHex, 'hex');
        // Start together, so the migrations really race.
        await new Promise((resolve) => setTimeout(resolve, Number(startAt) - Date.now()));
        const store = createSqliteStore(file);
        await store.migrate();
        for (let i = 0; i < 15; i++) {
          await store.linkBlob('shared/repo', blob, 10);
          await store.linkBlob('worker/' + worker, blob, 10);
          const result = await store.putManifest({
            repository: 'shared/repo', digest, mediaType: 'application/json', payload,
            subject: null, artifactType: null, annotations: null, blobs: [blob], manifests: [],
            tags: ['latest', 'w' + worker],
          });
          if (!result.ok) throw new Error('put failed: ' + JSON.stringify(result));
          await store.advanceUploadSession('none', 0, 1, { id: 'x' });
        }
        await store.close();
      `;
      const workers = ['1', '2', '3', '4'];
      const startAt = String(Date.now() + 2500);
      await Promise.all(
        workers.map((w) =>
          execFileAsync(
            process.execPath,
            [
              '--import',
              'tsx',
              '--input-type=module',
              '-e',
              script,
              file,
              blob,
              payload.toString('hex'),
              w,
              digestOf(payload),
              startAt,
            ],
            { timeout: 60_000 },
          ),
        ),
      );

      assert.equal(readMigrations(file).length, Object.keys(migrationsFor('sqlite')).length);
      const store = createSqliteStore(file);
      try {
        await store.migrate();
        assert.deepEqual((await store.listRepositories({ limit: 10 })).items, [
          'shared/repo',
          ...workers.map((w) => `worker/${w}`),
        ]);
        assert.deepEqual((await store.listTags('shared/repo', { limit: 10 })).items, [
          'latest',
          ...workers.map((w) => `w${w}`),
        ]);
        assert.ok((await store.getManifestByTag('shared/repo', 'latest'))?.payload.equals(payload));
      } finally {
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
  describe('KyselyMetadataStore on PostgreSQL', { skip: postgresSkip }, () => {});
  describe('PostgreSQL specifics', { skip: postgresSkip }, () => {});
} else {
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  after(() => admin.end());

  const freshSchema = (): string => `berth_test_${randomBytes(6).toString('hex')}`;
  const dropSchema = async (schema: string): Promise<void> => {
    await admin.query(`drop schema if exists "${schema}" cascade`);
  };

  runStoreSuite('KyselyMetadataStore on PostgreSQL', async () => {
    const schema = freshSchema();
    const store = createPostgresStore(POSTGRES_URL, { schema });
    return {
      store,
      linkBlobsInBulk: (repository, digests) => linkBlobsInPostgres(admin, schema, repository, digests),
      cleanup: async () => {
        await store.close();
        await dropSchema(schema);
      },
    };
  });

  describe('PostgreSQL specifics', () => {
    const readMigrations = async (schema: string): Promise<MigrationRow[]> =>
      (
        await admin.query<MigrationRow>(
          `select name, timestamp from "${schema}".${MIGRATION_TABLE} order by name`,
        )
      ).rows;

    it('concurrent migrations apply once, in the store schema, and are not re-applied', async () => {
      const schema = freshSchema();
      const stores = [1, 2, 3].map(() => createPostgresStore(POSTGRES_URL, { schema }));
      try {
        await Promise.all(stores.map((s) => s.migrate()));
        const applied = await readMigrations(schema);
        assert.deepEqual(
          applied.map((m) => m.name),
          Object.keys(migrationsFor('postgres')).sort(),
        );
        const tables = await admin.query<{ table_name: string }>(
          'select table_name from information_schema.tables where table_schema = $1 order by table_name',
          [schema],
        );
        for (const table of [
          'blobs',
          'manifests',
          'repositories',
          'tags',
          'upload_sessions',
          MIGRATION_TABLE,
        ]) {
          assert.ok(
            tables.rows.some((r) => r.table_name === table),
            `${table} is in ${schema}`,
          );
        }

        const blob = randomDigest();
        await stores[0]?.linkBlob('library/app', blob, 2 ** 40);
        const reopened = createPostgresStore(POSTGRES_URL, { schema });
        try {
          await reopened.migrate();
          assert.deepEqual(await reopened.getBlobLink('library/app', blob), { digest: blob, size: 2 ** 40 });
        } finally {
          await reopened.close();
        }
        assert.deepEqual(await readMigrations(schema), applied, 'migration records are unchanged');
      } finally {
        await Promise.all(stores.map((s) => s.close()));
        await dropSchema(schema);
      }
    });

    it('orders names byte-wise whatever the database collation (columns use COLLATE "C")', async () => {
      const schema = freshSchema();
      const store = createPostgresStore(POSTGRES_URL, { schema });
      try {
        await store.migrate();
        const { rows } = await admin.query<{ table: string; column: string; collation: string | null }>(
          `select c.relname as table, a.attname as column, co.collname as collation
             from pg_attribute a
             join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
             left join pg_collation co on co.oid = a.attcollation
            where n.nspname = $1 and a.attname in ('name', 'digest') and c.relkind = 'r'`,
          [schema],
        );
        const ours = rows.filter(
          (r) => r.table !== MIGRATION_TABLE && !r.table.startsWith(`${MIGRATION_TABLE}_`),
        );
        assert.ok(ours.length >= 5);
        for (const row of ours) assert.equal(row.collation, 'C', `${row.table}.${row.column} collation`);
      } finally {
        await store.close();
        await dropSchema(schema);
      }
    });

    it('0004 gives sessions that existed before it no owner, and they stay usable', async () => {
      const schema = freshSchema();
      const pool = new pg.Pool({
        connectionString: POSTGRES_URL,
        max: 1,
        options: `-c search_path=${schema}`,
      });
      try {
        await checkSessionsBeforeUploadOwners(
          new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) }),
          'postgres',
          () => createPostgresStore(POSTGRES_URL, { schema }),
          schema,
        );
      } finally {
        await dropSchema(schema);
      }
    });

    it('rejects an unsafe schema name', () => {
      assert.throws(
        () => createPostgresStore(POSTGRES_URL, { schema: 'x; drop table y' }),
        /invalid PostgreSQL schema/,
      );
    });
  });
}
