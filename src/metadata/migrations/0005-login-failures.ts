/**
 * 0005: failed logins, one row each, so that the failed-login limits hold across every instance sharing the
 * database (see `auth/login-limiter.ts`). Rows older than the limiter's window are pruned by the limiter.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function loginFailuresMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('login_failures')
        .addColumn('id', pg ? 'bigint' : 'integer', (c) =>
          pg ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
        )
        .addColumn('account', name, (c) => c.notNull())
        .addColumn('address', name, (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      // The limiter counts recent failures per (account, address) pair and per address, and prunes by time.
      await db.schema
        .createIndex('login_failures_pair_idx')
        .on('login_failures')
        .columns(['account', 'address', 'at'])
        .execute();
      await db.schema
        .createIndex('login_failures_address_idx')
        .on('login_failures')
        .columns(['address', 'at'])
        .execute();
      await db.schema.createIndex('login_failures_at_idx').on('login_failures').column('at').execute();
    },
  };
}
