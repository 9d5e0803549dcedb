import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/**
 * Token kinds of an apk version, in apk-tools' order (src/version.c). The order matters: when two versions agree up
 * to the point where they have tokens of different kinds, the one with the higher kind is older (END is the highest,
 * so `1.0 < 1.0.1` and `1.0 < 1.0-r0`), except that a pre-release suffix always loses.
 */
enum Kind {
  InitialDigit = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  CommitHash = 5,
  RevisionNo = 6,
  End = 7,
}

/** One token: its kind and its text (digits, the letter, the suffix name or the hash). */
interface Token {
  readonly kind: Kind;
  readonly text: string;
}

/**
 * Suffix ranks: the pre-release ones below NONE (the bare release), the others above, as in apk-tools'
 * DECLARE_SUFFIXES.
 */
const SUFFIX_RANK: Record<string, number> = {
  alpha: 1,
  beta: 2,
  pre: 3,
  rc: 4,
  cvs: 6,
  svn: 7,
  git: 8,
  hg: 9,
  p: 10,
};
const SUFFIX_NONE = 5;

const ECOSYSTEM = 'Alpine';
/**
 * What apk-tools' tokenizer accepts: `digits(.digits)*[letter](_suffix[digits])*[~hexhash][-r digits]`, where a
 * suffix is one of the names in {@link SUFFIX_RANK}.
 */
const APK_VERSION =
  /^[0-9]+(?:\.[0-9]+)*[a-z]?(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(?:~[0-9a-f]+)?(?:-r[0-9]+)?$/;

/** Splits a valid apk version into tokens (the grammar has been checked, so each step is unambiguous). */
function tokenize(version: string): Token[] {
  const tokens: Token[] = [];
  const re = /^[0-9]+|^\.([0-9]+)|^[a-z]|^_([a-z]+)([0-9]*)|^~([0-9a-f]+)|^-r([0-9]+)/;
  let rest = version;
  while (rest !== '') {
    const m = re.exec(rest)!;
    const c = rest[0]!;
    if (c >= '0' && c <= '9') tokens.push({ kind: Kind.InitialDigit, text: m[0] });
    else if (c === '.') tokens.push({ kind: Kind.Digit, text: m[1]! });
    else if (c === '_') {
      tokens.push({ kind: Kind.Suffix, text: m[2]! });
      if (m[3] !== '') tokens.push({ kind: Kind.SuffixNo, text: m[3]! });
    } else if (c === '~') tokens.push({ kind: Kind.CommitHash, text: m[4]! });
    else if (c === '-') tokens.push({ kind: Kind.RevisionNo, text: m[5]! });
    else tokens.push({ kind: Kind.Letter, text: m[0] });
    rest = rest.slice(m[0].length);
  }
  return tokens;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * apk-tools' `token_cmp` for two tokens of the same kind. A dotted component with a leading zero on either side
 * compares as text, Gentoo style (`1.01 < 1.1`, `1.001 < 1.01`); other numbers compare as integers; suffixes by rank;
 * letters and commit hashes as text.
 */
function compareTokens(kind: Kind, a: string, b: string): number {
  switch (kind) {
    case Kind.Digit:
      return a.startsWith('0') || b.startsWith('0') ? byText(a, b) : compareDigitRuns(a, b);
    case Kind.InitialDigit:
    case Kind.SuffixNo:
    case Kind.RevisionNo:
      return compareDigitRuns(a, b);
    case Kind.Suffix:
      return Math.sign(SUFFIX_RANK[a]! - SUFFIX_RANK[b]!);
    default:
      return byText(a, b);
  }
}

const isPreRelease = (t: Token | undefined): boolean =>
  t !== undefined && t.kind === Kind.Suffix && SUFFIX_RANK[t.text]! < SUFFIX_NONE;

/**
 * Reports whether a string is an apk (Alpine) package version: `1.2.3`, `1.2.3a`, `1.2.3_rc1`, `1.2.3_p2-r4`,
 * `0.1.0_alpha_pre2`, `1.0~abc123-r0`. Never throws.
 */
export function isApkVersion(version: string): boolean {
  return typeof version === 'string' && version.length <= MAX_VERSION_LENGTH && APK_VERSION.test(version);
}

/**
 * Compares two Alpine package versions in apk-tools order (src/version.c, `apk_version_compare`): numeric
 * components, then an optional letter, then suffixes (`_alpha < _beta < _pre < _rc` < release < `_cvs < _svn < _git
 * < _hg < _p`, each optionally numbered), then an optional `~commit`, then the `-r<N>` package revision. Where one
 * version stops or changes kind and the other goes on, the one going on with a lower kind is newer, unless it goes on
 * with a pre-release suffix (so `1.0 < 1.0-r0 < 1.0_p1 < 1.0a < 1.0.1` and `1.0_rc1 < 1.0`). Returns -1, 0 or 1;
 * throws {@link VersionError} if either string is not an apk version.
 */
export function compareApk(a: string, b: string): number {
  for (const v of [a, b])
    if (!isApkVersion(v)) throw new VersionError(ECOSYSTEM, String(v), 'not an apk version');
  const x = tokenize(a);
  const y = tokenize(b);
  for (let i = 0; ; i++) {
    const ta = x[i];
    const tb = y[i];
    const ka = ta?.kind ?? Kind.End;
    const kb = tb?.kind ?? Kind.End;
    if (ka !== kb) {
      if (isPreRelease(ta)) return -1;
      if (isPreRelease(tb)) return 1;
      return ka > kb ? -1 : 1;
    }
    if (ka === Kind.End) return 0;
    const c = compareTokens(ka, ta!.text, tb!.text);
    if (c !== 0) return c;
  }
}
