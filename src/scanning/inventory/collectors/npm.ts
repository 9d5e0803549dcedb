/** npm packages from the `package.json` of every installed package under a `node_modules` directory. */
import { purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

/** `…/node_modules/<name>/package.json` or `…/node_modules/@<scope>/<name>/package.json`, at any depth. */
// Names starting with '.' are tool state (`.bin`, `.cache`, pnpm's `.pnpm` store keeps its packages in nested
// `node_modules` that match on their own), not packages.
const MANIFEST = /(?:^|\/)node_modules\/(?:@[^/.][^/]*\/)?[^/@.][^/]*\/package\.json$/;

/** The npm collector: `name` and `version` of each installed package's manifest. */
export const npmCollector: Collector = {
  name: 'npm',
  wants: (path) => MANIFEST.test(path),
  shrink(_path, content) {
    // A manifest can hold long READMEs (older npm copied them in) and scripts; only name and version matter.
    try {
      const { name, version } = JSON.parse(content.toString('utf8')) as { name?: unknown; version?: unknown };
      return Buffer.from(JSON.stringify({ name, version }));
    } catch {
      return Buffer.alloc(0); // not JSON: `collect` would skip it anyway
    }
  },
  collect(files) {
    const out: Package[] = [];
    for (const [path, content] of files) {
      if (!MANIFEST.test(path)) continue;
      let manifest: unknown;
      try {
        manifest = JSON.parse(content.toString('utf8'));
      } catch {
        continue;
      }
      if (typeof manifest !== 'object' || manifest === null) continue;
      const { name, version } = manifest as { name?: unknown; version?: unknown };
      if (typeof name !== 'string' || typeof version !== 'string' || name === '' || version === '') continue;
      const scoped = /^(@[^/]+)\/([^/]+)$/.exec(name);
      out.push({
        ecosystem: 'npm',
        name,
        version,
        purl: scoped ? purl('npm', scoped[1]!, scoped[2]!, version) : purl('npm', null, name, version),
        locations: [path],
      });
    }
    return out;
  },
};
