/**
 * The inventory of an image: its operating system and installed packages, from its layer blobs alone.
 */
import { apkCollector } from './collectors/apk.ts';
import { dpkgCollector } from './collectors/dpkg.ts';
import { goBinaryCollector } from './collectors/go-binary.ts';
import { javaCollector } from './collectors/java.ts';
import { npmCollector } from './collectors/npm.ts';
import { detectOs, wantsOsRelease } from './collectors/os-release.ts';
import { pythonCollector } from './collectors/python.ts';
import { rpmCollector } from './collectors/rpm.ts';
import { collectWantedFiles, type LayerBlob, type LayerEntryEvent } from './layers.ts';
import { DEFAULT_READ_CAP } from './tar-reader.ts';
import type { Collector, OsInfo, Package } from './types.ts';

/**
 * The collectors `inventory()` runs by default: the OS package databases (dpkg, apk, rpm), the language
 * packages (installed npm packages and npm/yarn lockfiles, Python distributions), and the streamed ones: Java
 * archives before Go executables, so that an executable `.jar` is read as an archive.
 */
export const DEFAULT_COLLECTORS: readonly Collector[] = [
  dpkgCollector,
  apkCollector,
  rpmCollector,
  npmCollector,
  pythonCollector,
  javaCollector,
  goBinaryCollector,
];

/** An image's inventory. */
export interface Inventory {
  /** From os-release; null when the image has none. */
  readonly os: OsInfo | null;
  /** Deduplicated by purl (locations merged) and sorted by ecosystem, name, version, purl. */
  readonly packages: Package[];
}

/** Options of `inventory()`. */
export interface InventoryOptions {
  /** The collectors to run (default `DEFAULT_COLLECTORS`). */
  collectors?: readonly Collector[];
  /** Wanted files larger than this are skipped (default 8 MiB), unless their collector asks for more. */
  maxFileBytes?: number;
  /** Cap on all wanted files held at once (default 256 MiB); past it, `WantedFilesTooLargeError`. */
  maxTotalBytes?: number;
  /** Observes each file entry the layer walker decided on. */
  onEntry?(event: LayerEntryEvent): void;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Merges packages with the same purl into one with the union of locations; sorts the result. */
export function dedupePackages(packages: Iterable<Package>): Package[] {
  const byPurl = new Map<string, Package>();
  for (const pkg of packages) {
    const seen = byPurl.get(pkg.purl);
    if (seen) {
      for (const location of pkg.locations)
        if (!seen.locations.includes(location)) seen.locations.push(location);
    } else {
      byPurl.set(pkg.purl, { ...pkg, locations: [...pkg.locations] });
    }
  }
  const out = [...byPurl.values()];
  for (const pkg of out) pkg.locations.sort(compare);
  return out.sort(
    (a, b) =>
      compare(a.ecosystem, b.ecosystem) ||
      compare(a.name, b.name) ||
      compare(a.version, b.version) ||
      compare(a.purl, b.purl),
  );
}

/** The collector that streams `path`: the first that says so. */
function streamerOf(collectors: readonly Collector[], path: string, mode: number): Collector | undefined {
  return collectors.find((collector) => collector.extract && collector.wantsStream?.(path, mode));
}

/**
 * The inventory of the image whose layer blobs (gzip, zstd or uncompressed tar; first = bottom) are given.
 * Each layer is streamed once, in order, in bounded memory: only the files the collectors want are buffered,
 * each up to `maxFileBytes` (or its collector's own cap); the files they stream (executables, archives) are
 * reduced to summaries as they pass. Rejects with a `LayerError` (`UnsupportedLayerError`, `CorruptLayerError`,
 * `TruncatedLayerError`) when a layer cannot be read, `WantedFilesTooLargeError` past `maxTotalBytes`.
 */
export async function inventory(
  layers: AsyncIterable<LayerBlob> | Iterable<LayerBlob>,
  options: InventoryOptions = {},
): Promise<Inventory> {
  const collectors = options.collectors ?? DEFAULT_COLLECTORS;
  const files = await collectWantedFiles(layers, {
    wants: (path) => wantsOsRelease(path) || collectors.some((collector) => collector.wants(path)),
    shrink: (path, content) => {
      // Only when a single collector wants the file: another one might need the parts this one drops.
      const takers = collectors.filter((collector) => collector.wants(path));
      const only = takers.length === 1 && !wantsOsRelease(path) ? takers[0] : undefined;
      return only?.shrink ? only.shrink(path, content) : content;
    },
    fileCap: (path) => {
      // A collector's own cap can only raise the general one.
      let cap = options.maxFileBytes ?? DEFAULT_READ_CAP;
      for (const collector of collectors) {
        const own = collector.wants(path) ? collector.maxFileBytes?.(path) : undefined;
        if (own !== undefined && own > cap) cap = own;
      }
      return cap;
    },
    wantsStream: (path, mode) => streamerOf(collectors, path, mode) !== undefined,
    extract: async (path, mode, body) => {
      const streamer = streamerOf(collectors, path, mode);
      return streamer?.extract ? streamer.extract(path, mode, body) : null;
    },
    ...(options.maxFileBytes !== undefined ? { maxFileBytes: options.maxFileBytes } : {}),
    ...(options.maxTotalBytes !== undefined ? { maxTotalBytes: options.maxTotalBytes } : {}),
    ...(options.onEntry ? { onEntry: options.onEntry } : {}),
  });
  const os = detectOs(files);
  return { os, packages: dedupePackages(collectors.flatMap((collector) => collector.collect(files, os))) };
}
