/**
 * The vulnerability database as a thing to manage: importing OSV data (an `all.zip`, a directory, a JSON file, or
 * records given in a request) and its status (revision, advisories per ecosystem, the last import of each
 * source). System administrators only. Imports are audited (`vulndb.import`, with the counts), as are refused
 * ones; the status is not. Used by the admin API (`http/admin/vulndb.ts`) and the CLI (`berth vulndb`, as the
 * system).
 */
import type { AuditLog } from '../auth/audit.ts';
import type { EcosystemCount, ImportRecord, PackageKey, VulnDbStore } from '../metadata/vulndb-store.ts';
import {
  importPath,
  ImportPathError,
  importRecords,
  importZip,
  ZipError,
  type ImportKind,
  type ImportSummary,
} from '../scanning/vulndb/import.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { recordAction } from './audit-action.ts';
import { invalid } from './errors.ts';

/** The database's state as the API and the CLI show it. */
export interface VulnDbStatusView {
  /** Grows with every committed change; 0 before the first import. */
  readonly revision: number;
  readonly ecosystems: readonly EcosystemCount[];
  readonly imports: readonly ImportRecord[];
}

/** What an import did (see `ImportSummary`), and what it read when it was given a path. */
export type VulnDbImportView = ImportSummary & { readonly kind: ImportKind | 'records' };

const SOURCE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}$/;

/** The import source name, checked: 1 to 100 characters, letters, digits and `._:/@+-`. */
function checkSource(source: string): string {
  if (!SOURCE.test(source)) {
    throw invalid(
      `${JSON.stringify(source.slice(0, 120))} is not a source name (1 to 100 letters, digits and ._:/@+-)`,
      'source',
    );
  }
  return source;
}

export class VulnDbAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog | null,
    private readonly store: VulnDbStore,
    /** Told what each import changed, after it committed (scanning rematches the affected reports). */
    private readonly onImported?: (revision: number, changed: readonly PackageKey[]) => Promise<void>,
  ) {}

  /** The revision, the counts per ecosystem and the last import of each source. */
  async status(actor: Actor): Promise<VulnDbStatusView> {
    await this.admin.requireSystem(actor, 'reading the vulnerability database');
    const [revision, ecosystems, imports] = await Promise.all([
      this.store.revision(),
      this.store.counts(),
      this.store.imports(),
    ]);
    return { revision, ecosystems, imports };
  }

  /**
   * Refuses (auditing the refusal) unless `actor` may import: the API calls it before receiving an archive, so a
   * caller without the right never uploads gigabytes first.
   */
  async authorizeImport(actor: Actor, source: string): Promise<void> {
    checkSource(source);
    await this.admin.requireSystem(actor, 'importing vulnerability data', 'vulndb.import', source);
  }

  /**
   * Imports the OSV `all.zip`, directory or JSON file at `target` (whichever it is), recorded under `source`.
   * `invalid` (field `file`) when it cannot be read or is no archive, directory or JSON file.
   */
  async importFile(actor: Actor, target: string, source: string): Promise<VulnDbImportView> {
    await this.authorizeImport(actor, source);
    return this.imported(actor, target, () => importPath(this.store, target, { source }));
  }

  /** Imports the OSV `all.zip` at `file`, recorded under `source`; `invalid` (field `file`) when it is none. */
  async importArchive(actor: Actor, file: string, source: string): Promise<VulnDbImportView> {
    await this.authorizeImport(actor, source);
    return this.imported(actor, file, async () => ({
      kind: 'zip' as const,
      ...(await importZip(this.store, file, { source })),
    }));
  }

  /** Imports `records` (parsed OSV records, or JSON texts), recorded under `source`. */
  async importRecords(actor: Actor, records: readonly unknown[], source: string): Promise<VulnDbImportView> {
    await this.authorizeImport(actor, source);
    const summary = await importRecords(this.store, records, { source });
    await this.recordImport(actor, summary);
    return { kind: 'records', ...summary };
  }

  /** Runs `work`, mapping unreadable input to `invalid`, and audits what it did. */
  private async imported(
    actor: Actor,
    target: string,
    work: () => Promise<VulnDbImportView>,
  ): Promise<VulnDbImportView> {
    let summary;
    try {
      summary = await work();
    } catch (e) {
      if (e instanceof ZipError || e instanceof ImportPathError) throw invalid(e.message, 'file');
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') {
        throw invalid(`cannot read ${target}: ${(e as Error).message}`, 'file');
      }
      throw e;
    }
    await this.recordImport(actor, summary);
    return summary;
  }

  private async recordImport(actor: Actor, summary: ImportSummary): Promise<void> {
    await recordAction(this.audit, actor, 'vulndb.import', summary.source, {
      added: summary.added,
      updated: summary.updated,
      unchanged: summary.unchanged,
      invalid: summary.invalid,
      revision: summary.revision,
      changedPackages: summary.changed.length,
    });
    if (summary.changed.length > 0) await this.onImported?.(summary.revision, summary.changed);
  }
}
