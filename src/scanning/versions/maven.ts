import { MAX_VERSION_LENGTH, VersionError, compareDigitRuns } from './errors.ts';

/**
 * One item of a parsed Maven version, after Apache Maven's `ComparableVersion` (maven-artifact 3.9 / 4): an integer,
 * a qualifier string, a combination of a qualifier and a number (`rc1`, `alpha-2`), or a sub-list (opened by `-`, by a
 * transition between letters and digits, or by a trailing `.qualifier`).
 */
type Item =
  | { readonly kind: 'int'; readonly digits: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'combination'; readonly value: string; readonly digits: string }
  | { readonly kind: 'list'; readonly items: Item[] };

const ECOSYSTEM = 'Maven';

/** Well-known qualifiers, oldest first; '' is the release itself. */
const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp'];
/** Spellings of the release itself. */
const RELEASE_QUALIFIERS = ['ga', 'final', 'release'];
const RELEASE_INDEX = String(QUALIFIERS.indexOf(''));

/**
 * Maven's `comparableQualifier`: known qualifiers become their index, unknown ones `"<count>-<name>"`, compared as
 * strings, so unknown qualifiers sort after all known ones and among themselves lexically.
 */
function comparableQualifier(q: string): string {
  if (RELEASE_QUALIFIERS.includes(q)) return RELEASE_INDEX;
  const i = QUALIFIERS.indexOf(q);
  return i === -1 ? `${QUALIFIERS.length}-${q}` : String(i);
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A qualifier; a single letter directly followed by a number abbreviates alpha, beta or milestone (`a1`). */
function qualifier(value: string, followedByDigit: boolean): string {
  if (followedByDigit && value.length === 1) {
    value = ({ a: 'alpha', b: 'beta', m: 'milestone' } as Record<string, string>)[value] ?? value;
  }
  return value === 'cr' ? 'rc' : value;
}

function parseItem(isCombination: boolean, isDigit: boolean, buf: string): Item {
  if (isCombination) {
    const v = buf.replaceAll('-', '');
    const firstDigit = v.search(/[0-9]/);
    const at = firstDigit === -1 ? 0 : firstDigit;
    return { kind: 'combination', value: qualifier(v.slice(0, at), true), digits: v.slice(at) || '0' };
  }
  if (isDigit) return { kind: 'int', digits: buf };
  return { kind: 'string', value: qualifier(buf, false) };
}

/** Items that compare equal to "nothing" and that normalisation may drop: 0, the empty qualifier, []. */
function isNull(item: Item): boolean {
  switch (item.kind) {
    case 'int':
      return /^0+$/.test(item.digits);
    case 'string':
      return item.value === '';
    case 'combination':
      return false;
    case 'list':
      return item.items.length === 0;
  }
}

/**
 * Maven's `ListItem.normalize`: drops a null item when it is last, or when what follows is a qualifier or a sub-list
 * starting with one (`1.0-rc1` = `1-rc1`), but keeps zeros that precede numbers (`1.0.1`).
 */
function normalize(list: Item[]): void {
  for (let i = list.length - 1; i >= 0; i--) {
    if (!isNull(list[i]!)) continue;
    const next = list[i + 1];
    if (next === undefined || next.kind === 'string') list.splice(i, 1);
    else if (next.kind === 'list') {
      const first = next.items[0];
      if (first === undefined || first.kind === 'combination' || first.kind === 'string') list.splice(i, 1);
    }
  }
}

/** Parses a version into Maven's item tree, following `ComparableVersion.parseVersion` step by step. */
function parseMaven(version: string): Item[] {
  const v = version.toLowerCase();
  const root: Item[] = [];
  let list = root;
  const stack: Item[][] = [root];
  let isDigit = false;
  let isCombination = false;
  let start = 0;
  const openList = (): void => {
    const next: Item[] = [];
    list.push({ kind: 'list', items: next });
    list = next;
    stack.push(next);
  };
  const digitAt = (i: number): boolean => v[i] !== undefined && v[i]! >= '0' && v[i]! <= '9';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '.') {
      list.push(
        i === start ? { kind: 'int', digits: '0' } : parseItem(isCombination, isDigit, v.slice(start, i)),
      );
      isCombination = false;
      start = i + 1;
    } else if (c === '-') {
      if (i === start) list.push({ kind: 'int', digits: '0' });
      else {
        // "X-1" is read as "X1", a combination.
        if (!isDigit && digitAt(i + 1)) {
          isCombination = true;
          continue;
        }
        list.push(parseItem(isCombination, isDigit, v.slice(start, i)));
      }
      start = i + 1;
      if (list.length > 0) openList();
      isCombination = false;
    } else if (digitAt(i)) {
      if (!isDigit && i > start) {
        isCombination = true; // "X1"
        if (list.length > 0) openList();
      }
      isDigit = true;
    } else {
      if (isDigit && i > start) {
        list.push(parseItem(isCombination, true, v.slice(start, i)));
        start = i;
        openList();
        isCombination = false;
      }
      isDigit = false;
    }
  }
  if (v.length > start) {
    // A trailing ".X" counts as "-X" for any qualifier X, so 1.0.0.X1 < 1.0.0-X2.
    if (!isDigit && list.length > 0) openList();
    list.push(parseItem(isCombination, isDigit, v.slice(start)));
  }
  while (stack.length > 0) normalize(stack.pop()!);
  return root;
}

function compareQualifiers(a: string, b: string): number {
  return byText(comparableQualifier(a), comparableQualifier(b));
}

/** `ComparableVersion`'s item comparison; `b` undefined means "the other list has ended here". */
function compareItem(a: Item, b: Item | undefined): number {
  switch (a.kind) {
    case 'int':
      if (b === undefined) return isNull(a) ? 0 : 1; // 1.0 == 1, 1.1 > 1
      if (b.kind === 'int') return compareDigitRuns(a.digits, b.digits);
      return 1; // 1.1 > 1-sp, 1.1 > 1-1
    case 'string':
      if (b === undefined) return compareQualifiers(a.value, ''); // 1-rc < 1, 1-ga == 1, 1-sp > 1
      if (b.kind === 'string') return compareQualifiers(a.value, b.value);
      if (b.kind === 'combination') return compareQualifiers(a.value, b.value) || -1; // X < X1
      return -1; // 1.any < 1.1, 1.any < 1-1
    case 'combination':
      if (b === undefined) return compareQualifiers(a.value, '');
      if (b.kind === 'string') return compareQualifiers(a.value, b.value) || 1; // X1 > X
      if (b.kind === 'combination')
        return compareQualifiers(a.value, b.value) || compareDigitRuns(a.digits, b.digits);
      return -1;
    case 'list':
      if (b === undefined) {
        // The whole list against nothing, not just its first item (MNG-6964).
        for (const item of a.items) {
          const c = compareItem(item, undefined);
          if (c !== 0) return c;
        }
        return 0;
      }
      if (b.kind === 'int') return -1; // 1-1 < 1.0.x
      if (b.kind !== 'list') return 1; // 1-1 > 1-sp
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
 * non-empty printable ASCII without whitespace, so that garbage is reported rather than silently ordered. Never
 * throws.
 */
export function isMavenVersion(version: string): boolean {
  return (
    typeof version === 'string' && version.length <= MAX_VERSION_LENGTH && /^[\x21-\x7e]+$/.test(version)
  );
}

/**
 * Compares two Maven versions in the order of Apache Maven's `ComparableVersion` (maven-artifact 3.9 and 4):
 * case-insensitive; items split at `.`, `-` and letter/digit transitions; numbers compare numerically and above
 * qualifiers; qualifiers order `alpha` (`a1`) < `beta` (`b1`) < `milestone` (`m1`) < `rc` = `cr` < `snapshot` <
 * release (`''` = `ga` = `final` = `release`) < `sp` < unknown qualifiers (lexically); trailing zeros are dropped
 * (`1.0.0` = `1` = `1-ga`). Returns -1, 0 or 1; throws {@link VersionError} for a string refused by
 * {@link isMavenVersion}.
 */
export function compareMaven(a: string, b: string): number {
  for (const v of [a, b])
    if (!isMavenVersion(v)) throw new VersionError(ECOSYSTEM, String(v), 'not a Maven version');
  return Math.sign(compareLists(parseMaven(a), parseMaven(b))) || 0;
}
