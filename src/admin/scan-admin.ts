/**
 * Vulnerability scanning as things to manage: a namespace's scanning policy (show, set, remove; for its admins),
 * the scan report of one manifest with filters and as CSV (for anyone who may pull the repository), requesting a
 * scan (for those who may push), and the registered external scanners (system administrators). Changes are
 * audited (`scanning.policy.set`, `scanning.policy.remove`, `scanning.scan`, `scanning.scanner.set`,
 * `scanning.scanner.remove`); reads are not. Used by the admin API (`http/admin/scanning.ts`) and the CLI
 * (`berth scan`, as the system).
 */
import type { AuditLog } from '../auth/audit.ts';
import type { ScannerRecord, ScanStatus, ScanStore } from '../metadata/scan-store.ts';
import type { ManifestRecord, MetadataStore } from '../metadata/store.ts';
import { namespaceOf } from '../metadata/usage-accounting.ts';
import type { Digest } from '../oci/digest.ts';
import type { SecretBox } from '../remote/secret-box.ts';
import type { OsInfo, Package } from '../scanning/inventory/types.ts';
import { sbomOf, type SbomFormat, type SbomSettings } from '../scanning/sbom/documents.ts';
import {
  allowlisted,
  BUILTIN_SCANNER,
  blockingFindings,
  DEFAULT_SCAN_POLICY,
  parseScanPolicy,
  ScanPolicyError,
  type ScanPolicy,
} from '../scanning/policy.ts';
import {
  atOrAbove,
  summarize,
  type Finding,
  type FindingSeverity,
  type ScannerInfo,
  type SeverityCounts,
} from '../scanning/report.ts';
import { UnknownScannerError, type ScanService } from '../scanning/service.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { recordAction } from './audit-action.ts';
import { conflict, invalid, notFound } from './errors.ts';
import { resolveManifest } from './manifest-reference.ts';
import { checkNamespaceName } from './validation.ts';

/** A namespace's scanning policy as the API and the CLI show it. */
export interface ScanPolicyView {
  readonly namespace: string;
  /** With its defaults filled in (the default policy when never set). */
  readonly policy: ScanPolicy;
  readonly updatedBy: string | null;
  readonly updatedAt: Date | null;
}

/** One finding as the report shows it, with what the namespace's allowlist says of it. */
export interface FindingView extends Finding {
  /** The allowlist entry covering it (id, expiry, reason), or null. */
  readonly allowlisted: { readonly id: string; readonly expiresAt: string | null } | null;
  /** Whether it blocks pulls under the namespace's policy (whatever the policy's mode). */
  readonly blocking: boolean;
}

/** Which findings a report view lists. */
export interface FindingFilter {
  /** Only findings at this severity or above. */
  readonly severity?: FindingSeverity;
  /** Only findings with a known fix. */
  readonly fixable?: boolean;
  /** Only findings about this package name. */
  readonly package?: string;
  /** Only this vulnerability (id or alias, case-insensitively). */
  readonly id?: string;
  /** Include the installed packages in the view. */
  readonly packages?: boolean;
}

/** The scan of one manifest. */
export interface ScanView {
  readonly repository: string;
  readonly digest: Digest;
  /** `none` when the manifest was never scanned nor queued. */
  readonly status: ScanStatus | 'none';
  readonly scanner: ScannerInfo | null;
  readonly scannedAt: Date | null;
  readonly error: string | null;
  /** The vulnerability database revision the findings were matched against (built-in scans). */
  readonly databaseRevision: number | null;
  readonly os: OsInfo | null;
  /** Counts over every finding (before filters and allowlist). */
  readonly summary: SeverityCounts;
  /** The namespace's policy applied to the report. */
  readonly policy: {
    readonly mode: ScanPolicy['mode'];
    readonly severity: ScanPolicy['severity'];
    /** How many distinct vulnerabilities block pulls. */
    readonly blocking: number;
    readonly allowlisted: number;
  };
  readonly packageCount: number;
  /** The installed packages, when asked for. */
  readonly packages?: readonly Package[];
  /** The findings the filter kept, most severe first. */
  readonly vulnerabilities: readonly FindingView[];
}

/** A registered external scanner, without its credentials. */
export interface ScannerView {
  readonly name: string;
  readonly url: string;
  readonly authenticated: boolean;
  readonly createdAt: Date;
}

type ScanServicePort = Pick<
  ScanService,
  'policyOf' | 'setPolicy' | 'deletePolicy' | 'scanOf' | 'scanNow' | 'enqueue'
>;

const SEVERITY_RANK: Record<FindingSeverity, number> = {
  critical: 5,
  high: 4,
  medium: 3,
  low: 2,
  none: 1,
  unknown: 0,
};

export class ScanAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog | null,
    private readonly scanning: ScanServicePort,
    private readonly store: Pick<
      ScanStore,
      'getPolicy' | 'listScanners' | 'getScanner' | 'putScanner' | 'deleteScanner' | 'listPolicies'
    >,
    private readonly metadata: Pick<MetadataStore, 'getManifest' | 'getManifestByTag'>,
    private readonly secrets: SecretBox | null,
    private readonly sbom: SbomSettings,
    private readonly now: () => number = Date.now,
  ) {}

  // --- policies -----------------------------------------------------------------------------------------------

  /** The namespace's scanning policy (the default when never set). */
  async getPolicy(actor: Actor, namespace: string): Promise<ScanPolicyView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(actor, ns, 'reading the scanning policy of namespace');
    const record = await this.store.getPolicy(ns);
    return {
      namespace: ns,
      policy: record === null ? DEFAULT_SCAN_POLICY : await this.scanning.policyOf(ns),
      updatedBy: record?.updatedBy ?? null,
      updatedAt: record?.updatedAt ?? null,
    };
  }

  /** Replaces the namespace's policy (checked; an invalid one names the offending field). */
  async setPolicy(actor: Actor, namespace: string, document: unknown): Promise<ScanPolicyView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'changing the scanning policy of namespace',
      'scanning.policy.set',
    );
    let policy: ScanPolicy;
    try {
      policy = await this.scanning.setPolicy(ns, document, actor.principal?.name ?? null);
    } catch (e) {
      if (e instanceof ScanPolicyError) throw invalid(e.message, e.field);
      if (e instanceof UnknownScannerError) throw invalid(e.message, 'scanner');
      throw e;
    }
    await recordAction(this.audit, actor, 'scanning.policy.set', ns, {
      mode: policy.mode,
      severity: policy.severity,
      requireScan: policy.requireScan,
      scanner: policy.scanner,
      allowlist: policy.allowlist.length,
    });
    return this.getPolicy(actor, ns);
  }

  /** Puts the namespace back to the default policy. */
  async removePolicy(actor: Actor, namespace: string): Promise<ScanPolicyView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'removing the scanning policy of namespace',
      'scanning.policy.remove',
    );
    const removed = await this.scanning.deletePolicy(ns);
    await recordAction(this.audit, actor, 'scanning.policy.remove', ns, { removed });
    return this.getPolicy(actor, ns);
  }

  // --- reports ------------------------------------------------------------------------------------------------

  /** The manifest `reference` of `repository`, for anyone who may pull it (see `resolveManifest`). */
  private resolve(
    actor: Actor,
    repository: string,
    reference: string,
    what: string,
  ): Promise<ManifestRecord> {
    return resolveManifest(this.admin, this.metadata, actor, repository, reference, what);
  }

  /** The scan report of manifest `reference` in `repository`, its findings filtered by `filter`. */
  async report(
    actor: Actor,
    repository: string,
    reference: string,
    filter: FindingFilter = {},
  ): Promise<ScanView> {
    const record = await this.resolve(actor, repository, reference, 'reading the scan report of');
    return this.viewOf(record, filter);
  }

  /**
   * Scans manifest `reference` of `repository`: now, waiting for the report (`wait`), or by enqueueing a job.
   * For principals that may push the repository.
   */
  async scan(actor: Actor, repository: string, reference: string, wait: boolean): Promise<ScanView> {
    const record = await this.resolve(actor, repository, reference, 'scanning');
    await this.admin.requireRepositoryAction(actor, repository, 'push', 'scanning');
    if (wait) await this.scanning.scanNow(repository, record.digest);
    else await this.scanning.enqueue(repository, record.digest);
    await recordAction(this.audit, actor, 'scanning.scan', `${repository}@${record.digest}`, { wait });
    return this.viewOf(record, {});
  }

  private async viewOf(record: ManifestRecord, filter: FindingFilter): Promise<ScanView> {
    const policy = await this.scanning.policyOf(namespaceOf(record.repository));
    const stored = await this.scanning.scanOf(record.digest);
    const now = new Date(this.now());
    const findings = stored?.report?.findings ?? [];
    const blocking = new Set(blockingFindings(findings, policy, now));
    const views: FindingView[] = findings.map((finding) => {
      const entry = allowlisted(finding, policy.allowlist, now);
      return {
        ...finding,
        allowlisted: entry === undefined ? null : { id: entry.id, expiresAt: entry.expiresAt ?? null },
        blocking: blocking.has(finding),
      };
    });
    const wantedId = filter.id?.toUpperCase();
    const kept = views
      .filter(
        (f) =>
          (filter.severity === undefined ||
            (f.severity !== 'unknown' && atOrAbove(f.severity, filter.severity))) &&
          (filter.fixable !== true || f.fixedVersion !== null) &&
          (filter.package === undefined || f.package.name === filter.package) &&
          (wantedId === undefined || [f.id, ...f.aliases].some((id) => id.toUpperCase() === wantedId)),
      )
      .sort(
        (a, b) =>
          SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] ||
          (b.score ?? -1) - (a.score ?? -1) ||
          (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) ||
          (a.package.name < b.package.name ? -1 : a.package.name > b.package.name ? 1 : 0),
      );
    return {
      repository: record.repository,
      digest: record.digest,
      status: stored?.status ?? 'none',
      scanner: stored?.report?.scanner ?? null,
      scannedAt: stored?.scannedAt ?? null,
      error: stored?.error ?? null,
      databaseRevision: stored?.report ? stored.dbRevision : null,
      os: stored?.report?.os ?? null,
      summary: summarize(findings),
      policy: {
        mode: policy.mode,
        severity: policy.severity,
        blocking: new Set([...blocking].map((f) => f.id)).size,
        allowlisted: new Set(views.filter((f) => f.allowlisted !== null).map((f) => f.id)).size,
      },
      packageCount: stored?.report?.packages.length ?? 0,
      ...(filter.packages === true ? { packages: stored?.report?.packages ?? [] } : {}),
      vulnerabilities: kept,
    };
  }

  /**
   * The SBOM of manifest `reference` of `repository` in `format`, from its built-in scan; not-found when it has
   * no inventory (never scanned, not an image, or scanned by an external scanner, which reports no packages).
   */
  async sbomDocument(
    actor: Actor,
    repository: string,
    reference: string,
    format: SbomFormat,
  ): Promise<object> {
    const record = await this.resolve(actor, repository, reference, 'reading the SBOM of');
    const stored = await this.scanning.scanOf(record.digest);
    // The report's own scanner: the row's names the scanner of a pending or failed rescan.
    if (stored?.report == null || stored.report.scanner.name !== BUILTIN_SCANNER) {
      throw notFound(
        `${repository}@${record.digest} has no inventory yet: scan it with the built-in scanner first`,
      );
    }
    const subject = {
      repository,
      digest: record.digest,
      ...(reference.includes(':') ? {} : { reference }),
    };
    return sbomOf(format, subject, stored.report, record.createdAt, this.sbom);
  }

  // --- external scanners --------------------------------------------------------------------------------------

  /** The registered external scanners. */
  async listScanners(actor: Actor): Promise<ScannerView[]> {
    await this.admin.requireSystem(actor, 'listing scanners');
    return (await this.store.listScanners()).map(scannerView);
  }

  /**
   * Registers (or replaces) an external scanner: an adapter speaking Harbor's Pluggable Scanner API v1.1 at
   * `url`, sent `authorization` as its `Authorization` header when given (sealed at rest; needs a secret key).
   */
  async setScanner(
    actor: Actor,
    name: string,
    url: string,
    authorization: string | null,
  ): Promise<ScannerView> {
    await this.admin.requireSystem(actor, 'registering a scanner', 'scanning.scanner.set', name);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name) || name === 'berth') {
      throw invalid(`${JSON.stringify(name.slice(0, 120))} is not a scanner name`, 'name');
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(`${JSON.stringify(url.slice(0, 300))} is not a URL`, 'url');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw invalid('the scanner URL must be http or https', 'url');
    }
    let sealed: string | null = null;
    if (authorization !== null) {
      if (this.secrets === null || !this.secrets.configured) {
        throw conflict('storing scanner credentials needs a secret key (secrets.key or secrets.keyFile)');
      }
      sealed = await this.secrets.seal(authorization);
    }
    const record: ScannerRecord = {
      name,
      url: parsed.href.replace(/\/+$/, ''),
      authorization: sealed,
      createdAt: new Date(this.now()),
    };
    await this.store.putScanner(record);
    await recordAction(this.audit, actor, 'scanning.scanner.set', name, {
      url: record.url,
      authenticated: sealed !== null,
    });
    return scannerView(record);
  }

  /** Removes an external scanner; refused while a namespace's policy names it. */
  async removeScanner(actor: Actor, name: string): Promise<void> {
    await this.admin.requireSystem(actor, 'removing a scanner', 'scanning.scanner.remove', name);
    const users = (await this.store.listPolicies()).filter((record) => {
      try {
        return parseScanPolicy(record.document).scanner === name;
      } catch {
        return false;
      }
    });
    if (users.length > 0) {
      throw conflict(`scanner ${name} is the scanner of namespace ${users[0]!.namespace}`);
    }
    if (!(await this.store.deleteScanner(name))) throw notFound(`no scanner named ${name} is registered`);
    await recordAction(this.audit, actor, 'scanning.scanner.remove', name, {});
  }
}

function scannerView(record: ScannerRecord): ScannerView {
  return {
    name: record.name,
    url: record.url,
    authenticated: record.authorization !== null,
    createdAt: record.createdAt,
  };
}

/** The CSV text of a report's findings (RFC 4180, a header row, one row per finding). */
export function findingsCsv(view: ScanView): string {
  const header = [
    'repository',
    'digest',
    'id',
    'aliases',
    'severity',
    'score',
    'package',
    'ecosystem',
    'installed',
    'fixed',
    'purl',
    'allowlisted',
    'blocking',
    'summary',
  ];
  const rows = view.vulnerabilities.map((f) => [
    view.repository,
    view.digest,
    f.id,
    f.aliases.join(' '),
    f.severity,
    f.score === null ? '' : String(f.score),
    f.package.name,
    f.package.ecosystem,
    f.package.version,
    f.fixedVersion ?? '',
    f.package.purl ?? '',
    f.allowlisted === null ? 'false' : 'true',
    String(f.blocking),
    f.summary ?? '',
  ]);
  return [header, ...rows].map((row) => row.map(csvField).join(',')).join('\r\n') + '\r\n';
}

function csvField(value: string): string {
  // A leading =, +, - or @ would be a formula to a spreadsheet: quote it behind an apostrophe.
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n']/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
