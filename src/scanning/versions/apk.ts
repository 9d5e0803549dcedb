import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/**
 * Token kinds of an apk version, in the order apk-tools gives them (src/version.c). The order matters: when two
 * versions agree up to the point where one has a token of a higher kind than the other, the higher kind is the
 * older version (END is the highest, so `1.0 < 1.0.1` and `1.0 < 1.0-r1`), except that a pre-release suffix
 * always loses.
 */
enum Kind {
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

/** One token. Numbers are kept as digit strings or signed integers; `value` compares within one kind. */
interface Token {
  readonly kind: Kind;
  /** For Digit/SuffixNo/RevisionNo: the digit run; otherwise undefined. */
  readonly digits?: string;
  /** For DigitOrZero with leading zeros (minus their count), Letter (char code), Suffix (rank). */
  readonly value?: number;
}

/** Suffixes that make a version older than the bare release, oldest first; ranked -4..-1 as in apk-tools. */
const PRE_SUFFIXES = ['alpha', 'beta', 'pre', 'rc'];
/** Suffixes that make a version newer than the bare release; ranked 0..4. */
const POST_SUFFIXES = ['cvs', 'svn', 'git', 'hg', 'p'];

const ECOSYSTEM = 'Alpine';
/**
 * The grammar apk-tools accepts in practice (Gentoo style): `digits(.digits)*[letter](_suffix[digits])*[-r digits]`.
 * apk-tools' tokenizer also lets through a few degenerate forms (`1..2`, `1.`, a digit after the letter); they are
 * refused here because no package uses them and their order is an accident of the tokenizer.
 */
const APK_VERSION =
  /^[0-9]+(?:\.[0-9]+)*[a-z]?(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(?:-r[0-9]+)?$/;

/**
 * Splits a valid apk version into tokens the way apk-tools' `get_token` does. The one subtle case: a dotted
 * component that starts with `0` is compared "fractionally" — it yields minus the number of leading zeros, then the
 * remaining digits as a separate number (0 if there are none but more text follows). Hence `1.01 < 1.1` and
 * `1.001 < 1.01`, while the first component is always a plain integer (`006` = 6).
 */
function tokenize(version: string): Token[] {
  const tokens: Token[] = [];
  const m = /^[0-9]+/.exec(version);
  let pos = m![0].length;
  tokens.push({ kind: Kind.Digit, digits: m![0] });
  while (pos < version.length) {
    const c = version[pos]!;
    if (c === '.') {
      const run = /^[0-9]+/.exec(version.slice(pos + 1))![0];
      pos += 1 + run.length;
      if (run.startsWith('0')) {
        const zeros = /^0+/.exec(run)![0].length;
        tokens.push({ kind: Kind.DigitOrZero, value: -zeros });
        const restDigits = run.slice(zeros);
        if (restDigits !== '' || pos < version.length)
          tokens.push({ kind: Kind.Digit, digits: restDigits || '0' });
      } else {
        tokens.push({ kind: Kind.DigitOrZero, digits: run });
      }
    } else if (c >= 'a' && c <= 'z') {
      tokens.push({ kind: Kind.Letter, value: c.charCodeAt(0) });
      pos += 1;
    } else if (c === '_') {
      const name = /^[a-z]+/.exec(version.slice(pos + 1))![0];
      // `pre` must win over `p`: the regex took the longest run of letters, and the list is exact names.
      const pre = PRE_SUFFIXES.indexOf(name);
      const rank = pre !== -1 ? pre - PRE_SUFFIXES.length : POST_SUFFIXES.indexOf(name);
      tokens.push({ kind: Kind.Suffix, value: rank });
      pos += 1 + name.length;
      const num = /^[0-9]+/.exec(version.slice(pos));
      if (num) {
        tokens.push({ kind: Kind.SuffixNo, digits: num[0] });
        pos += num[0].length;
      }
    } else {
      // '-r' followed by digits, guaranteed by the grammar.
      const num = version.slice(pos + 2);
      tokens.push({ kind: Kind.RevisionNo, digits: num });
      pos = version.length;
    }
  }
  return tokens;
}

/** Compares two tokens of the same kind. */
function compareSameKind(a: Token, b: Token): number {
  if (a.digits !== undefined && b.digits !== undefined) return compareDigitRuns(a.digits, b.digits);
  // A zero-led component (negative) against a plain one (digits): the zero-led one is smaller.
  if (a.digits !== undefined) return 1;
  if (b.digits !== undefined) return -1;
  const x = a.value ?? 0;
  const y = b.value ?? 0;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Reports whether a string is an apk (Alpine) package version: `1.2.3`, `1.2.3a`, `1.2.3_rc1`, `1.2.3_p2-r4`,
 * `0.1.0_alpha_pre2`. Never throws.
 */
export function isApkVersion(version: string): boolean {
  return typeof version === 'string' && version.length <= MAX_VERSION_LENGTH && APK_VERSION.test(version);
}

/**
 * Compares two Alpine package versions in apk-tools order (src/version.c): numeric components, then an optional
 * letter, then suffixes (`_alpha < _beta < _pre < _rc` < release < `_cvs < _svn < _git < _hg < _p`, each optionally
 * numbered), then the `-r<N>` package revision. Where one version stops and the other goes on, the longer one is
 * newer unless it goes on with a pre-release suffix (so `1.0 < 1.0-r0 < 1.0.1` and `1.0_rc1 < 1.0`). Returns -1, 0
 * or 1; throws {@link VersionError} if either string is not an apk version.
 */
export function compareApk(a: string, b: string): number {
  for (const v of [a, b]) if (!isApkVersion(v)) throw new VersionError(ECOSYSTEM, v, 'not an apk version');
  const x = tokenize(a);
  const y = tokenize(b);
  for (let i = 0; ; i++) {
    const ta = x[i];
    const tb = y[i];
    const ka = ta?.kind ?? Kind.End;
    const kb = tb?.kind ?? Kind.End;
    if (ka === Kind.End && kb === Kind.End) return 0;
    if (ka !== kb) {
      // One version goes on where the other stops or changes kind: a pre-release suffix is older than anything,
      // otherwise the token of the lower kind (the one that "continues" the version) is newer.
      if (ka === Kind.Suffix && (ta!.value ?? 0) < 0) return -1;
      if (kb === Kind.Suffix && (tb!.value ?? 0) < 0) return 1;
      return ka > kb ? -1 : 1;
    }
    const c = compareSameKind(ta!, tb!);
    if (c !== 0) return c;
  }
}
