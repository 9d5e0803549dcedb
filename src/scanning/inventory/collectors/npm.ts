/**
 * npm packages from the `package.json` of every installed package under a `node_modules` directory, and the
 * packages pinned by the lockfiles of applications (`package-lock.json` versions 1 to 3, yarn.lock version 1)
 * outside `node_modules`, which images often carry without the installed tree matching it line for line.
 */
import { purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

/** `…/node_modules/<name>/package.json` or `…/node_modules/@<scope>/<name>/package.json`, at any depth. */
// Names starting with '.' are tool state (`.bin`, `.cache`, pnpm's `.pnpm` store keeps its packages in nested
// `node_modules` that match on their own), not packages.
const MANIFEST = /(?:^|\/)node_modules\/(?:@[^/.][^/]*\/)?[^/@.][^/]*\/package\.json$/;

/** `…/package-lock.json` or `…/yarn.lock` of an application: not inside a `node_modules` tree. */
const LOCKFILE = /(?:^|\/)(?:package-lock\.json|yarn\.lock)$/;

function isLockfile(path: string): boolean {
  return LOCKFILE.test(path) && !/(?:^|\/)node_modules\//.test(path);
}

/** A registry version (SemVer-shaped), not a `file:`, `git+…`, `npm:` alias or URL specifier. */
function isRegistryVersion(version: unknown): version is string {
  return typeof version === 'string' && /^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$/.test(version);
}

/**
 * The `[name, version]` pairs a `package-lock.json` pins. Versions 2 and 3 list every installed path under
 * `packages` (`node_modules/a/node_modules/b`; the name is the part after the last `node_modules/` unless an
 * alias entry names the real package); version 1 nests `dependencies`. Links, the root project and versions
 * that are not from a registry are left out. Never throws: malformed content gives what could be read.
 */
export function parsePackageLock(text: string): [name: string, version: string][] {
  let lock: unknown;
  try {
    lock = JSON.parse(text);
  } catch {
    return [];
  }
  if (typeof lock !== 'object' || lock === null) return [];
  const out: [string, string][] = [];
  const { packages, dependencies } = lock as { packages?: unknown; dependencies?: unknown };
  if (typeof packages === 'object' && packages !== null) {
    for (const [key, value] of Object.entries(packages)) {
      const at = key.lastIndexOf('node_modules/');
      if (at === -1 || typeof value !== 'object' || value === null) continue;
      const { name, version, link } = value as { name?: unknown; version?: unknown; link?: unknown };
      if (link === true || !isRegistryVersion(version)) continue;
      out.push([
        typeof name === 'string' && name !== '' ? name : key.slice(at + 'node_modules/'.length),
        version,
      ]);
    }
    return out;
  }
  const walk = (deps: unknown, depth: number): void => {
    if (typeof deps !== 'object' || deps === null || depth > 64) return;
    for (const [name, value] of Object.entries(deps)) {
      if (typeof value !== 'object' || value === null) continue;
      const { version, dependencies: nested } = value as { version?: unknown; dependencies?: unknown };
      if (isRegistryVersion(version)) out.push([name, version]);
      walk(nested, depth + 1);
    }
  };
  walk(dependencies, 0);
  return out;
}

/**
 * The `[name, version]` pairs of a yarn.lock version 1: entries headed by their specifiers (`"a@^1.0.0", a@~1.1:`)
 * with an indented `version "1.1.3"` line. A yarn 2+ lockfile (YAML, with `__metadata`) gives nothing.
 */
export function parseYarnLock(text: string): [name: string, version: string][] {
  if (/^__metadata:/m.test(text)) return [];
  const out: [string, string][] = [];
  let name: string | null = null;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (!line.startsWith(' ')) {
      const first = line.replace(/:\s*$/, '').split(',')[0]!.trim().replace(/^"|"$/g, '');
      const at = first.lastIndexOf('@');
      name = at > 0 ? first.slice(0, at) : null;
      continue;
    }
    const version = /^\s+version:?\s+"?([^"\s]+)"?\s*$/.exec(line);
    if (name && version && isRegistryVersion(version[1])) {
      out.push([name, version[1]]);
      name = null;
    }
  }
  return out;
}

function npmPackage(name: string, version: string, location: string): Package {
  const scoped = /^(@[^/]+)\/([^/]+)$/.exec(name);
  return {
    ecosystem: 'npm',
    name,
    version,
    purl: scoped ? purl('npm', scoped[1]!, scoped[2]!, version) : purl('npm', null, name, version),
    locations: [location],
  };
}

function lockfilePairs(path: string, text: string): [string, string][] {
  return path.endsWith('yarn.lock') ? parseYarnLock(text) : parsePackageLock(text);
}

/**
 * The npm collector: `name` and `version` of each installed package's manifest, and the pins of each lockfile
 * (the same package found both ways is one package with both locations, by `dedupePackages`).
 */
export const npmCollector: Collector = {
  name: 'npm',
  wants: (path) => MANIFEST.test(path) || isLockfile(path),
  shrink(path, content) {
    if (isLockfile(path)) {
      // A lockfile can run to megabytes of integrity hashes and URLs: only the pins are kept.
      return Buffer.from(JSON.stringify({ pins: lockfilePairs(path, content.toString('utf8')) }));
    }
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
      if (isLockfile(path)) {
        out.push(...lockfileContent(path, content).map(([name, version]) => npmPackage(name, version, path)));
        continue;
      }
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
      out.push(npmPackage(name, version, path));
    }
    return out;
  },
};

/** The pins of a lockfile as `collect` gets it: shrunk to `{ pins }` by `shrink`, or the file itself. */
function lockfileContent(path: string, content: Buffer): [string, string][] {
  const text = content.toString('utf8');
  try {
    const shrunk = JSON.parse(text) as { pins?: unknown };
    if (Array.isArray(shrunk.pins)) {
      return shrunk.pins.filter(
        (pin): pin is [string, string] =>
          Array.isArray(pin) && typeof pin[0] === 'string' && typeof pin[1] === 'string',
      );
    }
  } catch {
    // not the shrunk form: a yarn.lock
  }
  return lockfilePairs(path, text);
}
