/**
 * The VulnDbStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (tables of migration
 * 0015; get one with `KyselyMetadataStore.vulnDbStore()`).
 *
 * Statements are chunked (ids and keys in groups of {@link CHUNK}) to stay under both dialects' limits on bound
 * parameters, whatever the size of a batch or of an image's inventory.
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, SqlDialect } from './schema.ts';
import {
  keyString,
  type AffectedKey,
  type BatchResult,
  type EcosystemCount,
  type ImportRecord,
  type NewAdvisory,
  type PackageKey,
  type StoredAdvisory,
  type VulnDbStore,
} from './vulndb-store.ts';
import type { VulnAdvisoriesTable, VulnDbTables, VulnImportsTable } from './vulndb-tables.ts';

type Db = Database & VulnDbTables;

/** Ids or keys per statement. */
const CHUNK = 400;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Epoch milliseconds of an RFC 3339 time (the parser checked it); sub-millisecond digits are dropped. */
function millis(time: string): number {
  const ms = Date.parse(time);
  if (Number.isFinite(ms)) return ms;
  // More than three fractional digits: Date.parse accepts them on V8, but keep a fallback that surely parses.
  return Date.parse(time.replace(/(\.\d{3})\d+/, '$1'));
}

function storedOf(
  row: Pick<Selectable<VulnAdvisoriesTable>, 'id' | 'modified' | 'withdrawn' | 'record'>,
): StoredAdvisory {
  return {
    id: row.id,
    modified: new Date(Number(row.modified)),
    withdrawn: row.withdrawn === null ? null : new Date(Number(row.withdrawn)),
    record: row.record,
  };
}

function importOf(row: Selectable<VulnImportsTable>): ImportRecord {
  return {
    source: row.source,
    importedAt: new Date(Number(row.imported_at)),
    added: Number(row.added),
    updated: Number(row.updated),
    unchanged: Number(row.unchanged),
    invalid: Number(row.invalid),
    revision: Number(row.revision),
  };
}

function uniqueKeys(keys: readonly PackageKey[]): PackageKey[] {
  const seen = new Map<string, PackageKey>();
  for (const k of keys) seen.set(keyString(k), { ecosystem: k.ecosystem, name: k.name });
  return [...seen.values()];
}

export class KyselyVulnDbStore implements VulnDbStore {
  private readonly db: Kysely<Db>;

  /**
   * @param db the metadata database, migrated (0015 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {
    this.db = db as unknown as Kysely<Db>;
  }

  async writeBatch(advisories: readonly NewAdvisory[], source: string): Promise<BatchResult> {
    const byId = new Map<string, NewAdvisory>();
    for (const a of advisories) {
      byId.delete(a.id);
      byId.set(a.id, a);
    }
    const repeated = advisories.length - byId.size;
    return this.retrying(() =>
      this.db.transaction().execute(async (trx) => {
        // Batches of concurrent imports queue here (SQLite's BEGIN IMMEDIATE does the same), so the `modified`
        // comparison below sees every committed write.
        let lock = trx.selectFrom('vuln_state').select('revision').where('id', '=', 1);
        if (this.dialect === 'postgres') lock = lock.forUpdate();
        const state = await lock.executeTakeFirstOrThrow();
        let revision = Number(state.revision);

        const stored = new Map<string, number>();
        for (const ids of chunks([...byId.keys()])) {
          const rows = await trx
            .selectFrom('vuln_advisories')
            .select(['id', 'modified'])
            .where('id', 'in', ids)
            .execute();
          for (const row of rows) stored.set(row.id, Number(row.modified));
        }
        const written: NewAdvisory[] = [];
        let added = 0;
        let updated = 0;
        for (const a of byId.values()) {
          const before = stored.get(a.id);
          if (before === undefined) added++;
          else if (millis(a.modified) > before) updated++;
          else continue;
          written.push(a);
        }
        const unchanged = byId.size - written.length + repeated;
        if (written.length === 0) return { added, updated, unchanged, changed: [], revision };

        revision += 1;
        const changed = new Map<string, PackageKey>();
        const replaced = written.filter((a) => stored.has(a.id)).map((a) => a.id);
        for (const ids of chunks(replaced)) {
          const old = await trx
            .selectFrom('vuln_affected')
            .select(['ecosystem', 'name'])
            .distinct()
            .where('advisory_id', 'in', ids)
            .execute();
          for (const k of old) changed.set(keyString(k), { ecosystem: k.ecosystem, name: k.name });
          await trx.deleteFrom('vuln_affected').where('advisory_id', 'in', ids).execute();
        }
        const now = Date.now();
        for (const group of chunks(written, 100)) {
          await trx
            .insertInto('vuln_advisories')
            .values(
              group.map((a) => ({
                id: a.id,
                modified: millis(a.modified),
                published: a.published === null ? null : millis(a.published),
                withdrawn: a.withdrawn === null ? null : millis(a.withdrawn),
                summary: a.summary,
                record: a.record,
                source,
                revision,
                imported_at: now,
              })),
            )
            .onConflict((oc) =>
              oc.column('id').doUpdateSet((eb) => ({
                modified: eb.ref('excluded.modified'),
                published: eb.ref('excluded.published'),
                withdrawn: eb.ref('excluded.withdrawn'),
                summary: eb.ref('excluded.summary'),
                record: eb.ref('excluded.record'),
                source: eb.ref('excluded.source'),
                revision: eb.ref('excluded.revision'),
                imported_at: eb.ref('excluded.imported_at'),
              })),
            )
            .execute();
        }
        const rows: (AffectedKey & { advisory_id: string })[] = [];
        for (const a of written) {
          const seen = new Set<string>();
          for (const k of a.affected) {
            const id = `${k.ecosystem}\u0000${k.release}\u0000${k.name}`;
            if (seen.has(id)) continue;
            seen.add(id);
            rows.push({ advisory_id: a.id, ecosystem: k.ecosystem, release: k.release, name: k.name });
            changed.set(keyString(k), { ecosystem: k.ecosystem, name: k.name });
          }
        }
        for (const group of chunks(rows, 1000)) {
          await trx.insertInto('vuln_affected').values(group).execute();
        }
        await trx.updateTable('vuln_state').set({ revision }).where('id', '=', 1).execute();
        return { added, updated, unchanged, changed: [...changed.values()], revision };
      }),
    );
  }

  async candidates(keys: readonly PackageKey[]): Promise<{ advisory: StoredAdvisory; keys: PackageKey[] }[]> {
    const named = new Map<string, PackageKey[]>();
    for (const group of chunks(uniqueKeys(keys), CHUNK / 2)) {
      const rows = await this.db
        .selectFrom('vuln_affected')
        .select(['advisory_id', 'ecosystem', 'name'])
        .distinct()
        .where((eb) =>
          eb(
            eb.refTuple('ecosystem', 'name'),
            'in',
            group.map((k) => eb.tuple(k.ecosystem, k.name)),
          ),
        )
        .execute();
      for (const row of rows) {
        const list = named.get(row.advisory_id) ?? [];
        list.push({ ecosystem: row.ecosystem, name: row.name });
        named.set(row.advisory_id, list);
      }
    }
    const out: { advisory: StoredAdvisory; keys: PackageKey[] }[] = [];
    for (const ids of chunks([...named.keys()])) {
      const rows = await this.db
        .selectFrom('vuln_advisories')
        .select(['id', 'modified', 'withdrawn', 'record'])
        .where('id', 'in', ids)
        .where('withdrawn', 'is', null)
        .execute();
      for (const row of rows)
        out.push({ advisory: storedOf(row), keys: uniqueKeys(named.get(row.id) ?? []) });
    }
    return out.sort((a, b) => (a.advisory.id < b.advisory.id ? -1 : a.advisory.id > b.advisory.id ? 1 : 0));
  }

  async affectedBy(keys: readonly PackageKey[]): Promise<Map<string, { key: PackageKey; ids: string[] }>> {
    const out = new Map<string, { key: PackageKey; ids: string[] }>();
    for (const group of chunks(uniqueKeys(keys), CHUNK / 2)) {
      const rows = await this.db
        .selectFrom('vuln_affected as f')
        .innerJoin('vuln_advisories as a', 'a.id', 'f.advisory_id')
        .select(['f.ecosystem', 'f.name', 'f.advisory_id'])
        .distinct()
        .where((eb) =>
          eb(
            eb.refTuple('f.ecosystem', 'f.name'),
            'in',
            group.map((k) => eb.tuple(k.ecosystem, k.name)),
          ),
        )
        .where('a.withdrawn', 'is', null)
        .execute();
      for (const row of rows) {
        const key = { ecosystem: row.ecosystem, name: row.name };
        const entry = out.get(keyString(key)) ?? { key, ids: [] };
        entry.ids.push(row.advisory_id);
        out.set(keyString(key), entry);
      }
    }
    for (const entry of out.values()) entry.ids.sort();
    return out;
  }

  async get(id: string): Promise<StoredAdvisory | null> {
    const row = await this.db
      .selectFrom('vuln_advisories')
      .select(['id', 'modified', 'withdrawn', 'record'])
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : storedOf(row);
  }

  async revision(): Promise<number> {
    const row = await this.db
      .selectFrom('vuln_state')
      .select('revision')
      .where('id', '=', 1)
      .executeTakeFirst();
    return row === undefined ? 0 : Number(row.revision);
  }

  async recordImport(record: Omit<ImportRecord, 'importedAt'>): Promise<ImportRecord> {
    const values = {
      source: record.source,
      imported_at: Date.now(),
      added: record.added,
      updated: record.updated,
      unchanged: record.unchanged,
      invalid: record.invalid,
      revision: record.revision,
    };
    const { source: _source, ...update } = values;
    const row = await this.db
      .insertInto('vuln_imports')
      .values(values)
      .onConflict((oc) => oc.column('source').doUpdateSet(update))
      .returningAll()
      .executeTakeFirstOrThrow();
    return importOf(row);
  }

  async imports(): Promise<ImportRecord[]> {
    const rows = await this.db.selectFrom('vuln_imports').selectAll().orderBy('source').execute();
    return rows.map(importOf);
  }

  async counts(): Promise<EcosystemCount[]> {
    const rows = await this.db
      .selectFrom('vuln_affected as f')
      .innerJoin('vuln_advisories as a', 'a.id', 'f.advisory_id')
      .select([
        'f.ecosystem',
        sql<number>`count(distinct case when a.withdrawn is null then a.id end)`.as('advisories'),
        sql<number>`count(distinct case when a.withdrawn is not null then a.id end)`.as('withdrawn'),
      ])
      .groupBy('f.ecosystem')
      .orderBy('f.ecosystem')
      .execute();
    return rows.map((r) => ({
      ecosystem: r.ecosystem,
      advisories: Number(r.advisories),
      withdrawn: Number(r.withdrawn),
    }));
  }

  /** Runs `work` again (a few times) when PostgreSQL aborted it to break a deadlock or a serialization failure. */
  private async retrying<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (attempt >= 5 || (code !== '40P01' && code !== '40001')) throw e;
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }
}
