/** The tables of migration 0016 (scan reports, scanning policies, external scanners), as Kysely sees them. */

export interface ScanReportsTable {
  digest: string;
  /** `ScanStatus`. */
  status: string;
  scanner: string;
  db_revision: number;
  /** JSON: the `ScanReport`, when the scan finished. */
  report: string | null;
  /** JSON: `SeverityCounts` of the report's findings. */
  counts: string | null;
  error: string | null;
  scanned_at: number | null;
  updated_at: number;
}

export interface ScanPackagesTable {
  digest: string;
  ecosystem: string;
  name: string;
}

export interface ScanPoliciesTable {
  namespace: string;
  /** JSON: the policy (`scanning/policy.ts`). */
  document: string;
  updated_by: string | null;
  updated_at: number;
}

export interface ScannersTable {
  name: string;
  url: string;
  /** The `Authorization` header value sent to the adapter, sealed; null for none. */
  authorization: string | null;
  created_at: number;
}

export interface ScanTables {
  scan_reports: ScanReportsTable;
  scan_packages: ScanPackagesTable;
  scan_policies: ScanPoliciesTable;
  scanners: ScannersTable;
}
