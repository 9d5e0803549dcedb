/**
 * Operating-system detection from os-release (freedesktop.org): `etc/os-release`, falling back to
 * `usr/lib/os-release` (which `etc/os-release` usually links to).
 */
import type { OsInfo } from '../types.ts';

/** The paths os-release can live at, in order of precedence. */
export const OS_RELEASE_PATHS = ['etc/os-release', 'usr/lib/os-release'] as const;

/** True for the os-release paths. */
export function wantsOsRelease(path: string): boolean {
  return path === OS_RELEASE_PATHS[0] || path === OS_RELEASE_PATHS[1];
}

/**
 * Parses os-release text: `KEY=value` lines, values optionally in single or double quotes (with backslash
 * escapes inside double quotes); comments and blank lines ignored.
 */
export function parseOsRelease(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2]!;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1).replace(/\\(["\\`$])/g, '$1');
    } else if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) {
      value = value.slice(1, -1);
    }
    fields.set(match[1]!, value);
  }
  return fields;
}

/** The OS of the final filesystem, or null when no os-release is present or it has no `ID`. */
export function detectOs(files: ReadonlyMap<string, Buffer>): OsInfo | null {
  for (const path of OS_RELEASE_PATHS) {
    const content = files.get(path);
    if (!content) continue;
    const fields = parseOsRelease(content.toString('utf8'));
    const id = fields.get('ID')?.toLowerCase();
    if (!id) continue;
    return {
      id,
      versionId: fields.get('VERSION_ID') || null,
      versionCodename: fields.get('VERSION_CODENAME') || null,
      idLike: (fields.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    };
  }
  return null;
}
