/** The tables of migration 0015 (the vulnerability database), as Kysely sees them. */

export interface VulnAdvisoriesTable {
  id: string;
  /** Epoch milliseconds. */
  modified: number;
  published: number | null;
  withdrawn: number | null;
  summary: string | null;
  /** JSON: the trimmed OSV record. */
  record: string;
  source: string;
  /** The database revision of the batch that last wrote the row. */
  revision: number;
  imported_at: number;
}

export interface VulnAffectedTable {
  advisory_id: string;
  /** Base ecosystem (`Debian`, `npm`...). */
  ecosystem: string;
  /** Release suffix (`12`, `v3.19`, `22.04:LTS`) or `''`. */
  release: string;
  /** Normalised package name (PyPI: PEP 503). */
  name: string;
}

export interface VulnImportsTable {
  source: string;
  imported_at: number;
  added: number;
  updated: number;
  unchanged: number;
  invalid: number;
  revision: number;
}

export interface VulnStateTable {
  id: number;
  revision: number;
}

export interface VulnDbTables {
  vuln_advisories: VulnAdvisoriesTable;
  vuln_affected: VulnAffectedTable;
  vuln_imports: VulnImportsTable;
  vuln_state: VulnStateTable;
}
