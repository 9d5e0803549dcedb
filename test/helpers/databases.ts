/**
 * Fresh migrated metadata databases for suites that run on every dialect: SQLite (a temporary file) and
 * PostgreSQL (a new schema of the test database, dropped afterwards). PostgreSQL suites are skipped with the
 * reason when it does not answer (failing under CI, see `skip.ts`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createPostgresStore, createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { SqlDialect } from '../../src/metadata/schema.ts';
import { POSTGRES_URL, postgresSkipReason } from './postgres.ts';

export interface TestDatabase {
  readonly dialect: SqlDialect;
  /** A new store on this database (each call a new connection; all share the same tables). */
  open(): KyselyMetadataStore;
  /** The first store, migrated. */
  readonly store: KyselyMetadataStore;
  /** Closes every store opened and removes the database. */
  cleanup(): Promise<void>;
}

export interface DatabaseKind {
  readonly dialect: SqlDialect;
  /** A skip reason, or false. */
  readonly skip: string | false;
  create(): Promise<TestDatabase>;
}

/** SQLite always; PostgreSQL with its skip reason when it does not answer. */
export async function testDatabases(): Promise<DatabaseKind[]> {
  const pgSkip = await postgresSkipReason();
  return [
    { dialect: 'sqlite', skip: false, create: createSqliteDatabase },
    { dialect: 'postgres', skip: pgSkip, create: createPostgresDatabase },
  ];
}

async function createSqliteDatabase(): Promise<TestDatabase> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-db-'));
  const file = join(dir, 'berth.db');
  return track(
    'sqlite',
    () => createSqliteStore(file),
    () => rm(dir, { recursive: true, force: true }),
  );
}

async function createPostgresDatabase(): Promise<TestDatabase> {
  const schema = `berth_test_${randomBytes(6).toString('hex')}`;
  return track(
    'postgres',
    () => createPostgresStore(POSTGRES_URL, { schema }),
    async () => {
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      try {
        await admin.query(`drop schema if exists "${schema}" cascade`);
      } finally {
        await admin.end();
      }
    },
  );
}

async function track(
  dialect: SqlDialect,
  create: () => KyselyMetadataStore,
  remove: () => Promise<void>,
): Promise<TestDatabase> {
  const opened: KyselyMetadataStore[] = [];
  const open = (): KyselyMetadataStore => {
    const store = create();
    opened.push(store);
    return store;
  };
  const store = open();
  const cleanup = async (): Promise<void> => {
    for (const s of opened) await s.close().catch(() => undefined);
    await remove();
  };
  try {
    await store.migrate();
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { dialect, open, store, cleanup };
}
