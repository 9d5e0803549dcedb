/** Alpine packages from the apk installed database, `lib/apk/db/installed`. */
import { distroQualifier, purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

const INSTALLED = 'lib/apk/db/installed';

/**
 * Parses the apk installed database: one `X:value` line per field (a single-letter key), packages separated by
 * blank lines. Keys that repeat within a package (`F:`, `R:` for its files) keep their last value, which is
 * enough for the package-level keys read here.
 */
export function parseApkInstalled(text: string): Map<string, string>[] {
  const packages: Map<string, string>[] = [];
  let current = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) packages.push(current);
      current = new Map();
      continue;
    }
    if (line.length >= 2 && line[1] === ':') current.set(line[0]!, line.slice(2));
  }
  if (current.size > 0) packages.push(current);
  return packages;
}

/** The apk collector: `P:` name, `V:` version, `A:` arch, `o:` origin (the source package, same version). */
export const apkCollector: Collector = {
  name: 'apk',
  wants: (path) => path === INSTALLED,
  collect(files, os) {
    const content = files.get(INSTALLED);
    if (!content) return [];
    const distro = distroQualifier(os);
    const out: Package[] = [];
    for (const fields of parseApkInstalled(content.toString('utf8'))) {
      const name = fields.get('P');
      const version = fields.get('V');
      if (!name || !version) continue;
      const origin = fields.get('o') || name;
      out.push({
        ecosystem: 'Alpine',
        name,
        version,
        sourceName: origin,
        sourceVersion: version,
        purl: purl('apk', 'alpine', name, version, {
          arch: fields.get('A'),
          distro,
          upstream: origin === name ? null : origin,
        }),
        locations: [INSTALLED],
      });
    }
    return out;
  },
};
