import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/**
 * One item of a parsed Maven version, after Apache Maven's `ComparableVersion`: an integer, a qualifier string, or a
 * sub-list (opened by `-`, or by a transition between letters and digits).
 */
type Item =
  | { readonly kind: 'int'; readonly digits: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'list'; readonly items: Item[] };

const ECOSYSTEM = 'Maven';

/** Well-known qualifiers, oldest first; '' is the release itself. */
const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
const ALIASES: Record<string, string> = { ga: '', final: '', cr: 'rc' };
const RELEASE_INDEX = QUALIFIERS.indexOf('');

/**
 * Maven's `comparableQualifier`: known qualifiers become their index, unknown ones `"<count>-<name>"`, compared as
 * strings, so unknown qualifiers sort after all known ones and among themselves lexically.
 */
function comparableQualifier(q: string): string {
  const i = QUALIFIERS.indexOf(q);
  return i === -1 ? `${QUALIFIERS.length}-${q}` : String(i);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function stringItem(value: string, followedByDigit: boolean): Item {
  // a1 = alpha-1, b1 = beta-1, m1 = milestone-1
  if (followedByDigit && value.length === 1) {
    value = ({ a: 'alpha', b: 'beta', m: 'milestone' } as Record<string, string>)[value] ?? value;
  }
  return { kind: 'string', value: ALIASES[value] ?? value };
}

function parseItem(isDigit: boolean, buf: string): Item {
  return isDigit ? { kind: 'int', digits: buf.replace(/^0+(?=.)/, '') } : stringItem(buf, false);
}

/** An item that trailing-normalisation removes and that compares equal to "nothing": 0, '' (release), []. */
function isNull(item: Item): boolean {
  if (item.kind === 'int') return /^0+$/.test(item.digits);
  if (item.kind === 'string') return comparableQualifier(item.value) === String(RELEASE_INDEX);
  return item.items.length === 0;
}

/** Removes trailing null items from a list, looking through (but not removing) nested lists, as Maven does. */
function normalize(list: Item[]): void {
  for (let i = list.length - 1; i >= 0; i--) {
    const item = list[i]!;
    if (isNull(item)) list.splice(i, 1);
    else if (item.kind !== 'list') break;
  }
}

/** Parses a version into Maven's item tree (lower-cased; `.`, `-` and letter/digit transitions separate items). */
function parseMaven(version: string): Item[] {
  const v = version.toLowerCase();
  const root: Item[] = [];
  let list = root;
  const stack: Item[][] = [root];
  let isDigit = false;
  let start = 0;
  const openList = (): void => {
    const next: Item[] = [];
    list.push({ kind: 'list', items: next });
    list = next;
    stack.push(next);
  };
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '.' || c === '-') {
      list.push(i === start ? { kind: 'int', digits: '0' } : parseItem(isDigit, v.slice(start, i)));
      start = i + 1;
      if (c === '-') openList();
    } else if (c >= '0' && c <= '9') {
      if (!isDigit && i > start) {
        list.push(stringItem(v.slice(start, i), true));
        start = i;
        openList();
      }
      isDigit = true;
    } else {
      if (isDigit && i > start) {
        list.push(parseItem(true, v.slice(start, i)));
        start = i;
        openList();
      }
      isDigit = false;
    }
  }
  if (v.length > start) list.push(parseItem(isDigit, v.slice(start)));
  while (stack.length > 0) normalize(stack.pop()!);
  return root;
}

/** `ComparableVersion`'s item comparison; `b` undefined means "the other list has ended here". */
function compareItem(a: Item, b: Item | undefined): number {
  switch (a.kind) {
    case 'int':
      if (b === undefined) return isNull(a) ? 0 : 1; // 1.0 == 1, 1.1 > 1
      if (b.kind === 'int') return compareDigitRuns(a.digits, b.digits);
      return 1; // 1.1 > 1-sp, 1.1 > 1-1
    case 'string':
      if (b === undefined)
        return Math.sign(compareStrings(comparableQualifier(a.value), String(RELEASE_INDEX)));
      if (b.kind === 'string')
        return compareStrings(comparableQualifier(a.value), comparableQualifier(b.value));
      return -1; // 1.any < 1.1, 1.any < 1-1
    case 'list':
      if (b === undefined) return a.items.length === 0 ? 0 : compareItem(a.items[0]!, undefined);
      if (b.kind === 'int') return -1; // 1-1 < 1.0.x
      if (b.kind === 'string') return 1; // 1-1 > 1-sp
      return compareLists(a.items, b.items);
  }
}

function compareLists(a: readonly Item[], b: readonly Item[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const l = a[i];
    const r = b[i];
    const c = l === undefined ? (r === undefined ? 0 : -compareItem(r, undefined)) : compareItem(l, r);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * Reports whether a string is accepted as a Maven version. Maven itself orders any string; here a version must be
 * non-empty printable ASCII without whitespace, so that garbage is reported rather than silently ordered.
 */
export function isMavenVersion(version: string): boolean {
  return (
    typeof version === 'string' && version.length <= MAX_VERSION_LENGTH && /^[\x21-\x7e]+$/.test(version)
  );
}

/**
 * Compares two Maven versions in the order of Apache Maven's `ComparableVersion` (maven-artifact 3.x before 3.9):
 * case-insensitive; items split at `.`, `-` and letter/digit transitions; numbers compare numerically and after
 * qualifiers; qualifiers order `alpha` (`a1`) < `beta` (`b1`) < `milestone` (`m1`) < `rc` = `cr` < `snapshot` <
 * release (`''` = `ga` = `final`) < `sp` < unknown qualifiers (lexically); trailing zeros and release qualifiers
 * are dropped (`1.0.0` = `1` = `1-ga`). Returns -1, 0 or 1; throws {@link VersionError} for a string refused by
 * {@link isMavenVersion}.
 */
export function compareMaven(a: string, b: string): number {
  for (const v of [a, b])
    if (!isMavenVersion(v)) throw new VersionError(ECOSYSTEM, String(v), 'not a Maven version');
  return Math.sign(compareLists(parseMaven(a), parseMaven(b)));
}
