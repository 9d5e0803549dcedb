/**
 * Debian and Ubuntu packages from the dpkg database: `var/lib/dpkg/status`, and the per-package files of
 * `var/lib/dpkg/status.d/` that distroless images carry instead.
 */
import { distroQualifier, purl } from '../purl.ts';
import type { Collector, OsInfo, Package } from '../types.ts';

const STATUS = 'var/lib/dpkg/status';
const STATUS_D = 'var/lib/dpkg/status.d/';

/**
 * Parses deb822 control data (Debian Policy 5.1): paragraphs separated by blank lines, `Field: value` lines,
 * continuation lines starting with a space or tab. Field names are matched case-insensitively, so they are
 * returned lower-cased.
 */
export function parseDeb822(text: string): Map<string, string>[] {
  const paragraphs: Map<string, string>[] = [];
  let current = new Map<string, string>();
  let lastKey: string | null = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) paragraphs.push(current);
      current = new Map();
      lastKey = null;
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (lastKey !== null) current.set(lastKey, `${current.get(lastKey)}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    lastKey = line.slice(0, colon).trim().toLowerCase();
    current.set(lastKey, line.slice(colon + 1).trim());
  }
  if (current.size > 0) paragraphs.push(current);
  return paragraphs;
}

/** Ubuntu (or a derivative that says it is like Ubuntu) vs Debian for everything else dpkg-based. */
function flavour(os: OsInfo | null): { ecosystem: 'Debian' | 'Ubuntu'; namespace: string } {
  if (os && (os.id === 'ubuntu' || (os.id !== 'debian' && os.idLike.includes('ubuntu')))) {
    return { ecosystem: 'Ubuntu', namespace: 'ubuntu' };
  }
  return { ecosystem: 'Debian', namespace: 'debian' };
}

/**
 * `Status: <want> <flag> <status>` says the package is on disk when the flag is `ok` and the status
 * `installed`: `install ok installed`, and also `hold ok installed` (pinned) and `deinstall ok installed`
 * (selected for removal, still installed), as dpkg-query lists them. `config-files`, `half-installed` and the
 * like are not.
 */
function isInstalled(status: string | undefined): boolean {
  const words = status?.split(/\s+/) ?? [];
  return words.length === 3 && words[1] === 'ok' && words[2] === 'installed';
}

/** The packages of one database file. `requireStatus`: only `install ok installed` paragraphs count. */
function packagesOf(text: string, location: string, os: OsInfo | null, requireStatus: boolean): Package[] {
  const { ecosystem, namespace } = flavour(os);
  const distro = distroQualifier(os);
  const out: Package[] = [];
  for (const paragraph of parseDeb822(text)) {
    const name = paragraph.get('package');
    const version = paragraph.get('version');
    if (!name || !version) continue;
    const status = paragraph.get('status');
    // status.d files of distroless images carry no Status field: every paragraph there is installed.
    if ((status !== undefined || requireStatus) && !isInstalled(status)) continue;
    // `Source: name (version)` when the source version differs from the binary's, `Source: name` otherwise.
    const source = /^(\S+)(?:\s+\(([^)]+)\))?$/.exec(paragraph.get('source') ?? '');
    const sourceName = source?.[1] ?? name;
    const sourceVersion = source?.[2] ?? version;
    const arch = paragraph.get('architecture');
    const upstream =
      sourceName === name ? null : sourceVersion === version ? sourceName : `${sourceName}@${sourceVersion}`;
    out.push({
      ecosystem,
      name,
      version,
      sourceName,
      sourceVersion,
      purl: purl('deb', namespace, name, version, { arch, distro, upstream }),
      locations: [location],
    });
  }
  return out;
}

/** The dpkg collector. */
export const dpkgCollector: Collector = {
  name: 'dpkg',
  wants(path) {
    if (path === STATUS) return true;
    if (!path.startsWith(STATUS_D)) return false;
    const file = path.slice(STATUS_D.length);
    // status.d also holds `<pkg>.md5sums` lists in recent distroless images: not control data.
    return file !== '' && !file.includes('/') && !file.endsWith('.md5sums');
  },
  collect(files, os) {
    const out: Package[] = [];
    for (const [path, content] of files) {
      if (!this.wants(path)) continue;
      out.push(...packagesOf(content.toString('utf8'), path, os, path === STATUS));
    }
    return out;
  },
};
