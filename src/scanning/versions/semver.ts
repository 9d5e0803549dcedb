import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/** A parsed SemVer 2.0.0 version; build metadata is dropped because it never affects precedence. */
export interface SemVer {
  readonly major: string;
  readonly minor: string;
  readonly patch: string;
  /** Dot-separated pre-release identifiers; empty for a release. */
  readonly prerelease: readonly string[];
}

const ECOSYSTEM = 'SemVer';
const NUM = '0|[1-9][0-9]*';
const PRE_ID = '0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*';
const BUILD_ID = '[0-9A-Za-z-]+';
/** The grammar of semver.org §2–§10, plus an optional leading `v` (Go module versions are always written so). */
const SEMVER = new RegExp(
  `^v?(${NUM})\\.(${NUM})\\.(${NUM})(?:-((?:${PRE_ID})(?:\\.(?:${PRE_ID}))*))?(?:\\+(${BUILD_ID}(?:\\.${BUILD_ID})*))?$`,
);

/**
 * Parses a SemVer 2.0.0 version, tolerating a leading `v`. Go pseudo-versions (`v0.0.0-20210101000000-abcdef123456`)
 * and `+incompatible` are ordinary SemVer. Leading zeros in numeric parts are refused, as the spec requires.
 * Throws {@link VersionError} for anything else.
 */
export function parseSemVer(version: string): SemVer {
  const m = typeof version === 'string' && version.length <= MAX_VERSION_LENGTH ? SEMVER.exec(version) : null;
  if (!m) throw new VersionError(ECOSYSTEM, String(version), 'not a SemVer 2.0.0 version');
  return { major: m[1]!, minor: m[2]!, patch: m[3]!, prerelease: m[4] === undefined ? [] : m[4].split('.') };
}

const isNumeric = (id: string): boolean => /^[0-9]+$/.test(id);

/**
 * semver.org §11.4.1–3: numeric identifiers compare as integers, alphanumeric ones in ASCII order, and numeric ones
 * sort before alphanumeric ones.
 */
function compareIdentifiers(a: string, b: string): number {
  const an = isNumeric(a);
  const bn = isNumeric(b);
  if (an && bn) return compareDigitRuns(a, b);
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Compares two versions by SemVer 2.0.0 precedence (semver.org §11): major, minor, patch numerically; a pre-release
 * is lower than its release; pre-releases compare identifier by identifier, a shorter prefix being lower; build
 * metadata is ignored (so `1.0.0+a` equals `1.0.0+b`). Used for npm and Go. Returns -1, 0 or 1; throws
 * {@link VersionError} if either string is not SemVer.
 */
export function compareSemVer(a: string, b: string): number {
  const x = parseSemVer(a);
  const y = parseSemVer(b);
  const core =
    compareDigitRuns(x.major, y.major) ||
    compareDigitRuns(x.minor, y.minor) ||
    compareDigitRuns(x.patch, y.patch);
  if (core !== 0) return core;
  if (x.prerelease.length === 0 || y.prerelease.length === 0) {
    return x.prerelease.length === y.prerelease.length ? 0 : x.prerelease.length === 0 ? 1 : -1;
  }
  const n = Math.min(x.prerelease.length, y.prerelease.length);
  for (let i = 0; i < n; i++) {
    const c = compareIdentifiers(x.prerelease[i]!, y.prerelease[i]!);
    if (c !== 0) return c;
  }
  return Math.sign(x.prerelease.length - y.prerelease.length);
}
