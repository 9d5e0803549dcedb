import { compareApk, isApkVersion } from './apk.ts';
import { compareDpkg, parseDpkgVersion } from './dpkg.ts';
import { VersionError } from './errors.ts';
import { compareMaven, isMavenVersion } from './maven.ts';
import { comparePep440, parsePep440 } from './pep440.ts';
import { compareRpm, isRpmVersion } from './rpm.ts';
import { compareSemVer, parseSemVer } from './semver.ts';

export { VersionError } from './errors.ts';

/** OSV ecosystem names (https://ossf.github.io/osv-schema/#affectedpackage-field) whose version order is known here. */
export type Ecosystem =
  | 'Debian'
  | 'Ubuntu'
  | 'Alpine'
  | 'npm'
  | 'PyPI'
  | 'Go'
  | 'Maven'
  | 'Red Hat'
  | 'Rocky Linux'
  | 'AlmaLinux'
  | 'openSUSE'
  | 'SUSE';

const COMPARATORS: Record<Ecosystem, (a: string, b: string) => number> = {
  Debian: compareDpkg,
  Ubuntu: compareDpkg,
  Alpine: compareApk,
  npm: compareSemVer,
  Go: compareSemVer,
  PyPI: comparePep440,
  Maven: compareMaven,
  'Red Hat': compareRpm,
  'Rocky Linux': compareRpm,
  AlmaLinux: compareRpm,
  openSUSE: compareRpm,
  SUSE: compareRpm,
};

/**
 * Compares two versions of one ecosystem: negative if `a` is older than `b`, 0 if they are the same version (which
 * can be true of different strings, e.g. `1.0` and `1.0.0` on PyPI), positive if `a` is newer. The result is always
 * -1, 0 or 1 and antisymmetric. Throws {@link VersionError} if either string is not a version of that ecosystem (or
 * the ecosystem is unknown); never throws anything else.
 */
export function compareVersions(ecosystem: Ecosystem, a: string, b: string): number {
  // hasOwn, not a plain lookup: `ecosystem` may come from untrusted data, and 'toString' is not an ecosystem.
  const compare = Object.hasOwn(COMPARATORS, ecosystem) ? COMPARATORS[ecosystem] : undefined;
  if (compare === undefined) throw new VersionError(String(ecosystem), String(a), 'unknown ecosystem');
  return compare(a, b);
}

/** Reports whether `compareVersions(ecosystem, v, …)` would accept `v`. Never throws. */
export function isValidVersion(ecosystem: Ecosystem, v: string): boolean {
  try {
    switch (ecosystem) {
      case 'Debian':
      case 'Ubuntu':
        parseDpkgVersion(v);
        return true;
      case 'Alpine':
        return isApkVersion(v);
      case 'npm':
      case 'Go':
        parseSemVer(v);
        return true;
      case 'PyPI':
        parsePep440(v);
        return true;
      case 'Maven':
        return isMavenVersion(v);
      case 'Red Hat':
      case 'Rocky Linux':
      case 'AlmaLinux':
      case 'openSUSE':
      case 'SUSE':
        return isRpmVersion(v);
      default:
        return false;
    }
  } catch (err) {
    if (err instanceof VersionError) return false;
    throw err;
  }
}
