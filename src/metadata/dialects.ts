/**
 * Factories of `KyselyMetadataStore` for the supported databases: SQLite (better-sqlite3, a file or `:memory:`)
 * and PostgreSQL (`pg` pool).
 */
import { mkdirSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3Type from 'better-sqlite3';
import type pg from 'pg';
import { CompiledQuery, Kysely, PostgresDialect, SqliteAdapter, SqliteDialect, SqliteDriver } from 'kysely';
import type {
  DatabaseConnection,
  DialectAdapter,
  Driver,
  SqliteDatabase,
  SqliteDialectConfig,
  SqliteStatement,
} from 'kysely';
import { KyselyMetadataStore } from './kysely-store.ts';
import type { Database } from './schema.ts';

/**
 * The SQLite binding for this Node.js. better-sqlite3 12 subclasses Node's raw `ObjectWrap`, whose destructor
 * aborts the process on Node 24 (`RemoveEnvironmentCleanupHook: (env) != nullptr` when a statement is garbage
 * collected); version 13 is built on Node-API and fixed, but needs Node 22 (on Node 20 it crashes). Both are
 * installed (13 under the alias `better-sqlite3-napi`); the one this runtime supports is loaded. Same API.
 */
const require = createRequire(import.meta.url);
export const BetterSqlite3 = require(
  Number(process.versions.node.split('.')[0]) >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3',
) as typeof BetterSqlite3Type;

/** The connection counts of each store's pool, for the metrics (`connectionStatsOf`). */
const CONNECTIONS = new WeakMap<KyselyMetadataStore, () => ConnectionCounts>();

/** The connections of a store's database now: `total` open, `idle` among them, callers `waiting` for one. */
export interface ConnectionCounts {
  readonly total: number;
  readonly idle?: number;
  readonly waiting?: number;
}

/** Reads the connection counts of `store` (made by this module's factories); undefined for any other store. */
export function connectionStatsOf(store: KyselyMetadataStore): (() => ConnectionCounts) | undefined {
  return CONNECTIONS.get(store);
}

/** How many distinct SQL texts keep a prepared statement (the store issues a few dozen shapes). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * The database as Kysely sees it, with prepared statements reused by SQL text. Kysely prepares every query it
 * runs, and better-sqlite3's `prepare` (parsing and planning the SQL) cost more than running the query itself on
 * the hot read paths. Reuse is safe because better-sqlite3 is synchronous: `all` and `run` finish before anyone
 * else can use the statement. `iterate` (streaming) keeps a statement busy across awaits, so it gets a fresh one.
 * Least recently used statements beyond `STATEMENT_CACHE_SIZE` are dropped. Lists are bound as one parameter
 * (`list-parameter.ts`), so a query's text does not vary with the length of its input.
 */
function withStatementCache(database: BetterSqlite3Type.Database): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => database.close(),
    prepare(sql: string): SqliteStatement {
      let statement = cache.get(sql);
      if (statement) {
        cache.delete(sql); // re-insert: Map order is the recency order
      } else {
        const prepared = database.prepare(sql);
        statement = {
          reader: prepared.reader,
          all: (parameters) => prepared.all(parameters),
          run: (parameters) => prepared.run(parameters),
          iterate: (parameters) => database.prepare(sql).iterate(parameters),
        };
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}

/**
 * Starts every transaction with `BEGIN IMMEDIATE`: the write lock is taken up front (waiting up to
 * `busy_timeout`), so a transaction that reads before it writes cannot fail with SQLITE_BUSY when another
 * process committed in between. Every transaction of the store writes, so nothing is lost.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

/**
 * SQLite does support transactional DDL. Saying so makes Kysely's Migrator run pending migrations in one
 * (immediate) transaction that re-reads the migration table under the lock, so several processes migrating
 * at once apply each migration exactly once, and a failed migration leaves nothing behind.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class BerthSqliteDialect extends SqliteDialect {
  constructor(private readonly config: SqliteDialectConfig) {
    super(config);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.config);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter();
  }
}

/**
 * Switches the database to WAL mode. Switching needs an exclusive lock and SQLite does not wait for it (the busy
 * timeout does not apply), so when several processes open a new database at once, retry for up to 10 s.
 * WAL is persistent: once any process has switched, the others find it on.
 */
function enableWal(database: BetterSqlite3Type.Database): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      if (String(database.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal') return;
      database.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 200) throw error;
      Atomics.wait(pause, 0, 0, 50);
    }
  }
}

/**
 * Opens (creating it and its parent directory if needed) the SQLite database `file` as a metadata store, in WAL
 * mode with `synchronous = NORMAL`, a 5 s busy timeout and foreign keys on. `:memory:` gives a private in-memory
 * database (tests). Call `migrate()` before use.
 */
export function createSqliteStore(file: string): KyselyMetadataStore {
  const inMemory = file === ':memory:' || file === '';
  if (!inMemory) mkdirSync(dirname(resolve(file)), { recursive: true });
  const database = new BetterSqlite3(file);
  try {
    database.pragma('busy_timeout = 5000');
    enableWal(database);
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
  } catch (error) {
    database.close();
    throw error;
  }
  const db = new Kysely<Database>({
    dialect: new BerthSqliteDialect({ database: withStatementCache(database) }),
  });
  const store = new KyselyMetadataStore(db, 'sqlite', { check: inMemory ? undefined : sameFile(file) });
  CONNECTIONS.set(store, () => ({ total: 1 }));
  return store;
}

/**
 * A check that `file` is still the file open now. SQLite keeps working on an open database whose file was deleted
 * or replaced (by hand, a botched restore, a cleanup job), but nothing it writes then survives a restart: readiness
 * must fail. The file's identity is its device and inode numbers.
 */
function sameFile(file: string): () => Promise<void> {
  const opened = statSync(file);
  return async () => {
    const now = await stat(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new Error(`SQLite database ${file} was removed`);
      throw e;
    });
    if (now.dev !== opened.dev || now.ino !== opened.ino) {
      throw new Error(`SQLite database ${file} was replaced by another file`);
    }
  };
}

/** Options of `createPostgresStore`. */
export interface PostgresStoreOptions {
  /**
   * Schema for Berth's tables (created by `migrate()` if missing); it becomes the connections' `search_path`.
   * Default: the server's default `search_path` (usually `public`).
   */
  readonly schema?: string | undefined;
  /** Maximum pool size. Default 10. */
  readonly maxConnections?: number | undefined;
  /** Called when an idle pooled connection fails (the pool replaces it). Default: ignored. */
  readonly onIdleError?: ((error: Error) => void) | undefined;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The type oid of PostgreSQL's int8 (`pg.types.builtins.INT8`). */
const PG_INT8_OID = 20;

/** Parses int8 (bigint: sizes, timestamps, ids, counts) to a number, refusing values beyond 2^53. */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint value ${value} exceeds the safe integer range`);
  return n;
}

const getTypeParser = ((oid: number, format?: 'text' | 'binary') =>
  oid === PG_INT8_OID && format !== 'binary'
    ? parseInt8
    : (require('pg') as typeof pg).types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;

/**
 * A metadata store on the PostgreSQL database at `connectionString` (a `postgres://` URL), through a `pg` pool.
 * int8 columns are read as numbers (per pool, without touching pg's global parsers). Call `migrate()` before use.
 */
export function createPostgresStore(
  connectionString: string,
  options: PostgresStoreOptions = {},
): KyselyMetadataStore {
  const { schema } = options;
  if (schema !== undefined && !SCHEMA_RE.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name ${JSON.stringify(schema)}: use [a-z_][a-z0-9_]*`);
  }
  // Loaded on first use: a registry on the embedded SQLite default never needs the PostgreSQL client in memory.
  const { Pool } = require('pg') as typeof pg;
  const pool = new Pool({
    connectionString,
    max: options.maxConnections ?? 10,
    types: { getTypeParser },
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // Without a listener, an idle connection dropped by the server would crash the process.
  pool.on('error', (error) => options.onIdleError?.(error));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const store = new KyselyMetadataStore(db, 'postgres', { schema });
  CONNECTIONS.set(store, () => ({
    total: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
  }));
  return store;
}
