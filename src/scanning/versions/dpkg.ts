import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns, sign } from './errors.ts';

/** A Debian version split the way dpkg splits it: `[epoch:]upstream[-revision]`. */
export interface DpkgVersion {
  /** Epoch as a number; 0 when the version has none. */
  readonly epoch: number;
  /** Upstream version: everything after the epoch colon and before the last hyphen. */
  readonly upstream: string;
  /** Debian revision after the last hyphen; '' when there is no hyphen. */
  readonly revision: string;
}

const ECOSYSTEM = 'Debian';
/** dpkg keeps epochs in an int and refuses larger ones ("epoch in version is too big"). */
const MAX_EPOCH = 2147483647;

/**
 * Parses a Debian/Ubuntu version with the rules of dpkg's `parseversion()` (lib/dpkg/parsehelp.c): surrounding blanks
 * are ignored; the epoch is the decimal number before the first colon; the revision starts after the LAST hyphen and
 * must not be empty; the upstream part must start with a digit and contain only `[A-Za-z0-9.+~:-]`, the revision only
 * `[A-Za-z0-9.+~]`. dpkg merely warns about the last three, but a scanner should not guess at such strings, so they
 * are refused here too. Throws {@link VersionError} for anything else.
 */
export function parseDpkgVersion(version: string): DpkgVersion {
  const fail = (reason: string): never => {
    throw new VersionError(ECOSYSTEM, version, reason);
  };
  if (typeof version !== 'string') return fail('not a string');
  if (version.length > MAX_VERSION_LENGTH) return fail('too long');
  const s = version.replace(/^[ \t]+|[ \t]+$/g, '');
  if (s === '') return fail('version string is empty');
  if (/[ \t]/.test(s)) return fail('version string has embedded spaces');

  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(':');
  if (colon !== -1) {
    const digits = s.slice(0, colon);
    if (!/^[0-9]+$/.test(digits)) return fail('epoch in version is not number');
    epoch = Number(digits);
    if (epoch > MAX_EPOCH) return fail('epoch in version is too big');
    rest = s.slice(colon + 1);
    if (rest === '') return fail('nothing after colon in version number');
  }
  let upstream = rest;
  let revision = '';
  const hyphen = rest.lastIndexOf('-');
  if (hyphen !== -1) {
    upstream = rest.slice(0, hyphen);
    revision = rest.slice(hyphen + 1);
    if (revision === '') return fail('revision number is empty');
  }
  if (upstream === '') return fail('version number is empty');
  if (!/^[0-9]/.test(upstream)) return fail('version number does not start with digit');
  if (!/^[A-Za-z0-9.+~:-]*$/.test(upstream)) return fail('invalid character in version number');
  if (!/^[A-Za-z0-9.+~]*$/.test(revision)) return fail('invalid character in revision number');
  return { epoch, upstream, revision };
}

/**
 * Weight of one character in the non-digit phase of dpkg's comparison: `~` sorts before everything, even the end of
 * the string (weight 0); letters sort before all other characters.
 */
function order(c: string | undefined): number {
  if (c === undefined || (c >= '0' && c <= '9')) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/**
 * dpkg's `verrevcmp`: alternately compares a run of non-digits (character by character with {@link order}) and a run
 * of digits (as integers; an absent run counts as 0). Used for both the upstream part and the revision, which is why
 * a missing revision equals `-0`.
 */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(a[i]);
      const bc = order(b[j]);
      if (ac !== bc) return sign(ac - bc);
      i++;
      j++;
    }
    let ai = i;
    while (isDigit(a[ai])) ai++;
    let bj = j;
    while (isDigit(b[bj])) bj++;
    const c = compareDigitRuns(a.slice(i, ai), b.slice(j, bj));
    if (c !== 0) return c;
    i = ai;
    j = bj;
  }
  return 0;
}

/**
 * Compares two Debian/Ubuntu versions exactly as `dpkg --compare-versions` does (lib/dpkg/version.c): epoch first
 * (numerically, missing = 0), then the upstream part, then the revision, each with `verrevcmp`. Returns -1, 0 or 1.
 * Throws {@link VersionError} if either string does not parse (see {@link parseDpkgVersion}).
 */
export function compareDpkg(a: string, b: string): number {
  const x = parseDpkgVersion(a);
  const y = parseDpkgVersion(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision);
}
