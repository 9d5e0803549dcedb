/**
 * The ScanStore on top of Kysely, for SQLite and PostgreSQL, over the metadata database (tables of migration
 * 0016; get one with `KyselyMetadataStore.scanStore()`).
 */
import type { Kysely, Selectable } from 'kysely';
import type { Digest } from '../oci/digest.ts';
import type { ScanReport, SeverityCounts } from '../scanning/report.ts';
import type {
  PackageKey,
  ScannerRecord,
  ScanPolicyRecord,
  ScanStatus,
  ScanStore,
  StoredScan,
} from './scan-store.ts';
import type { ScannersTable, ScanPoliciesTable, ScanReportsTable, ScanTables } from './scan-tables.ts';
import type { Database, SqlDialect } from './schema.ts';

type Db = Database & ScanTables;

/** Rows per INSERT of package keys (well under SQLite's bound-parameter limit). */
const KEYS_PER_INSERT = 300;
/** Package keys per lookup query. */
const KEYS_PER_QUERY = 200;

function scanOf(row: Selectable<ScanReportsTable>): StoredScan {
  return {
    digest: row.digest as Digest,
    status: row.status as ScanStatus,
    scanner: row.scanner,
    dbRevision: Number(row.db_revision),
    report: row.report === null ? null : (JSON.parse(row.report) as ScanReport),
    counts: row.counts === null ? null : (JSON.parse(row.counts) as SeverityCounts),
    error: row.error,
    scannedAt: row.scanned_at === null ? null : new Date(Number(row.scanned_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function policyOf(row: Selectable<ScanPoliciesTable>): ScanPolicyRecord {
  return {
    namespace: row.namespace,
    document: JSON.parse(row.document) as unknown,
    updatedBy: row.updated_by,
    updatedAt: new Date(Number(row.updated_at)),
  };
}

function scannerOf(row: Selectable<ScannersTable>): ScannerRecord {
  return {
    name: row.name,
    url: row.url,
    authorization: row.authorization,
    createdAt: new Date(Number(row.created_at)),
  };
}

export class KyselyScanStore implements ScanStore {
  private readonly db: Kysely<Db>;

  /**
   * @param db the metadata database, migrated (0016 or later); the caller owns it and closes it.
   * @param dialect which SQL dialect `db` speaks.
   */
  constructor(
    db: Kysely<Database>,
    readonly dialect: SqlDialect,
  ) {
    this.db = db as unknown as Kysely<Db>;
  }

  async getScan(digest: Digest): Promise<StoredScan | null> {
    const row = await this.db
      .selectFrom('scan_reports')
      .selectAll()
      .where('digest', '=', digest)
      .executeTakeFirst();
    return row === undefined ? null : scanOf(row);
  }

  async markPending(
    digest: Digest,
    status: 'queued' | 'scanning',
    scanner: string,
    now: Date,
  ): Promise<void> {
    await this.db
      .insertInto('scan_reports')
      .values({
        digest,
        status,
        scanner,
        db_revision: 0,
        report: null,
        counts: null,
        error: null,
        scanned_at: null,
        updated_at: now.getTime(),
      })
      .onConflict((oc) =>
        oc.column('digest').doUpdateSet({ status, scanner, error: null, updated_at: now.getTime() }),
      )
      .execute();
  }

  async putReport(
    digest: Digest,
    scanner: string,
    report: ScanReport,
    counts: SeverityCounts,
    dbRevision: number,
    keys: readonly PackageKey[],
    now: Date,
  ): Promise<void> {
    const row = {
      status: 'done',
      scanner,
      db_revision: dbRevision,
      report: JSON.stringify(report),
      counts: JSON.stringify(counts),
      error: null,
      scanned_at: now.getTime(),
      updated_at: now.getTime(),
    };
    const unique = new Map<string, PackageKey>();
    for (const key of keys) unique.set(`${key.ecosystem}\u0000${key.name}`, key);
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('scan_reports')
        .values({ digest, ...row })
        .onConflict((oc) => oc.column('digest').doUpdateSet(row))
        .execute();
      await trx.deleteFrom('scan_packages').where('digest', '=', digest).execute();
      const values = [...unique.values()].map((key) => ({
        digest,
        ecosystem: key.ecosystem,
        name: key.name,
      }));
      for (let i = 0; i < values.length; i += KEYS_PER_INSERT) {
        await trx
          .insertInto('scan_packages')
          .values(values.slice(i, i + KEYS_PER_INSERT))
          .execute();
      }
    });
  }

  async markEnded(digest: Digest, status: 'failed' | 'unsupported', error: string, now: Date): Promise<void> {
    await this.db
      .insertInto('scan_reports')
      .values({
        digest,
        status,
        scanner: 'berth',
        db_revision: 0,
        report: null,
        counts: null,
        error,
        scanned_at: null,
        updated_at: now.getTime(),
      })
      .onConflict((oc) => oc.column('digest').doUpdateSet({ status, error, updated_at: now.getTime() }))
      .execute();
  }

  async digestsWithPackages(keys: readonly PackageKey[], limit: number, after?: Digest): Promise<Digest[]> {
    const found = new Set<string>();
    for (let i = 0; i < keys.length; i += KEYS_PER_QUERY) {
      const chunk = keys.slice(i, i + KEYS_PER_QUERY);
      let query = this.db
        .selectFrom('scan_packages')
        .select('digest')
        .distinct()
        .where((eb) =>
          eb.or(chunk.map((key) => eb.and([eb('ecosystem', '=', key.ecosystem), eb('name', '=', key.name)]))),
        );
      if (after !== undefined) query = query.where('digest', '>', after);
      for (const row of await query.orderBy('digest').limit(limit).execute()) found.add(row.digest);
    }
    return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit) as Digest[];
  }

  async reportedDigests(scanner: string, limit: number, after?: Digest): Promise<Digest[]> {
    let query = this.db
      .selectFrom('scan_reports')
      .select('digest')
      .where('status', '=', 'done')
      .where('scanner', '=', scanner);
    if (after !== undefined) query = query.where('digest', '>', after);
    const rows = await query.orderBy('digest').limit(limit).execute();
    return rows.map((row) => row.digest as Digest);
  }

  async deleteOrphans(): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const held = trx.selectFrom('manifests').select('manifests.digest');
      await trx.deleteFrom('scan_packages').where('digest', 'not in', held).execute();
      const result = await trx.deleteFrom('scan_reports').where('digest', 'not in', held).executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }

  async getPolicy(namespace: string): Promise<ScanPolicyRecord | null> {
    const row = await this.db
      .selectFrom('scan_policies')
      .selectAll()
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return row === undefined ? null : policyOf(row);
  }

  async listPolicies(): Promise<ScanPolicyRecord[]> {
    const rows = await this.db.selectFrom('scan_policies').selectAll().orderBy('namespace').execute();
    return rows.map(policyOf);
  }

  async putPolicy(
    namespace: string,
    document: unknown,
    updatedBy: string | null,
    now: Date,
  ): Promise<ScanPolicyRecord> {
    const row = { document: JSON.stringify(document), updated_by: updatedBy, updated_at: now.getTime() };
    await this.db
      .insertInto('scan_policies')
      .values({ namespace, ...row })
      .onConflict((oc) => oc.column('namespace').doUpdateSet(row))
      .execute();
    return { namespace, document, updatedBy, updatedAt: now };
  }

  async deletePolicy(namespace: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('scan_policies')
      .where('namespace', '=', namespace)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async listScanners(): Promise<ScannerRecord[]> {
    const rows = await this.db.selectFrom('scanners').selectAll().orderBy('name').execute();
    return rows.map(scannerOf);
  }

  async getScanner(name: string): Promise<ScannerRecord | null> {
    const row = await this.db.selectFrom('scanners').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? null : scannerOf(row);
  }

  async putScanner(record: ScannerRecord): Promise<void> {
    const row = {
      url: record.url,
      authorization: record.authorization,
      created_at: record.createdAt.getTime(),
    };
    await this.db
      .insertInto('scanners')
      .values({ name: record.name, ...row })
      .onConflict((oc) => oc.column('name').doUpdateSet(row))
      .execute();
  }

  async deleteScanner(name: string): Promise<boolean> {
    const result = await this.db.deleteFrom('scanners').where('name', '=', name).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
