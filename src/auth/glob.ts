/**
 * Repository name globs for repository rules: `*` matches within one path component, `**` across components,
 * `?` one character (not `/`). Everything else is literal.
 */
import { LRUCache } from 'lru-cache';

/** Compiled patterns: rules are few, but their patterns come from the database and are bounded here. */
const cache = new LRUCache<string, RegExp>({ max: 10_000 });

export function globToRegExp(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re) return re;
  let src = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        src += '.*';
        i++;
      } else {
        src += '[^/]*';
      }
    } else if (c === '?') {
      src += '[^/]';
    } else {
      src += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  re = new RegExp(`^${src}$`);
  cache.set(pattern, re);
  return re;
}

/** True when `name` matches the glob `pattern`. */
export function globMatch(pattern: string, name: string): boolean {
  return globToRegExp(pattern).test(name);
}
