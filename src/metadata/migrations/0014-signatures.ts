/**
 * 0014: signature trust and verdicts.
 *
 * - `signature_trust`: one trust configuration per namespace (`signing/trust.ts`, stored as JSON) with a
 *   `revision` that grows on every change, so a verdict computed under an older configuration is known as stale.
 * - `signature_verdicts`: what verifying each signature of a signature manifest concluded, per signed manifest
 *   (`subject_digest`) and per signature within the manifest (`layer`), under which trust revision. A verdict
 *   belongs to its signature manifest: deleting the manifest (or its repository) deletes its verdicts.
 */
import { sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../schema.ts';

export function signaturesMigration(dialect: SqlDialect): Migration {
  const pg = dialect === 'postgres';
  const name = pg ? sql`text collate "C"` : sql`text`;
  const id = pg ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('signature_trust')
        .addColumn('namespace', name, (c) => c.primaryKey())
        .addColumn('document', 'text', (c) => c.notNull())
        .addColumn('revision', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('signature_verdicts')
        .addColumn('signature_manifest_id', id, (c) =>
          c.notNull().references('manifests.id').onDelete('cascade'),
        )
        .addColumn('subject_digest', name, (c) => c.notNull())
        .addColumn('layer', 'integer', (c) => c.notNull())
        .addColumn('tool', 'text', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('verified', 'integer', (c) => c.notNull())
        .addColumn('signer', 'text')
        .addColumn('fingerprint', 'text')
        .addColumn('reason', 'text')
        .addColumn('notes', 'text', (c) => c.notNull())
        .addColumn('signed_at', 'text')
        .addColumn('trust_revision', 'bigint', (c) => c.notNull())
        .addColumn('checked_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('signature_verdicts_pkey', [
          'signature_manifest_id',
          'subject_digest',
          'layer',
        ])
        .execute();
      // Pulls ask "is this digest signed?".
      await db.schema
        .createIndex('signature_verdicts_subject_idx')
        .on('signature_verdicts')
        .columns(['subject_digest'])
        .execute();
    },
  };
}
