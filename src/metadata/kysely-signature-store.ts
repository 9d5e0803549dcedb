/**
 * The SignatureStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (tables of
 * migration 0014; get one with `KyselyMetadataStore.signatureStore()`).
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Digest } from '../oci/digest.ts';
import { ArtifactType } from '../signing/artifacts.ts';
import type { SignatureFormat, SignatureTool } from '../signing/verdict.ts';
import type { NewVerdict, SignatureStore, StoredVerdict, TrustRecord } from './signature-store.ts';
import type { SignatureTables, SignatureTrustTable, SignatureVerdictsTable } from './signature-tables.ts';
import type { Database, SqlDialect } from './schema.ts';

type Db = Database & SignatureTables;

/** Referrers artifact types (artifactType, else config media type) of signature manifests. */
const SIGNATURE_ARTIFACT_TYPES = [
  ArtifactType.CosignSignature,
  ArtifactType.SigstoreBundle,
  'application/vnd.dev.sigstore.bundle+json;version=0.3',
  ArtifactType.NotarySignature,
];

function trustOf(row: Selectable<SignatureTrustTable>): TrustRecord {
  return {
    namespace: row.namespace,
    document: JSON.parse(row.document) as unknown,
    revision: Number(row.revision),
    updatedBy: row.updated_by,
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function verdictOf(
  row: Selectable<SignatureVerdictsTable> & { repository: string; signature_digest: string },
): StoredVerdict {
  return {
    repository: row.repository,
    signatureDigest: row.signature_digest as Digest,
    subject: row.subject_digest as Digest,
    layer: Number(row.layer),
    tool: row.tool as SignatureTool,
    format: row.format as SignatureFormat,
    verified: Number(row.verified) === 1,
    signer: row.signer,
    fingerprint: row.fingerprint,
    reason: row.reason,
    notes: JSON.parse(row.notes) as string[],
    signedAt: row.signed_at,
    trustRevision: Number(row.trust_revision),
    checkedAt: new Date(Number(row.checked_at)),
  };
}

export class KyselySignatureStore implements SignatureStore {
  private readonly db: Kysely<Db>;

  /**
   * @param db the metadata database, migrated (0014 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {
    this.db = db as unknown as Kysely<Db>;
  }

  async getTrust(namespace: string): Promise<TrustRecord | null> {
    const row = await this.db
      .selectFrom('signature_trust')
      .selectAll()
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return row === undefined ? null : trustOf(row);
  }

  async listTrust(): Promise<TrustRecord[]> {
    const rows = await this.db.selectFrom('signature_trust').selectAll().orderBy('namespace').execute();
    return rows.map(trustOf);
  }

  async putTrust(namespace: string, document: unknown, updatedBy: string | null): Promise<TrustRecord> {
    const text = JSON.stringify(document);
    const now = Date.now();
    // One statement: concurrent writers each get their own revision, never the same one twice.
    const row = await this.db
      .insertInto('signature_trust')
      .values({ namespace, document: text, revision: 1, updated_by: updatedBy, updated_at: now })
      .onConflict((oc) =>
        oc.column('namespace').doUpdateSet({
          document: text,
          revision: sql<number>`signature_trust.revision + 1`,
          updated_by: updatedBy,
          updated_at: now,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return trustOf(row);
  }

  async replaceVerdicts(
    repository: string,
    signatureDigest: Digest,
    verdicts: readonly NewVerdict[],
    revision: number,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const manifest = await trx
        .selectFrom('manifests')
        .innerJoin('repositories', 'repositories.id', 'manifests.repository_id')
        .select('manifests.id')
        .where('repositories.name', '=', repository)
        .where('manifests.digest', '=', signatureDigest)
        .executeTakeFirst();
      if (manifest === undefined) return false;
      const id = Number(manifest.id);
      await trx.deleteFrom('signature_verdicts').where('signature_manifest_id', '=', id).execute();
      if (verdicts.length === 0) return true;
      const now = Date.now();
      await trx
        .insertInto('signature_verdicts')
        .values(
          verdicts.map(({ subject, layer, verdict }) => ({
            signature_manifest_id: id,
            subject_digest: subject,
            layer,
            tool: verdict.tool,
            format: verdict.format,
            verified: verdict.verified ? 1 : 0,
            signer: verdict.signer,
            fingerprint: verdict.fingerprint,
            reason: verdict.reason,
            notes: JSON.stringify(verdict.notes),
            signed_at: verdict.signedAt,
            trust_revision: revision,
            checked_at: now,
          })),
        )
        // Two instances verifying the same signature at once write the same rows: the later one wins.
        .onConflict((oc) =>
          oc.columns(['signature_manifest_id', 'subject_digest', 'layer']).doUpdateSet((eb) => ({
            tool: eb.ref('excluded.tool'),
            format: eb.ref('excluded.format'),
            verified: eb.ref('excluded.verified'),
            signer: eb.ref('excluded.signer'),
            fingerprint: eb.ref('excluded.fingerprint'),
            reason: eb.ref('excluded.reason'),
            notes: eb.ref('excluded.notes'),
            signed_at: eb.ref('excluded.signed_at'),
            trust_revision: eb.ref('excluded.trust_revision'),
            checked_at: eb.ref('excluded.checked_at'),
          })),
        )
        .execute();
      return true;
    });
  }

  private verdictQuery() {
    return this.db
      .selectFrom('signature_verdicts')
      .innerJoin('manifests', 'manifests.id', 'signature_verdicts.signature_manifest_id')
      .innerJoin('repositories', 'repositories.id', 'manifests.repository_id')
      .selectAll('signature_verdicts')
      .select(['repositories.name as repository', 'manifests.digest as signature_digest'])
      .orderBy('manifests.digest')
      .orderBy('signature_verdicts.layer');
  }

  async verdictsFor(repository: string, subject: Digest): Promise<StoredVerdict[]> {
    const rows = await this.verdictQuery()
      .where('repositories.name', '=', repository)
      .where('signature_verdicts.subject_digest', '=', subject)
      .execute();
    return rows.map(verdictOf);
  }

  async verdictsOf(repository: string, signatureDigest: Digest): Promise<StoredVerdict[]> {
    const rows = await this.verdictQuery()
      .where('repositories.name', '=', repository)
      .where('manifests.digest', '=', signatureDigest)
      .execute();
    return rows.map(verdictOf);
  }

  async signatureManifests(
    namespace: string,
    options: { after?: { repository: string; digest: Digest }; limit: number },
  ): Promise<{ repository: string; digest: Digest }[]> {
    let query = this.db
      .selectFrom('manifests')
      .innerJoin('repositories', 'repositories.id', 'manifests.repository_id')
      .select(['repositories.name as repository', 'manifests.digest as digest'])
      // `namespace/` up to (not including) `namespace0`: exactly the names under `namespace/`, byte-wise.
      .where((eb) =>
        eb.or([
          eb('repositories.name', '=', namespace),
          eb.and([
            eb('repositories.name', '>=', `${namespace}/`),
            eb('repositories.name', '<', `${namespace}0`),
          ]),
        ]),
      )
      .where((eb) =>
        eb.or([
          eb('manifests.artifact_type', 'in', SIGNATURE_ARTIFACT_TYPES),
          eb.exists(
            eb
              .selectFrom('tags')
              .select('tags.name')
              .whereRef('tags.manifest_id', '=', 'manifests.id')
              .where('tags.name', 'like', 'sha256-%.sig'),
          ),
        ]),
      );
    const after = options.after;
    if (after !== undefined) {
      query = query.where((eb) =>
        eb.or([
          eb('repositories.name', '>', after.repository),
          eb.and([eb('repositories.name', '=', after.repository), eb('manifests.digest', '>', after.digest)]),
        ]),
      );
    }
    const rows = await query
      .orderBy('repositories.name')
      .orderBy('manifests.digest')
      .limit(options.limit)
      .execute();
    return rows.map((r) => ({ repository: r.repository, digest: r.digest as Digest }));
  }

  async signatureTags(repository: string, digest: Digest): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tags')
      .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
      .innerJoin('repositories', 'repositories.id', 'tags.repository_id')
      .select('tags.name')
      .where('repositories.name', '=', repository)
      .where('manifests.digest', '=', digest)
      .where('tags.name', 'like', 'sha256-%.sig')
      .orderBy('tags.name')
      .execute();
    return rows.map((r) => r.name);
  }

  async parentIndexes(repository: string, child: Digest): Promise<Digest[]> {
    const rows = await this.db
      .selectFrom('manifest_references')
      .innerJoin('manifests', 'manifests.id', 'manifest_references.manifest_id')
      .innerJoin('repositories', 'repositories.id', 'manifests.repository_id')
      .select('manifests.digest')
      .where('repositories.name', '=', repository)
      .where('manifest_references.kind', '=', 'manifest')
      .where('manifest_references.digest', '=', child)
      .orderBy('manifests.digest')
      .execute();
    return rows.map((r) => r.digest as Digest);
  }
}
