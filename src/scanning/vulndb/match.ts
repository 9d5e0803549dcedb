/**
 * Matches an image's inventory against the vulnerability database: each package is turned into the OSV query
 * that finds its advisories, candidate advisories are loaded in batches by package key, and `matchAdvisory`
 * decides with the ecosystem's version order.
 *
 * The queries, by ecosystem:
 * - Debian and Ubuntu advisories name SOURCE packages: the query uses `sourceName ?? name` and
 *   `sourceVersion ?? version` (a binNMU's `+bN` suffix stripped from a binary version: it is not part of the
 *   source version), the release from os-release (`VERSION_ID` `12` → `Debian:12`; `22.04` → `Ubuntu:22.04`
 *   and `Ubuntu:22.04:LTS`).
 * - Alpine advisories name origin packages (`sourceName ?? name`), release `v<major>.<minor>` of `VERSION_ID`.
 * - npm, PyPI, Go and Maven: the package itself, no release.
 * A distribution package only gets a release when os-release names that distribution.
 */
import type { PackageKey, StoredAdvisory, VulnDbStore } from '../../metadata/vulndb-store.ts';
import { keyString } from '../../metadata/vulndb-store.ts';
import { matchAdvisory, type CompareVersions, type InstalledPackage } from '../affected.ts';
import { advisorySeverity } from '../cvss.ts';
import type { OsInfo, Package } from '../inventory/types.ts';
import { OsvError, parseAdvisory, type Advisory } from '../osv.ts';
import { SEVERITY_ORDER, type Finding } from '../report.ts';
import { compareVersions, VersionError, type Ecosystem } from '../versions/index.ts';
import { packageKey } from './package-key.ts';

/** Package keys per database query. */
const KEYS_PER_QUERY = 200;

const COMPARED: readonly string[] = ['Debian', 'Ubuntu', 'Alpine', 'npm', 'PyPI', 'Go', 'Maven'];

/** The comparator of a base ecosystem, or undefined when its versions have no known order. */
function compareFor(ecosystem: string): CompareVersions | undefined {
  if (!COMPARED.includes(ecosystem)) return undefined;
  return (a, b) => compareVersions(ecosystem as Ecosystem, a, b);
}

/**
 * The OSV release suffix of `ecosystem`'s packages on `os`, or undefined (language ecosystems, another
 * distribution's os-release, no `VERSION_ID`).
 */
export function releaseFor(ecosystem: Ecosystem, os: OsInfo | null): string | undefined {
  if (os === null || os.versionId === null || os.id !== ecosystem.toLowerCase()) return undefined;
  const v = os.versionId.trim();
  switch (ecosystem) {
    case 'Debian':
      // Point releases (`12.4` in some derivatives' files) still belong to the major release.
      return /^\d+/.exec(v)?.[0];
    case 'Ubuntu':
      return /^\d+\.\d+/.exec(v)?.[0];
    case 'Alpine': {
      const m = /^(\d+)\.(\d+)/.exec(v);
      return m === null ? undefined : `v${m[1]}.${m[2]}`;
    }
    default:
      return undefined;
  }
}

/** The package as the advisories of its ecosystem name it (see the module comment). */
export function osvQuery(pkg: Package, os: OsInfo | null): InstalledPackage {
  switch (pkg.ecosystem) {
    case 'Debian':
    case 'Ubuntu': {
      const version = pkg.sourceVersion ?? pkg.version.replace(/\+b\d+$/, '');
      return {
        ecosystem: pkg.ecosystem,
        release: releaseFor(pkg.ecosystem, os),
        name: pkg.sourceName ?? pkg.name,
        version,
      };
    }
    case 'Alpine':
      return {
        ecosystem: 'Alpine',
        release: releaseFor('Alpine', os),
        name: pkg.sourceName ?? pkg.name,
        version: pkg.version,
      };
    default:
      return { ecosystem: pkg.ecosystem, name: pkg.name, version: pkg.version };
  }
}

/** Reference URLs, advisories and web pages first (in record order otherwise), without repeats. */
function linksOf(advisory: Advisory): string[] {
  const rank = (type: string): number => (type === 'ADVISORY' ? 0 : type === 'WEB' ? 1 : 2);
  const sorted = advisory.references
    .map((r, i) => ({ r, i }))
    .sort((a, b) => rank(a.r.type) - rank(b.r.type) || a.i - b.i);
  return [...new Set(sorted.map(({ r }) => r.url))];
}

function match(advisory: Advisory, query: InstalledPackage): { fixed: string | null } | null {
  try {
    return matchAdvisory(advisory, query, compareFor);
  } catch (e) {
    if (!(e instanceof VersionError)) throw e;
    // A version outside the ecosystem's grammar (installed or in the record): only exact `versions` can tell.
    return matchAdvisory(advisory, query, () => undefined);
  }
}

function findingOf(advisory: Advisory, pkg: Package, fixed: string | null): Finding {
  const { severity, score, source } = advisorySeverity(advisory);
  return {
    id: advisory.id,
    // The ids of the upstream records a distribution record derives from (`DEBIAN-CVE-…` from `CVE-…`) name the
    // same vulnerability for allowlists and deduplication.
    aliases: [...new Set([...advisory.aliases, ...advisory.upstream])].filter((id) => id !== advisory.id),
    package: { ecosystem: pkg.ecosystem, name: pkg.name, version: pkg.version, purl: pkg.purl },
    fixedVersion: fixed,
    severity: source === 'none' ? 'unknown' : severity,
    score: source === 'none' ? null : score,
    summary: advisory.summary,
    links: linksOf(advisory),
  };
}

const severityRank = (f: Finding): number => SEVERITY_ORDER.indexOf(f.severity);

/** Whether one of the two lists the other's id as an alias. */
function related(a: Finding, b: Finding): boolean {
  return a.aliases.includes(b.id) || b.aliases.includes(a.id);
}

/**
 * One finding per (advisory id, package), and of two findings about one package where one lists the other as an
 * alias, the one with the CVE id (else the more severe, else the smaller id).
 */
function dedupe(findings: readonly Finding[]): Finding[] {
  const byPackage = new Map<string, Finding[]>();
  for (const f of findings) {
    const key = f.package.purl ?? `${f.package.ecosystem}\u0000${f.package.name}\u0000${f.package.version}`;
    const list = byPackage.get(key) ?? [];
    if (!list.some((g) => g.id === f.id)) list.push(f);
    byPackage.set(key, list);
  }
  const kept: Finding[] = [];
  for (const list of byPackage.values()) {
    const preferred = [...list].sort(
      (a, b) =>
        Number(b.id.startsWith('CVE-')) - Number(a.id.startsWith('CVE-')) ||
        severityRank(b) - severityRank(a) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
    const chosen: Finding[] = [];
    for (const f of preferred) if (!chosen.some((g) => related(f, g))) chosen.push(f);
    kept.push(...chosen);
  }
  return kept;
}

/**
 * The vulnerabilities of `packages` (an image's inventory, on `os`) according to `store`: one finding per
 * matching advisory and installed package (see {@link dedupe} for aliases), sorted by severity (most severe
 * first), then id, then package URL. Withdrawn advisories never match. A stored record that no longer parses is
 * passed over.
 */
export async function findVulnerabilities(
  store: Pick<VulnDbStore, 'candidates'>,
  os: OsInfo | null,
  packages: readonly Package[],
): Promise<Finding[]> {
  const queries = packages.map((pkg) => ({ pkg, query: osvQuery(pkg, os) }));
  const byKey = new Map<string, { key: PackageKey; items: typeof queries }>();
  for (const q of queries) {
    const key = packageKey(q.query.ecosystem, q.query.name);
    const entry = byKey.get(keyString(key)) ?? { key, items: [] };
    entry.items.push(q);
    byKey.set(keyString(key), entry);
  }
  const parsed = new Map<string, Advisory | null>();
  const parse = (stored: StoredAdvisory): Advisory | null => {
    let advisory = parsed.get(stored.id);
    if (advisory === undefined) {
      try {
        advisory = parseAdvisory(stored.record);
      } catch (e) {
        if (!(e instanceof OsvError)) throw e;
        advisory = null;
      }
      parsed.set(stored.id, advisory);
    }
    return advisory;
  };
  const findings: Finding[] = [];
  const keys = [...byKey.values()].map((e) => e.key);
  for (let i = 0; i < keys.length; i += KEYS_PER_QUERY) {
    const candidates = await store.candidates(keys.slice(i, i + KEYS_PER_QUERY));
    for (const { advisory: stored, keys: named } of candidates) {
      const advisory = parse(stored);
      if (advisory === null) continue;
      for (const key of named) {
        for (const { pkg, query } of byKey.get(keyString(key))?.items ?? []) {
          const m = match(advisory, query);
          if (m !== null) findings.push(findingOf(advisory, pkg, m.fixed));
        }
      }
    }
  }
  return dedupe(findings).sort(
    (a, b) =>
      severityRank(b) - severityRank(a) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) ||
      ((a.package.purl ?? '') < (b.package.purl ?? '')
        ? -1
        : (a.package.purl ?? '') > (b.package.purl ?? '')
          ? 1
          : 0),
  );
}
