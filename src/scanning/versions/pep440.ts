import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/** A PEP 440 version in normalised form. Numbers are digit strings so that arbitrarily large ones compare exactly. */
export interface Pep440Version {
  readonly epoch: string;
  /** Release segments with trailing zeros removed (`1.0.0` → `['1']`), so `1.0 == 1.0.0`. */
  readonly release: readonly string[];
  /** Pre-release phase (`a`, `b` or `rc`, after normalisation of `alpha`, `beta`, `c`, `pre`, `preview`) and number. */
  readonly pre?: { readonly phase: 'a' | 'b' | 'rc'; readonly n: string };
  /** Post-release number (`.post1`, `-1`, `.rev1`, `.r1`; `.post` alone is `.post0`). */
  readonly post?: string;
  /** Development release number (`.dev` alone is `.dev0`). */
  readonly dev?: string;
  /** Local version label segments, lower-cased (`+ubuntu1.2` → `['ubuntu1', '2']`). */
  readonly local?: readonly string[];
}

const ECOSYSTEM = 'PEP 440';

/**
 * The permissive grammar of PEP 440 "Appendix B: Parsing version strings with regular expressions" (the one
 * `packaging.version` uses), which accepts every spelling that normalises to a valid version.
 */
const PEP440 = new RegExp(
  '^\\s*v?' +
    '(?:([0-9]+)!)?' + // epoch
    '([0-9]+(?:\\.[0-9]+)*)' + // release
    '(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?' + // pre-release
    '(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?' + // post-release
    '(?:[-_.]?(dev)[-_.]?([0-9]+)?)?' + // dev release
    '(?:\\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?' + // local version
    '\\s*$',
  'i',
);

const PRE_PHASE: Record<string, 'a' | 'b' | 'rc'> = {
  a: 'a',
  alpha: 'a',
  b: 'b',
  beta: 'b',
  c: 'rc',
  rc: 'rc',
  pre: 'rc',
  preview: 'rc',
};
const PHASE_RANK = { a: 0, b: 1, rc: 2 } as const;

/**
 * Parses and normalises a PEP 440 version (case-insensitive, `-`/`_`/`.` separators interchangeable, implicit
 * numbers 0, optional leading `v`). Throws {@link VersionError} if the string is not a PEP 440 version.
 */
export function parsePep440(version: string): Pep440Version {
  const m = typeof version === 'string' && version.length <= MAX_VERSION_LENGTH ? PEP440.exec(version) : null;
  if (!m) throw new VersionError(ECOSYSTEM, String(version), 'not a PEP 440 version');
  const release = m[2]!.split('.');
  while (release.length > 1 && /^0+$/.test(release[release.length - 1]!)) release.pop();
  if (release.length === 1 && /^0+$/.test(release[0]!)) release.pop();
  const parsed: {
    epoch: string;
    release: string[];
    pre?: { phase: 'a' | 'b' | 'rc'; n: string };
    post?: string;
    dev?: string;
    local?: string[];
  } = { epoch: m[1] ?? '0', release };
  if (m[3] !== undefined) parsed.pre = { phase: PRE_PHASE[m[3].toLowerCase()]!, n: m[4] ?? '0' };
  if (m[5] !== undefined) parsed.post = m[5];
  else if (m[6] !== undefined) parsed.post = m[7] ?? '0';
  if (m[8] !== undefined) parsed.dev = m[9] ?? '0';
  if (m[10] !== undefined) parsed.local = m[10].toLowerCase().split(/[-_.]/);
  return parsed;
}

const isNumeric = (s: string): boolean => /^[0-9]+$/.test(s);

/** Compares release segment lists, the shorter one padded with zeros. */
function compareRelease(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const c = compareDigitRuns(a[i] ?? '0', b[i] ?? '0');
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * Pre-release position: a dev release of the bare release (`1.0.dev1`, no pre or post part) comes before all
 * pre-releases of that release; pre-releases order by phase then number; a version without a pre-release comes after
 * all of them.
 */
function comparePre(a: Pep440Version, b: Pep440Version): number {
  // PEP 440: `X.devN` sorts before `XaN`, so a bare dev release acts as a pre-release below all others.
  const rank = (v: Pep440Version): number => {
    if (v.pre) return 1;
    if (v.post === undefined && v.dev !== undefined) return 0;
    return 2; // no pre-release: after every pre-release
  };
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (a.pre && b.pre) {
    const pa = PHASE_RANK[a.pre.phase];
    const pb = PHASE_RANK[b.pre.phase];
    if (pa !== pb) return pa < pb ? -1 : 1;
    return compareDigitRuns(a.pre.n, b.pre.n);
  }
  return 0;
}

/** Post-release: none sorts before any post-release. */
function comparePost(a: Pep440Version, b: Pep440Version): number {
  if (a.post === undefined || b.post === undefined) {
    return a.post === b.post ? 0 : a.post === undefined ? -1 : 1;
  }
  return compareDigitRuns(a.post, b.post);
}

/** Dev release: a dev release sorts before the same version without one. */
function compareDev(a: Pep440Version, b: Pep440Version): number {
  if (a.dev === undefined || b.dev === undefined) {
    return a.dev === b.dev ? 0 : a.dev === undefined ? 1 : -1;
  }
  return compareDigitRuns(a.dev, b.dev);
}

/**
 * Local labels (PEP 440 "Local version identifiers"): a version without one sorts first; segments compare pairwise,
 * numeric ones as integers and after alphanumeric ones, alphanumeric ones lexicographically; with equal leading
 * segments the longer label is greater.
 */
function compareLocal(a: Pep440Version, b: Pep440Version): number {
  if (a.local === undefined || b.local === undefined) {
    return a.local === b.local ? 0 : a.local === undefined ? -1 : 1;
  }
  for (let i = 0; i < Math.min(a.local.length, b.local.length); i++) {
    const x = a.local[i]!;
    const y = b.local[i]!;
    const xn = isNumeric(x);
    const yn = isNumeric(y);
    const c = xn && yn ? compareDigitRuns(x, y) : xn !== yn ? (xn ? 1 : -1) : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return c;
  }
  return Math.sign(a.local.length - b.local.length);
}

/**
 * Compares two PyPI versions in PEP 440 order ("Summary of permitted suffixes and relative ordering"): epoch, then
 * release (implicit trailing zeros), then `X.devN` < `XaN` < `XbN` < `XrcN` < `X` < `X.postN`, where a `.devN` on any
 * of these sorts just before it without the `.devN` (`1.0a2.dev1 < 1.0a2`), then the local label (none first).
 * Returns -1, 0 or 1; throws {@link VersionError} if either string is not PEP 440.
 */
export function comparePep440(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  return (
    compareDigitRuns(x.epoch, y.epoch) ||
    compareRelease(x.release, y.release) ||
    comparePre(x, y) ||
    comparePost(x, y) ||
    compareDev(x, y) ||
    compareLocal(x, y)
  );
}
