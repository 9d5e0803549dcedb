/**
 * Whether a package version is affected by an OSV advisory, by the schema's evaluation algorithm
 * (https://ossf.github.io/osv-schema/#evaluation): a version is affected when it is listed in `versions` or lies
 * in any range; a range is walked in sorted event order, `introduced` turning vulnerability on, `fixed` (at or
 * above) and `last_affected` (above) turning it off, and `limit` events bounding the range from above. GIT
 * ranges order commits, not package versions, and are not evaluated here.
 *
 * Version order is the ecosystem's and comes from the caller as a {@link CompareVersions} function.
 */
import { normalPackageName } from './vulndb/package-key.ts';
import type { Advisory, Affected, AffectedRange, RangeEvent } from './osv.ts';

/** Orders two versions of one ecosystem: negative when a < b, 0 when equal, positive when a > b. */
export type CompareVersions = (a: string, b: string) => number;

/** The verdict for one `affected` entry: whether the version is affected, and the version that fixes it. */
export interface AffectedVerdict {
  readonly affected: boolean;
  /** The lowest `fixed` version above the installed one, or null when none is known (unfixed). */
  readonly fixed: string | null;
}

// `introduced: "0"` sorts before every version; a `limit` containing `*` is infinity.
function compareBound(compare: CompareVersions, a: string, b: string, kindA: string, kindB: string): number {
  const zeroA = kindA === 'introduced' && a === '0';
  const zeroB = kindB === 'introduced' && b === '0';
  if (zeroA || zeroB) return zeroA === zeroB ? 0 : zeroA ? -1 : 1;
  const infA = kindA === 'limit' && a.includes('*');
  const infB = kindB === 'limit' && b.includes('*');
  if (infA || infB) return infA === infB ? 0 : infA ? 1 : -1;
  return compare(a, b);
}

/** `v >= introduced`, with the special `0`. */
function atOrAfterIntroduced(compare: CompareVersions, v: string, introduced: string): boolean {
  return introduced === '0' || compare(v, introduced) >= 0;
}

/** BeforeLimits of the specification: true without limit events, else when `v` is below any limit. */
function beforeLimits(compare: CompareVersions, v: string, range: AffectedRange): boolean {
  const limits = range.events.filter((e) => e.kind === 'limit');
  if (limits.length === 0) return true;
  return limits.some((e) => e.version.includes('*') || compare(v, e.version) < 0);
}

function sortedEvents(compare: CompareVersions, range: AffectedRange): RangeEvent[] {
  // Array.prototype.sort is stable, so events at the same version keep their record order.
  return [...range.events].sort((a, b) => compareBound(compare, a.version, b.version, a.kind, b.kind));
}

/** Whether `v` lies in `range` (IncludedInRanges for one range). */
function inRange(compare: CompareVersions, v: string, range: AffectedRange): boolean {
  if (!beforeLimits(compare, v, range)) return false;
  let vulnerable = false;
  for (const event of sortedEvents(compare, range)) {
    if (event.kind === 'introduced' && atOrAfterIntroduced(compare, v, event.version)) vulnerable = true;
    else if (event.kind === 'fixed' && compare(v, event.version) >= 0) vulnerable = false;
    else if (event.kind === 'last_affected' && compare(v, event.version) > 0) vulnerable = false;
  }
  return vulnerable;
}

/** The lowest `fixed` event of `ranges` strictly above `v`, or null. */
function nextFix(compare: CompareVersions, v: string, ranges: readonly AffectedRange[]): string | null {
  let best: string | null = null;
  for (const range of ranges) {
    for (const event of range.events) {
      if (event.kind !== 'fixed' || compare(event.version, v) <= 0) continue;
      if (best === null || compare(event.version, best) < 0) best = event.version;
    }
  }
  return best;
}

/**
 * Evaluates one `affected` entry for `version`: affected when `version` equals an entry of `versions` (exact
 * string match, as the specification's IncludedInVersions) or lies in any ECOSYSTEM/SEMVER range (ranges are
 * OR-ed; GIT ranges are skipped). `fixed` is the lowest fix above `version` in the range that matched (in any
 * range when only `versions` matched); null when the version is unaffected or no fix exists (`introduced: 0`
 * alone is an unfixed vulnerability). Pass `compare` = null when the ecosystem has no comparator: then only the
 * `versions` list is consulted and `fixed` is null. Whatever `compare` throws (an unparsable version) propagates.
 */
export function isAffected(
  affected: Affected,
  version: string,
  compare: CompareVersions | null,
): AffectedVerdict {
  const ranges = affected.ranges.filter((range) => range.type !== 'GIT');
  if (compare !== null) {
    for (const range of ranges) {
      if (inRange(compare, version, range))
        return { affected: true, fixed: nextFix(compare, version, [range]) };
    }
  }
  if (affected.versions.includes(version)) {
    return { affected: true, fixed: compare === null ? null : nextFix(compare, version, ranges) };
  }
  return { affected: false, fixed: null };
}

/** An installed package as a scanner found it. */
export interface InstalledPackage {
  /** The base ecosystem as OSV names it (`Debian`, `Alpine`, `Ubuntu`, `npm`, `PyPI`, `Go`, `Maven`). */
  readonly ecosystem: string;
  /**
   * The distribution release in the form OSV suffixes use (`12` for Debian, `v3.19` or `3.19` for Alpine,
   * `22.04` or `22.04:LTS` for Ubuntu), or undefined for language ecosystems.
   */
  readonly release?: string | undefined;
  readonly name: string;
  readonly version: string;
}

/** A match of an advisory against a package: the `affected` entry that matched and the fixing version. */
export interface AdvisoryMatch {
  readonly affected: Affected;
  readonly fixed: string | null;
}

// Release suffixes compare case-insensitively, without Alpine's leading `v` or Ubuntu's `:LTS` marker, so that
// `v3.19` = `3.19` and `22.04:LTS` = `22.04`. Ubuntu Pro (`Pro:18.04:LTS`) stays distinct from the plain release.
function normalRelease(release: string): string {
  return release
    .toLowerCase()
    .replace(/^v(?=\d)/, '')
    .replace(/:lts$/, '');
}

/**
 * Matches `advisory` against `pkg`: among the `affected` entries whose package has `pkg`'s base ecosystem and
 * name and whose release suffix is absent or equal to `pkg.release`, the first that {@link isAffected} says
 * affects `pkg.version`, with its fix. `compareFor(ecosystem)` supplies the comparator for the base ecosystem
 * (undefined: only `versions` lists are consulted). Null when nothing matches or the advisory is withdrawn.
 */
export function matchAdvisory(
  advisory: Advisory,
  pkg: InstalledPackage,
  compareFor: (ecosystem: string) => CompareVersions | undefined,
): AdvisoryMatch | null {
  if (advisory.withdrawn !== null) return null;
  const compare = compareFor(pkg.ecosystem) ?? null;
  // PyPI names compare in their PEP 503 normal form; other ecosystems' names are exact.
  const name = normalPackageName(pkg.ecosystem, pkg.name);
  for (const affected of advisory.affected) {
    const p = affected.package;
    if (p === null || p.base !== pkg.ecosystem || normalPackageName(p.base, p.name) !== name) continue;
    if (p.release !== null) {
      if (pkg.release === undefined || normalRelease(p.release) !== normalRelease(pkg.release)) continue;
    }
    const verdict = isAffected(affected, pkg.version, compare);
    if (verdict.affected) return { affected, fixed: verdict.fixed };
  }
  return null;
}
