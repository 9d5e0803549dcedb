/**
 * The metadata schema's forward-only migrations, provided in code (no filesystem scanning, so they work from any
 * working directory and from a bundled build) and applied with Kysely's `Migrator`.
 *
 * To change the schema, add a file `NNNN-description.ts` exporting a migration factory and list it in
 * `migrationsFor` under a name that sorts after every existing one. Never edit or remove a released migration.
 */
import type { Migration, MigrationProvider } from 'kysely';
import type { SqlDialect } from '../schema.ts';
import { initialMigration } from './0001-initial.ts';
import { accessControlMigration } from './0002-access-control.ts';
import { leasesMigration } from './0003-leases.ts';
import { uploadOwnerMigration } from './0004-upload-owner.ts';
import { loginFailuresMigration } from './0005-login-failures.ts';
import { eventsAndJobsMigration } from './0006-events-and-jobs.ts';
import { jobClaimIndexMigration } from './0007-job-claim-index.ts';
import { garbageCollectionMigration } from './0008-garbage-collection.ts';
import { immutableTagsMigration } from './0009-immutable-tags.ts';
import { retentionMigration } from './0010-retention.ts';
import { signaturesMigration } from './0014-signatures.ts';
import { usageAndQuotasMigration } from './0011-usage-and-quotas.ts';
import { pullThroughCacheMigration } from './0012-pull-through-cache.ts';
import { replicationMigration } from './0013-replication.ts';
import { vulnDbMigration } from './0015-vulndb.ts';
import { scansMigration } from './0016-scans.ts';

/** Table recording which migrations ran (name and ISO timestamp). */
export const MIGRATION_TABLE = 'berth_migrations';

/** Table Kysely uses as a migration lock on dialects without advisory locks. */
export const MIGRATION_LOCK_TABLE = 'berth_migrations_lock';

/** Every migration, by name, built for `dialect`. Names sort in application order. */
export function migrationsFor(dialect: SqlDialect): Record<string, Migration> {
  return {
    '0001-initial': initialMigration(dialect),
    '0002-access-control': accessControlMigration(dialect),
    '0003-leases': leasesMigration(dialect),
    '0004-upload-owner': uploadOwnerMigration(),
    '0005-login-failures': loginFailuresMigration(dialect),
    '0006-events-and-jobs': eventsAndJobsMigration(dialect),
    '0007-job-claim-index': jobClaimIndexMigration(),
    '0008-garbage-collection': garbageCollectionMigration(dialect),
    '0009-immutable-tags': immutableTagsMigration(dialect),
    '0010-retention': retentionMigration(dialect),
    '0011-usage-and-quotas': usageAndQuotasMigration(dialect),
    '0012-pull-through-cache': pullThroughCacheMigration(dialect),
    '0013-replication': replicationMigration(dialect),
    '0014-signatures': signaturesMigration(dialect),
    '0015-vulndb': vulnDbMigration(dialect),
    '0016-scans': scansMigration(dialect),
  };
}

/** A `MigrationProvider` serving `migrationsFor(dialect)`. */
export class BerthMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: SqlDialect) {}

  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrationsFor(this.dialect));
  }
}
