/**
 * The LifecycleStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (columns and table of
 * migration 0010; get one with `KyselyMetadataStore.lifecycleStore()`).
 *
 * A batch of pulls is bound as ONE JSON parameter (see `list-parameter.ts` for why) and applied with one
 * `UPDATE ... FROM` per table, so a flush costs two statements however many manifests were pulled.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type {
  LifecycleStore,
  ManifestPulls,
  ManifestStats,
  StoredRetentionPolicy,
  TagPulls,
  TagStats,
} from './lifecycle-store.ts';
import type { Database, SqlDialect } from './schema.ts';

/** A batch of pulls as a derived table `v(r, k, n, a)`: repository, key (digest or tag), count, latest time. */
function pullRows(dialect: SqlDialect, rows: readonly (readonly [string, string, number, number])[]) {
  const json = JSON.stringify(rows.map(([r, k, n, a]) => ({ r, k, n, a })));
  return dialect === 'postgres'
    ? sql`(select * from jsonb_to_recordset(${json}::jsonb) as x(r text, k text, n bigint, a bigint))`
    : sql`(select json_extract(value, '$.r') as r, json_extract(value, '$.k') as k,
             json_extract(value, '$.n') as n, json_extract(value, '$.a') as a from json_each(${json}))`;
}

export class KyselyLifecycleStore implements LifecycleStore {
  /**
   * @param db the metadata database, migrated (0010 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    private readonly db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {}

  async addPulls(manifests: readonly ManifestPulls[], tags: readonly TagPulls[]): Promise<void> {
    if (manifests.length === 0 && tags.length === 0) return;
    const later = (column: RawBuilder<unknown>): RawBuilder<unknown> =>
      this.dialect === 'postgres'
        ? sql`greatest(coalesce(${column}, 0), v.a)`
        : sql`max(coalesce(${column}, 0), v.a)`;
    await this.db.transaction().execute(async (trx) => {
      if (manifests.length > 0) {
        const rows = pullRows(
          this.dialect,
          manifests.map((p) => [p.repository, p.digest, p.count, p.at] as const),
        );
        await sql`update manifests as m
          set pull_count = m.pull_count + v.n, last_pulled_at = ${later(sql`m.last_pulled_at`)}
          from ${rows} as v, repositories as r
          where r.name = v.r and m.repository_id = r.id and m.digest = v.k`.execute(trx);
      }
      if (tags.length > 0) {
        const rows = pullRows(
          this.dialect,
          tags.map((p) => [p.repository, p.tag, p.count, p.at] as const),
        );
        await sql`update tags as t
          set pull_count = t.pull_count + v.n, last_pulled_at = ${later(sql`t.last_pulled_at`)}
          from ${rows} as v, repositories as r
          where r.name = v.r and t.repository_id = r.id and t.name = v.k`.execute(trx);
      }
    });
  }

  async tagStats(repository: string): Promise<TagStats[]> {
    const rows = await this.db
      .selectFrom('tags as t')
      .innerJoin('repositories as r', 'r.id', 't.repository_id')
      .innerJoin('manifests as m', 'm.id', 't.manifest_id')
      .select([
        't.name',
        'm.digest',
        't.updated_at',
        't.last_pulled_at',
        't.pull_count',
        'm.last_pulled_at as manifest_last_pulled_at',
      ])
      .where('r.name', '=', repository)
      .orderBy('t.name')
      .execute();
    return rows.map((row) => ({
      tag: row.name,
      digest: row.digest,
      pushedAt: Number(row.updated_at),
      lastPulledAt: nullableNumber(row.last_pulled_at),
      pullCount: Number(row.pull_count),
      manifestLastPulledAt: nullableNumber(row.manifest_last_pulled_at),
    }));
  }

  manifestStats(repository: string): Promise<ManifestStats[]> {
    return this.manifests(repository, false);
  }

  removableUntagged(repository: string): Promise<ManifestStats[]> {
    return this.manifests(repository, true);
  }

  private async manifests(repository: string, removableOnly: boolean): Promise<ManifestStats[]> {
    let q = this.db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .select((eb) => [
        'm.digest',
        'm.media_type',
        'm.created_at',
        'm.last_pulled_at',
        'm.pull_count',
        eb
          .selectFrom('tags as t')
          .select((e) => e.fn.countAll<number>().as('n'))
          .whereRef('t.manifest_id', '=', 'm.id')
          .as('tags'),
      ])
      .where('r.name', '=', repository);
    if (removableOnly) {
      q = q
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom('tags as t').select('t.name').whereRef('t.manifest_id', '=', 'm.id'))),
        )
        // A child of any index of the repository (tagged or not) stays while the index does.
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('manifest_references as mr')
                .innerJoin('manifests as parent', 'parent.id', 'mr.manifest_id')
                .select('mr.digest')
                .where('mr.kind', '=', 'manifest')
                .whereRef('mr.digest', '=', 'm.digest')
                .whereRef('parent.repository_id', '=', 'm.repository_id'),
            ),
          ),
        )
        // A referrer (signature, SBOM, attestation) stays while its subject is present.
        .where(({ or, eb, not, exists, selectFrom }) =>
          or([
            eb('m.subject_digest', 'is', null),
            not(
              exists(
                selectFrom('manifests as s')
                  .select('s.digest')
                  .whereRef('s.repository_id', '=', 'm.repository_id')
                  .whereRef('s.digest', '=', 'm.subject_digest'),
              ),
            ),
          ]),
        );
    }
    const rows = await q.orderBy('m.digest').execute();
    return rows.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      pushedAt: Number(row.created_at),
      lastPulledAt: nullableNumber(row.last_pulled_at),
      pullCount: Number(row.pull_count),
      tags: Number(row.tags ?? 0),
    }));
  }

  async namespaceRepositories(namespace: string): Promise<string[]> {
    // `namespace/` up to (not including) `namespace0`: '0' follows '/' in byte order, so the range is exactly the
    // names under `namespace/` (names and the range compare byte-wise on both dialects).
    const rows = await this.db
      .selectFrom('repositories')
      .select('name')
      .where((eb) =>
        eb.or([
          eb('name', '=', namespace),
          eb.and([eb('name', '>=', `${namespace}/`), eb('name', '<', `${namespace}0`)]),
        ]),
      )
      .orderBy('name')
      .execute();
    return rows.map((r) => r.name);
  }

  async getRetentionPolicy(namespace: string): Promise<StoredRetentionPolicy | null> {
    const row = await this.db
      .selectFrom('retention_policies')
      .selectAll()
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return row === undefined ? null : toPolicy(row);
  }

  async putRetentionPolicy(
    namespace: string,
    policy: unknown,
    updatedBy: string | null,
  ): Promise<StoredRetentionPolicy> {
    const now = Date.now();
    const text = JSON.stringify(policy);
    const row = await this.db
      .insertInto('retention_policies')
      .values({ namespace, policy: text, updated_by: updatedBy, created_at: now, updated_at: now })
      .onConflict((oc) =>
        oc.column('namespace').doUpdateSet({ policy: text, updated_by: updatedBy, updated_at: now }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return toPolicy(row);
  }

  async deleteRetentionPolicy(namespace: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('retention_policies')
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async listRetentionPolicies(): Promise<StoredRetentionPolicy[]> {
    const rows = await this.db.selectFrom('retention_policies').selectAll().orderBy('namespace').execute();
    return rows.map(toPolicy);
  }
}

function nullableNumber(value: number | string | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function toPolicy(row: {
  namespace: string;
  policy: string;
  updated_by: string | null;
  created_at: number;
  updated_at: number;
}): StoredRetentionPolicy {
  return {
    namespace: row.namespace,
    policy: JSON.parse(row.policy) as unknown,
    updatedBy: row.updated_by,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
