/**
 * Scanning: inventories of pushed images matched against the vulnerability database, stored per manifest digest;
 * rematching when the database changes; and the pull check of a namespace's scanning policy (`checkPull`).
 *
 * Why matching is separate from reading layers: the inventory of a digest never changes, its findings change
 * with the database. A scan reads the layers once and stores the inventory with the findings; a database import
 * only rematches the stored inventories holding a package whose advisories changed, without reading a layer.
 * A report matched against an older database revision is rematched on the pull path too, before a decision, so
 * an import protects at once rather than when the rematch job reaches the image.
 *
 * Scans are jobs (at least once, on any instance): scanning the same digest twice stores the same report, and a
 * report is keyed by digest, so two instances racing on one image write the same row.
 */
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { DomainEvent } from '../events/event.ts';
import type { EventSubscriber } from '../events/relay.ts';
import { PermanentJobError, type JobQueue } from '../jobs/job.ts';
import { silentLogger, type Logger } from '../logger.ts';
import type { PackageKey, ScannerRecord, ScanStore, StoredScan } from '../metadata/scan-store.ts';
import type { ManifestRecord, MetadataStore } from '../metadata/store.ts';
import { namespaceOf } from '../metadata/usage-accounting.ts';
import type { Digest } from '../oci/digest.ts';
import {
  PullRefusedError,
  pullWarning,
  type PullDecision,
  type PullPolicy,
} from '../registry/pull-policy.ts';
import { classifyManifest, indexChildren } from '../signing/artifacts.ts';
import type { StorageDriver } from '../storage/driver.ts';
import { blobKey } from '../storage/paths.ts';
import { dedupePackages, inventory } from './inventory/inventory.ts';
import { LayerError } from './inventory/errors.ts';
import type { OsInfo, Package } from './inventory/types.ts';
import { packageKey } from './vulndb/package-key.ts';
import {
  BUILTIN_SCANNER,
  blockingFindings,
  DEFAULT_SCAN_POLICY,
  parseScanPolicy,
  type ScanPolicy,
} from './policy.ts';
import { summarize, type Finding, type ScanReport, type ScannerInfo } from './report.ts';

/** The vulnerability database as scanning uses it. */
export interface VulnerabilityMatcher {
  /** The database's revision: grows with every import that changed something; 0 when empty. */
  revision(): Promise<number>;
  /** The findings of `packages` installed on `os` (null: unknown OS, only language packages match). */
  match(os: OsInfo | null, packages: readonly Package[]): Promise<Finding[]>;
}

/** External scanners (Harbor's Pluggable Scanner API) as scanning uses them. */
export interface ExternalScanning {
  /**
   * Has `scanner` scan `manifest` (an image manifest or index in `repository`) and resolves to its report.
   * Throws `RetryLaterError` while the scanner is busy or unreachable, `PermanentJobError` when it refuses.
   */
  scan(scanner: ScannerRecord, manifest: ManifestRecord, signal: AbortSignal): Promise<ScanReport>;
}

/** Called after a built-in scan stored its report (e.g. to attach SBOMs); errors are logged, not raised. */
export type AfterScan = (manifest: ManifestRecord, report: ScanReport, policy: ScanPolicy) => Promise<void>;

/** 412 for a pull of a vulnerable (or unscanned, when required) image under an enforcing policy. */
export class VulnerableImageError extends PullRefusedError {
  constructor(message: string, repository: string, digest: Digest, findings: readonly string[]) {
    super(message, findings.length > 0 ? 'vulnerable image' : 'image not scanned', {
      repository,
      digest,
      vulnerabilities: findings,
    });
  }
}

export interface ScanServiceDeps {
  readonly store: ScanStore;
  readonly metadata: MetadataStore;
  readonly storage: StorageDriver;
  readonly matcher: VulnerabilityMatcher;
  readonly external?: ExternalScanning;
  /** Where scans are enqueued (absent: only `scanNow` scans). */
  readonly jobs?: JobQueue;
  readonly afterScan?: AfterScan;
  /**
   * Opens a layer blob of `repository` (default: read from storage). The registry's blob service reads through
   * the pull-through cache, which fetches what a cached namespace does not hold yet.
   */
  readonly openLayer?: (repository: string, digest: Digest, size: number) => Promise<Readable>;
  readonly logger?: Logger;
  /** Observes each scan's outcome (`done`, `failed`, `unsupported`) and duration (metrics). */
  readonly onScanned?: (scanner: string, outcome: string, seconds: number) => void;
  /** The clock. Default `Date.now`. */
  readonly now?: () => number;
  /** How long a namespace's policy and the database revision are cached (ms). Default 2 s. */
  readonly cacheTtlMs?: number;
  /** The built-in scanner's version, as reports name it. */
  readonly version?: string;
}

/** The job queue of scans; payload `{ repository, digest }`. */
export const SCAN_QUEUE = 'scanning.scan';
/** The job queue of rematches after a database import; payload `{ revision, keys }` (keys null: every report). */
export const REMATCH_QUEUE = 'scanning.rematch';

const REMATCH_PAGE = 100;
/** How many blocking ids a refusal names. */
const NAMED_IN_REFUSAL = 5;

/** The package keys a report is indexed by: names the database may match on (binary and source). */
export function packageKeys(packages: readonly Package[]): PackageKey[] {
  const out: PackageKey[] = [];
  for (const pkg of packages) {
    const names = new Set([pkg.name, pkg.sourceName ?? pkg.name]);
    for (const name of names) out.push(packageKey(pkg.ecosystem, name));
  }
  return out;
}

/** The union of platform reports of an index: packages deduplicated by purl, findings by id and purl. */
export function unionReports(scanner: ScannerInfo, reports: readonly ScanReport[]): ScanReport {
  const findings = new Map<string, Finding>();
  for (const report of reports) {
    for (const finding of report.findings) {
      findings.set(`${finding.id}\u0000${finding.package.purl ?? finding.package.name}`, finding);
    }
  }
  return {
    scanner,
    os: reports.find((report) => report.os !== null)?.os ?? null,
    packages: dedupePackages(reports.flatMap((report) => report.packages)),
    findings: [...findings.values()],
  };
}

/** Layer media types a scanner reads: filesystem changesets (tar, compressed or not; Docker's too). */
function isFilesystemLayer(mediaType: string): boolean {
  return (
    mediaType.startsWith('application/vnd.oci.image.layer.') ||
    mediaType.startsWith('application/vnd.docker.image.rootfs.diff.tar')
  );
}

interface LayerDescriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size?: number;
}

function layersOf(payload: Buffer): LayerDescriptor[] {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as { layers?: unknown };
    if (!Array.isArray(parsed.layers)) return [];
    return parsed.layers.filter(
      (layer): layer is LayerDescriptor =>
        typeof layer === 'object' &&
        layer !== null &&
        typeof (layer as { mediaType?: unknown }).mediaType === 'string' &&
        typeof (layer as { digest?: unknown }).digest === 'string',
    );
  } catch {
    return [];
  }
}

/**
 * True when the stored report was produced by the built-in scanner: only those hold an inventory to rematch. The
 * row's `scanner` is not enough: it names the scanner of a pending (or failed) rescan, while the report kept
 * meanwhile may be an external scanner's, whose findings come without packages.
 */
function hasBuiltinReport(stored: StoredScan | null): stored is StoredScan & { report: ScanReport } {
  return stored?.report != null && stored.report.scanner.name === BUILTIN_SCANNER;
}

/** A scan that cannot produce a report, and why (stored as the digest's error). */
class Unscannable extends Error {
  constructor(
    message: string,
    readonly status: 'failed' | 'unsupported',
  ) {
    super(message);
  }
}

export class ScanService implements PullPolicy {
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly cacheTtlMs: number;
  private readonly policies = new Map<string, { policy: ScanPolicy; until: number }>();
  private revisionCache: { revision: number; until: number } | undefined;
  readonly scanner: ScannerInfo;

  constructor(private readonly deps: ScanServiceDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.cacheTtlMs = deps.cacheTtlMs ?? 2000;
    this.scanner = { name: BUILTIN_SCANNER, vendor: 'Berth', version: deps.version ?? '0' };
  }

  // --- policies -----------------------------------------------------------------------------------------------

  /** The namespace's policy (the default, which scans on push and refuses nothing, when never set). */
  async policyOf(namespace: string): Promise<ScanPolicy> {
    const cached = this.policies.get(namespace);
    if (cached !== undefined && cached.until > this.now()) return cached.policy;
    const record = await this.deps.store.getPolicy(namespace);
    let policy = DEFAULT_SCAN_POLICY;
    if (record !== null) {
      try {
        policy = parseScanPolicy(record.document);
      } catch (e) {
        // Stored documents were checked when written; one that no longer parses refuses what it can.
        this.logger.error({ namespace, err: e }, 'stored scanning policy does not parse');
        policy = { ...DEFAULT_SCAN_POLICY, mode: 'enforce', severity: 'low', requireScan: true };
      }
    }
    this.policies.set(namespace, { policy, until: this.now() + this.cacheTtlMs });
    return policy;
  }

  /**
   * Replaces the namespace's policy (checked: throws ScanPolicyError naming the first problem, or
   * UnknownScannerError when it names a scanner that is not registered).
   */
  async setPolicy(namespace: string, document: unknown, updatedBy: string | null): Promise<ScanPolicy> {
    const policy = parseScanPolicy(document);
    if (policy.scanner !== BUILTIN_SCANNER && (await this.deps.store.getScanner(policy.scanner)) === null) {
      throw new UnknownScannerError(policy.scanner);
    }
    await this.deps.store.putPolicy(namespace, policy, updatedBy, new Date(this.now()));
    this.policies.set(namespace, { policy, until: this.now() + this.cacheTtlMs });
    return policy;
  }

  /** Removes the namespace's policy (back to the default); false when it had none. */
  async deletePolicy(namespace: string): Promise<boolean> {
    this.policies.delete(namespace);
    return this.deps.store.deletePolicy(namespace);
  }

  // --- triggers -----------------------------------------------------------------------------------------------

  /** The event subscriber that enqueues a scan of every image pushed into a namespace that scans on push. */
  get subscriber(): EventSubscriber {
    return {
      name: 'scanning',
      handle: async (events: readonly DomainEvent[]) => {
        for (const event of events) {
          if (event.type !== 'manifest.pushed' || event.target.digest === undefined) continue;
          const policy = await this.policyOf(namespaceOf(event.target.repository));
          if (!policy.scanOnPush) continue;
          await this.enqueue(event.target.repository, event.target.digest, `push:${event.target.digest}`);
        }
      },
    };
  }

  /**
   * Enqueues a scan of `digest` in `repository` (marking it queued unless a report exists); `dedupeKey` makes
   * repeated requests one job. Without a job queue, does nothing and returns false.
   */
  async enqueue(repository: string, digest: Digest, dedupeKey?: string): Promise<boolean> {
    if (this.deps.jobs === undefined) return false;
    const id = await this.deps.jobs.enqueue(
      SCAN_QUEUE,
      { repository, digest },
      { dedupeKey: dedupeKey ?? `scan:${digest}:${this.now()}` },
    );
    if (id !== null) {
      const existing = await this.deps.store.getScan(digest);
      if (existing === null || existing.status !== 'done') {
        const { scanner } = await this.policyOf(namespaceOf(repository));
        await this.deps.store.markPending(digest, 'queued', scanner, new Date(this.now()));
      }
    }
    return id !== null;
  }

  /**
   * Called after a database import changed the advisories of `keys` (null: possibly any package): enqueues the
   * rematch of the reports holding them.
   */
  async databaseChanged(revision: number, keys: readonly PackageKey[] | null): Promise<void> {
    this.revisionCache = undefined;
    if (keys !== null && keys.length === 0) return;
    await this.deps.jobs?.enqueue(REMATCH_QUEUE, { revision, keys }, { dedupeKey: `rematch:${revision}` });
  }

  /**
   * Registers the scan and rematch job handlers on `runner`. Scans read whole images and match them: one at a
   * time per instance, so scanning never takes more than a core from serving.
   */
  register(runner: {
    register<P>(
      queue: string,
      handler: (payload: P, context: { signal: AbortSignal }) => Promise<void>,
      options?: { maxAttempts?: number; concurrency?: number },
    ): void;
  }): void {
    runner.register<{ repository: string; digest: Digest }>(
      SCAN_QUEUE,
      async (payload, context) => {
        await this.scanNow(payload.repository, payload.digest, context.signal);
      },
      { maxAttempts: 3, concurrency: 1 },
    );
    runner.register<{ revision: number; keys: PackageKey[] | null }>(
      REMATCH_QUEUE,
      async (payload, context) => {
        const count = await this.rematch(payload.keys, context.signal);
        const orphans = await this.deps.store.deleteOrphans();
        this.logger.info({ revision: payload.revision, reports: count, orphans }, 'scan reports rematched');
      },
      { concurrency: 1 },
    );
  }

  // --- scanning -----------------------------------------------------------------------------------------------

  /**
   * Scans `digest` in `repository` now with the namespace's scanner and stores the outcome; resolves to the
   * stored scan (null when the manifest is gone). A scan that cannot be done is stored as `failed` or
   * `unsupported`; a failure the job runner should retry (`RetryLaterError`) is thrown after marking nothing.
   */
  async scanNow(repository: string, digest: Digest, signal?: AbortSignal): Promise<StoredScan | null> {
    const manifest = await this.deps.metadata.getManifest(repository, digest);
    if (manifest === null) return null;
    const policy = await this.policyOf(namespaceOf(repository));
    const now = (): Date => new Date(this.now());
    const started = performance.now();
    let outcome = 'done';
    try {
      await this.deps.store.markPending(digest, 'scanning', policy.scanner, now());
      if (policy.scanner !== BUILTIN_SCANNER) {
        await this.scanExternally(policy.scanner, manifest, signal ?? new AbortController().signal);
      } else {
        const report = await this.scanBuiltin(manifest, signal);
        if (this.deps.afterScan !== undefined && policy.attachSboms) {
          await this.deps.afterScan(manifest, report, policy).catch((e: unknown) => {
            this.logger.warn({ repository, digest, err: e }, 'after-scan step failed');
          });
        }
      }
    } catch (e) {
      outcome = e instanceof Unscannable ? e.status : 'failed';
      if (e instanceof Unscannable) {
        await this.deps.store.markEnded(digest, e.status, e.message, now());
      } else if (e instanceof PermanentJobError) {
        await this.deps.store.markEnded(digest, 'failed', e.message, now());
        throw e;
      } else {
        await this.deps.store.markEnded(digest, 'failed', e instanceof Error ? e.message : String(e), now());
        throw e;
      }
    } finally {
      this.deps.onScanned?.(policy.scanner, outcome, (performance.now() - started) / 1000);
    }
    return this.deps.store.getScan(digest);
  }

  /** Built-in scan of an image manifest or index; stores and returns the report. */
  private async scanBuiltin(manifest: ManifestRecord, signal?: AbortSignal): Promise<ScanReport> {
    const cls = classifyManifest(manifest.payload, manifest.mediaType);
    if (cls.kind !== 'image') {
      throw new Unscannable(`a ${cls.kind} manifest is not an image: nothing to scan`, 'unsupported');
    }
    const revision = await this.currentRevision(true);
    let report: ScanReport;
    if (cls.isIndex) {
      const reports: ScanReport[] = [];
      for (const child of indexChildren(manifest.payload)) {
        signal?.throwIfAborted();
        const record = await this.deps.metadata.getManifest(manifest.repository, child);
        if (record === null) continue; // a sparse index: the platform is not here
        const childClass = classifyManifest(record.payload, record.mediaType);
        if (childClass.kind !== 'image' || childClass.isIndex) continue; // attestations, nested indexes
        const stored = await this.deps.store.getScan(child);
        if (stored?.status === 'done' && hasBuiltinReport(stored)) {
          reports.push(await this.rematchIfStale(stored, revision));
        } else {
          reports.push(await this.scanImage(record, revision, signal));
        }
      }
      if (reports.length === 0)
        throw new Unscannable('the index lists no image manifest held here', 'unsupported');
      report = unionReports(this.scanner, reports);
      await this.store(manifest.digest, report, revision);
    } else {
      report = await this.scanImage(manifest, revision, signal);
    }
    return report;
  }

  /** Reads an image manifest's layers into an inventory, matches it, stores the report. */
  private async scanImage(
    manifest: ManifestRecord,
    revision: number,
    signal?: AbortSignal,
  ): Promise<ScanReport> {
    const layers = layersOf(manifest.payload).filter((layer) => isFilesystemLayer(layer.mediaType));
    if (layers.length === 0) throw new Unscannable('the image has no filesystem layer', 'unsupported');
    const storage = this.deps.storage;
    const open =
      this.deps.openLayer ?? ((_repository: string, digest: Digest) => storage.read(blobKey(digest)));
    const repository = manifest.repository;
    async function* blobs(): AsyncGenerator<Readable> {
      for (const layer of layers) {
        signal?.throwIfAborted();
        let body: Readable;
        try {
          body = await open(repository, layer.digest, typeof layer.size === 'number' ? layer.size : 0);
        } catch (e) {
          throw new Unscannable(`layer ${layer.digest} cannot be read: ${(e as Error).message}`, 'failed');
        }
        yield body;
      }
    }
    let found;
    try {
      found = await inventory(blobs());
    } catch (e) {
      if (e instanceof LayerError) throw new Unscannable(e.message, 'failed');
      throw e;
    }
    const findings = await this.deps.matcher.match(found.os, found.packages);
    const report: ScanReport = { scanner: this.scanner, os: found.os, packages: found.packages, findings };
    await this.store(manifest.digest, report, revision);
    return report;
  }

  private async scanExternally(name: string, manifest: ManifestRecord, signal: AbortSignal): Promise<void> {
    const scanner = await this.deps.store.getScanner(name);
    if (scanner === null || this.deps.external === undefined) {
      throw new PermanentJobError(`scanner ${name} is not registered`);
    }
    const report = await this.deps.external.scan(scanner, manifest, signal);
    await this.deps.store.putReport(
      manifest.digest,
      name,
      report,
      summarize(report.findings),
      0,
      packageKeys(report.packages),
      new Date(this.now()),
    );
  }

  private async store(digest: Digest, report: ScanReport, revision: number): Promise<void> {
    await this.deps.store.putReport(
      digest,
      BUILTIN_SCANNER,
      report,
      summarize(report.findings),
      revision,
      packageKeys(report.packages),
      new Date(this.now()),
    );
  }

  // --- rematching ---------------------------------------------------------------------------------------------

  /** Rematches the built-in reports holding any of `keys` (null: all); resolves to how many it rematched. */
  async rematch(keys: readonly PackageKey[] | null, signal?: AbortSignal): Promise<number> {
    const revision = await this.currentRevision(true);
    let after: Digest | undefined;
    let count = 0;
    for (;;) {
      const page =
        keys === null
          ? await this.deps.store.reportedDigests(BUILTIN_SCANNER, REMATCH_PAGE, after)
          : await this.deps.store.digestsWithPackages(keys, REMATCH_PAGE, after);
      for (const digest of page) {
        signal?.throwIfAborted();
        const stored = await this.deps.store.getScan(digest);
        if (!hasBuiltinReport(stored)) continue;
        await this.rematchIfStale(stored, revision);
        count++;
      }
      if (page.length < REMATCH_PAGE) return count;
      after = page[page.length - 1];
    }
  }

  /** The stored report, rematched and stored again when it was matched against an older database revision. */
  private async rematchIfStale(stored: StoredScan, revision: number): Promise<ScanReport> {
    const report = stored.report!;
    if (stored.dbRevision >= revision) return report;
    const findings = await this.deps.matcher.match(report.os, report.packages);
    const rematched: ScanReport = { ...report, findings };
    await this.store(stored.digest, rematched, revision);
    return rematched;
  }

  private async currentRevision(fresh = false): Promise<number> {
    if (!fresh && this.revisionCache !== undefined && this.revisionCache.until > this.now()) {
      return this.revisionCache.revision;
    }
    const revision = await this.deps.matcher.revision();
    this.revisionCache = { revision, until: this.now() + this.cacheTtlMs };
    return revision;
  }

  // --- reading ------------------------------------------------------------------------------------------------

  /**
   * The stored scan of `digest`, its built-in findings rematched first when the database changed since. Null
   * when it was never scanned or queued.
   */
  async scanOf(digest: Digest): Promise<StoredScan | null> {
    const stored = await this.deps.store.getScan(digest);
    if (!hasBuiltinReport(stored)) return stored;
    const revision = await this.currentRevision();
    if (stored.dbRevision >= revision) return stored;
    await this.rematchIfStale(stored, revision);
    return this.deps.store.getScan(digest);
  }

  // --- the pull check -----------------------------------------------------------------------------------------

  /**
   * Decides a GET or HEAD of `manifest` under its namespace's policy: passes when the mode is `off`, what is not
   * an image, a principal `bypass` says may push, and an image whose report has no blocking finding (see
   * `blockingFindings`). An image without a finished scan passes unless the policy requires one (a scan is then
   * enqueued). Otherwise `warn` gives a warning and `enforce` throws VulnerableImageError (412).
   */
  async checkPull(manifest: ManifestRecord, bypass: () => Promise<boolean>): Promise<PullDecision> {
    const policy = await this.policyOf(namespaceOf(manifest.repository));
    if (policy.mode === 'off') return { outcome: 'pass', reason: 'off' };
    if (classifyManifest(manifest.payload, manifest.mediaType).kind !== 'image') {
      return { outcome: 'pass', reason: 'not-image' };
    }
    const stored = await this.scanOf(manifest.digest);
    const image = `image ${manifest.repository}@${manifest.digest}`;
    let message: string;
    let ids: string[] = [];
    if (stored === null || stored.report === null) {
      if (stored === null)
        await this.enqueue(manifest.repository, manifest.digest, `pull:${manifest.digest}`);
      if (!policy.requireScan) return { outcome: 'pass', reason: 'not-scanned' };
      if (await bypass()) return { outcome: 'pass', reason: 'bypass' };
      message =
        stored?.status === 'unsupported'
          ? `${image} cannot be scanned (${stored.error ?? 'unsupported'}) and the policy requires a scan`
          : stored?.status === 'failed'
            ? `${image} could not be scanned (${stored.error ?? 'failed'}) and the policy requires a scan`
            : `${image} has not been scanned yet and the policy requires a scan`;
    } else {
      const blocking = blockingFindings(stored.report.findings, policy, new Date(this.now()));
      if (blocking.length === 0) return { outcome: 'pass', reason: 'clean' };
      if (await bypass()) return { outcome: 'pass', reason: 'bypass' };
      ids = [...new Set(blocking.map((finding) => finding.id))];
      const named = ids.slice(0, NAMED_IN_REFUSAL).join(', ');
      const more = ids.length > NAMED_IN_REFUSAL ? ` and ${ids.length - NAMED_IN_REFUSAL} more` : '';
      message = `${image} has ${ids.length} ${ids.length === 1 ? 'vulnerability' : 'vulnerabilities'} of severity ${policy.severity} or higher: ${named}${more}`;
    }
    if (policy.mode === 'enforce') {
      throw new VulnerableImageError(message, manifest.repository, manifest.digest, ids);
    }
    return pullWarning(message);
  }
}

/** A policy naming a scanner that is not registered. */
export class UnknownScannerError extends Error {
  constructor(readonly scanner: string) {
    super(`no scanner named ${scanner} is registered`);
    this.name = 'UnknownScannerError';
  }
}
