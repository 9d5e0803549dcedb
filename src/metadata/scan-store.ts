/**
 * What scanning keeps in the metadata database: the latest report of each manifest digest, the package keys of
 * each report (to find what a vulnerability database import affects), the scanning policy of each namespace,
 * and the registered external scanners. Implemented by `KyselyScanStore` (migration 0016).
 */
import type { Digest } from '../oci/digest.ts';
import type { PackageKey } from './vulndb-store.ts';
import type { ScanReport, SeverityCounts } from '../scanning/report.ts';

/**
 * Where a digest's scan stands: `queued` (a job will scan it), `scanning`, `done` (a report exists), `failed`
 * (the last attempt failed; `error` says why), `unsupported` (not something a scanner reads: an artifact, a
 * signature, a manifest whose layers are not a filesystem).
 */
export type ScanStatus = 'queued' | 'scanning' | 'done' | 'failed' | 'unsupported';

/** A stored scan of one digest. */
export interface StoredScan {
  readonly digest: Digest;
  readonly status: ScanStatus;
  /** Which scanner produced (or will produce) the report: `berth` or an external scanner's name. */
  readonly scanner: string;
  /** The vulnerability database revision the findings were matched against (0 for external scanners). */
  readonly dbRevision: number;
  /** The report, when a scan finished; kept while a rescan is queued or running, or after it failed. */
  readonly report: ScanReport | null;
  readonly counts: SeverityCounts | null;
  readonly error: string | null;
  /** When the report was produced. */
  readonly scannedAt: Date | null;
  readonly updatedAt: Date;
}

/** A package key as reports index them: the OSV base ecosystem and the name the database matches on. */
export type { PackageKey };

/** A namespace's stored scanning policy. */
export interface ScanPolicyRecord {
  readonly namespace: string;
  readonly document: unknown;
  readonly updatedBy: string | null;
  readonly updatedAt: Date;
}

/** A registered external scanner. */
export interface ScannerRecord {
  readonly name: string;
  /** Base URL of the adapter (its API is under `<url>/api/v1`). */
  readonly url: string;
  /** The `Authorization` value sent to the adapter, sealed (see `remote/secret-box.ts`); null for none. */
  readonly authorization: string | null;
  readonly createdAt: Date;
}

export interface ScanStore {
  /** The stored scan of `digest`, or null when it was never queued. */
  getScan(digest: Digest): Promise<StoredScan | null>;

  /**
   * Marks `digest` `queued` or `scanning` for `scanner`, creating the row when absent; keeps any stored report
   * (so a rescan does not hide the last result), clears the error.
   */
  markPending(digest: Digest, status: 'queued' | 'scanning', scanner: string, now: Date): Promise<void>;

  /**
   * Stores a finished scan: the report, its counts, the database revision, and the report's package keys
   * (replacing the digest's previous keys), in one transaction. Status becomes `done`.
   */
  putReport(
    digest: Digest,
    scanner: string,
    report: ScanReport,
    counts: SeverityCounts,
    dbRevision: number,
    keys: readonly PackageKey[],
    now: Date,
  ): Promise<void>;

  /** Marks `digest` `failed` or `unsupported` with `error` (a stored report, if any, is kept). */
  markEnded(digest: Digest, status: 'failed' | 'unsupported', error: string, now: Date): Promise<void>;

  /**
   * Digests with a `done` report holding any of `keys`, in digest order after `after`, at most `limit`. Empty
   * `keys`: nothing.
   */
  digestsWithPackages(keys: readonly PackageKey[], limit: number, after?: Digest): Promise<Digest[]>;

  /** Digests with a `done` report from `scanner`, in digest order after `after`, at most `limit`. */
  reportedDigests(scanner: string, limit: number, after?: Digest): Promise<Digest[]>;

  /** Deletes the scans of digests that no repository holds any more; returns how many. */
  deleteOrphans(): Promise<number>;

  /** The namespace's scanning policy, or null when none was set. */
  getPolicy(namespace: string): Promise<ScanPolicyRecord | null>;

  /** Every stored policy, by namespace. */
  listPolicies(): Promise<ScanPolicyRecord[]>;

  /** Replaces the namespace's policy (the caller checked it). */
  putPolicy(
    namespace: string,
    document: unknown,
    updatedBy: string | null,
    now: Date,
  ): Promise<ScanPolicyRecord>;

  /** Deletes the namespace's policy; false when there was none. */
  deletePolicy(namespace: string): Promise<boolean>;

  /** Every registered scanner, by name. */
  listScanners(): Promise<ScannerRecord[]>;

  /** The scanner named `name`, or null. */
  getScanner(name: string): Promise<ScannerRecord | null>;

  /** Registers or replaces scanner `name`. */
  putScanner(record: ScannerRecord): Promise<void>;

  /** Removes scanner `name`; false when there was none. */
  deleteScanner(name: string): Promise<boolean>;
}
