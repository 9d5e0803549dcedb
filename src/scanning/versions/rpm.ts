import { MAX_VERSION_LENGTH, VersionError } from './errors.ts';

/** An rpm version split as rpm splits an EVR string: `[epoch:]version[-release]`. */
export interface RpmVersion {
  /** The epoch as digits ('' when absent, which counts as 0). */
  readonly epoch: string;
  readonly version: string;
  /** The release after the last hyphen; null when there is none. */
  readonly release: string | null;
}

const ECOSYSTEM = 'RPM';

/**
 * Parses an rpm EVR string the way rpm's `rpmverParse` does: the epoch is the digits before the first colon, the
 * release starts after the last hyphen. Throws {@link VersionError} for an empty string or version, a non-numeric
 * epoch, whitespace or control characters, or more than `MAX_VERSION_LENGTH` characters.
 */
export function parseRpmVersion(evr: string): RpmVersion {
  const fail = (reason: string): never => {
    throw new VersionError(ECOSYSTEM, String(evr), reason);
  };
  if (typeof evr !== 'string') return fail('not a string');
  if (evr.length > MAX_VERSION_LENGTH) return fail('too long');
  if (evr === '') return fail('version string is empty');
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(evr)) return fail('version string has whitespace or control characters');
  let epoch = '';
  let rest = evr;
  const colon = evr.indexOf(':');
  if (colon !== -1) {
    epoch = evr.slice(0, colon);
    if (!/^[0-9]+$/.test(epoch)) return fail('epoch is not a number');
    rest = evr.slice(colon + 1);
  }
  const hyphen = rest.lastIndexOf('-');
  const version = hyphen === -1 ? rest : rest.slice(0, hyphen);
  const release = hyphen === -1 ? null : rest.slice(hyphen + 1);
  if (version === '') return fail('version part is empty');
  if (release === '') return fail('release part is empty');
  return { epoch, version, release };
}

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isAlpha = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
const isAlnum = (c: string): boolean => isDigit(c) || isAlpha(c);

/**
 * rpm's `rpmvercmp` (rpmio/rpmvercmp.c) on one version or release string: runs of digits and runs of letters are
 * compared in turn, everything else only separates them; numbers compare as integers and beat letters; `~` sorts
 * before anything, even the end of the string (`1.0~rc1` < `1.0`); `^` sorts after the end of the string but
 * before anything else (`1.0` < `1.0^git1` < `1.0.1`). Returns -1, 0 or 1.
 */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const at = (s: string, k: number): string => (k < s.length ? s[k]! : '');
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]!) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]!) && b[j] !== '~' && b[j] !== '^') j++;
    const x = at(a, i);
    const y = at(b, j);
    if (x === '~' || y === '~') {
      if (x !== '~') return 1;
      if (y !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (x === '^' || y === '^') {
      if (x === '') return -1;
      if (y === '') return 1;
      if (x !== '^') return 1;
      if (y !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (x === '' || y === '') break;
    const numeric = isDigit(x);
    const inRun = numeric ? isDigit : isAlpha;
    let ei = i;
    while (ei < a.length && inRun(a[ei]!)) ei++;
    let ej = j;
    while (ej < b.length && inRun(b[ej]!)) ej++;
    // The other string's segment is of the other kind (empty run): numbers are newer than letters.
    if (ej === j) return numeric ? 1 : -1;
    let segA = a.slice(i, ei);
    let segB = b.slice(j, ej);
    if (numeric) {
      segA = segA.replace(/^0+/, '');
      segB = segB.replace(/^0+/, '');
      if (segA.length !== segB.length) return segA.length > segB.length ? 1 : -1;
    }
    if (segA !== segB) return segA < segB ? -1 : 1;
    i = ei;
    j = ej;
  }
  // All segments equal; only separators differed, or one string has more.
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/**
 * Compares two rpm EVR strings as rpm does (`rpmverCmp`): epoch as a number (absent = 0), then version, then
 * release with {@link rpmvercmp}; a missing release sorts before a present one. Returns -1, 0 or 1. Throws
 * {@link VersionError} when either is not an rpm version.
 */
export function compareRpm(a: string, b: string): number {
  const x = parseRpmVersion(a);
  const y = parseRpmVersion(b);
  const ex = x.epoch.replace(/^0+/, '');
  const ey = y.epoch.replace(/^0+/, '');
  if (ex !== ey) return ex.length !== ey.length ? (ex.length < ey.length ? -1 : 1) : ex < ey ? -1 : 1;
  const byVersion = rpmvercmp(x.version, y.version);
  if (byVersion !== 0) return byVersion;
  if (x.release === null || y.release === null) {
    return x.release === y.release ? 0 : x.release === null ? -1 : 1;
  }
  return rpmvercmp(x.release, y.release);
}

/** Reports whether `v` is an rpm EVR string `compareRpm` accepts. Never throws. */
export function isRpmVersion(v: string): boolean {
  try {
    parseRpmVersion(v);
    return true;
  } catch {
    return false;
  }
}
