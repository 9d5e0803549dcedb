/**
 * Docker token scopes: `<type>:<name>:<actions>`, several space-separated in one parameter. Names may contain a
 * `host:port`, so a scope is split on its first and last `:` only.
 */
import type { AccessEntry } from './principal.ts';

/** Parses every scope in `values` (each may hold several, space-separated); malformed ones are ignored. */
export function parseScopes(values: readonly string[]): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const value of values) {
    for (const scope of value.split(' ')) {
      if (scope === '') continue;
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) continue;
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const actions = scope
        .slice(last + 1)
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== '');
      if (name === '' || actions.length === 0) continue;
      out.push({ type, name, actions: [...new Set(actions)] });
    }
  }
  return mergeAccess(out);
}

/** Merges entries naming the same resource (union of their actions). */
export function mergeAccess(entries: readonly AccessEntry[]): AccessEntry[] {
  const byKey = new Map<string, AccessEntry>();
  for (const e of entries) {
    const key = `${e.type}:${e.name}`;
    const prev = byKey.get(key);
    byKey.set(key, prev ? { ...prev, actions: [...new Set([...prev.actions, ...e.actions])] } : { ...e });
  }
  return [...byKey.values()];
}

/** Formats access entries as a scope string (`repository:a/b:pull,push registry:catalog:*`). */
export function formatScopes(entries: readonly AccessEntry[]): string {
  return entries.map((e) => `${e.type}:${e.name}:${e.actions.join(',')}`).join(' ');
}
