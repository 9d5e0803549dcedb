/**
 * Python distributions from their core metadata: `*.dist-info/METADATA` (wheels, pip installs),
 * `*.egg-info/PKG-INFO` (setuptools), and the single-file `*.egg-info` that distutils and Debian's python
 * packages install.
 */
import { purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

const METADATA =
  /(?:^|\/)[^/]+\.dist-info\/METADATA$|(?:^|\/)[^/]+\.egg-info\/PKG-INFO$|(?:^|\/)[^/]+\.egg-info$/;

/** A project name normalised per PEP 503: lower case, runs of `-`, `_`, `.` as one `-`. */
export function normalisePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** The header fields of core metadata (RFC 822 style, up to the first blank line), keys lower-cased. */
export function parseCoreMetadata(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') break; // the description body follows
    if (line.startsWith(' ') || line.startsWith('\t')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
  }
  return fields;
}

/** The Python collector: `Name` (normalised) and `Version` of each distribution. */
export const pythonCollector: Collector = {
  name: 'python',
  wants: (path) => METADATA.test(path),
  shrink(_path, content) {
    // The headers end at the first blank line; the long description (often the whole README) follows.
    const end = content.indexOf('\n\n');
    return end === -1 ? content : Buffer.from(content.subarray(0, end + 1));
  },
  collect(files) {
    const out: Package[] = [];
    for (const [path, content] of files) {
      if (!METADATA.test(path)) continue;
      const fields = parseCoreMetadata(content.toString('utf8'));
      const rawName = fields.get('name');
      const version = fields.get('version');
      if (!rawName || !version) continue;
      const name = normalisePypiName(rawName);
      out.push({
        ecosystem: 'PyPI',
        name,
        version,
        purl: purl('pypi', null, name, version),
        locations: [path],
      });
    }
    return out;
  },
};
