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
