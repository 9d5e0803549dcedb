/**
 * The VulnDbStore port: the offline vulnerability database, OSV advisories imported in batches and looked up by
 * package. Implemented over the metadata database by `KyselyVulnDbStore` (migration 0015).
 *
 * Package keys are (base ecosystem, normalised name): the caller normalises (`scanning/vulndb/package-key.ts`);
 * the store compares them exactly. Contract: every method is atomic.
 */

/** A package as the database indexes it: base ecosystem (`Debian`, `PyPI`...) and normalised name. */
export interface PackageKey {
  readonly ecosystem: string;
  readonly name: string;
}

/** A package an advisory names, with the release suffix of its ecosystem (`12`, `v3.19`) or `''`. */
export interface AffectedKey extends PackageKey {
  readonly release: string;
}

/** One advisory to write. */
export interface NewAdvisory {
  readonly id: string;
  /** RFC 3339, as the record says. */
  readonly modified: string;
  readonly published: string | null;
  readonly withdrawn: string | null;
  readonly summary: string | null;
  /** The record to keep (trimmed OSV JSON, re-parsed when matching). */
  readonly record: string;
  /** The packages it names (deduplicated by the store). */
  readonly affected: readonly AffectedKey[];
}

/** What writing one batch did. */
export interface BatchResult {
  readonly added: number;
  readonly updated: number;
  /** Records whose `modified` was not newer than the stored one: left as they were. */
  readonly unchanged: number;
  /** The packages named by a written advisory, before or after the write (deduplicated). */
  readonly changed: readonly PackageKey[];
  /** The database revision after the batch (grown by one when anything was written). */
  readonly revision: number;
}

/** A stored advisory, as candidates for a match are returned. */
export interface StoredAdvisory {
  readonly id: string;
  readonly modified: Date;
  readonly withdrawn: Date | null;
  /** The stored record (JSON text). */
  readonly record: string;
}

/** What one import did, per source. */
export interface ImportRecord {
  readonly source: string;
  readonly importedAt: Date;
  readonly added: number;
  readonly updated: number;
  readonly unchanged: number;
  readonly invalid: number;
  /** The database revision when it ended. */
  readonly revision: number;
}

/** Counts of one base ecosystem. */
export interface EcosystemCount {
  readonly ecosystem: string;
  /** Advisories naming a package of the ecosystem and not withdrawn. */
  readonly advisories: number;
  /** Withdrawn ones. */
  readonly withdrawn: number;
}

export interface VulnDbStore {
  /**
   * Writes `advisories` in one transaction: each is inserted, or replaces the stored one (its affected packages
   * included) when its `modified` is later; otherwise it is counted unchanged and left alone. Ids repeated in the
   * batch: the last one counts. The revision grows by one when anything was written.
   */
  writeBatch(advisories: readonly NewAdvisory[], source: string): Promise<BatchResult>;

  /**
   * The advisories naming any of `keys` (any release), not withdrawn, each with the keys it names among `keys`;
   * an advisory naming several of them is returned once. Order: by id.
   */
  candidates(keys: readonly PackageKey[]): Promise<{ advisory: StoredAdvisory; keys: PackageKey[] }[]>;

  /**
   * Which of `keys` some non-withdrawn advisory names, with the ids of those advisories (sorted). Keys no advisory
   * names are absent. Uses the (ecosystem, name) index only: cheap for thousands of keys.
   */
  affectedBy(keys: readonly PackageKey[]): Promise<Map<string, { key: PackageKey; ids: string[] }>>;

  /** One advisory by id (withdrawn ones too), or null. */
  get(id: string): Promise<StoredAdvisory | null>;

  /** The database revision: 0 before the first write, then grows with every batch that changed something. */
  revision(): Promise<number>;

  /** Records (replaces) what the last import of `source` did, stamped now. */
  recordImport(record: Omit<ImportRecord, 'importedAt'>): Promise<ImportRecord>;

  /** Every source's last import, ordered by source. */
  imports(): Promise<ImportRecord[]>;

  /** Advisory counts per base ecosystem, ordered by ecosystem. */
  counts(): Promise<EcosystemCount[]>;
}

/** The map key `affectedBy` uses for a package key: ecosystem and name joined by a NUL. */
export function keyString(key: PackageKey): string {
  return `${key.ecosystem}\u0000${key.name}`;
}
