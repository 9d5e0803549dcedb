/**
 * One scanning measurement in a process of its own (`node --expose-gc --import tsx scan-child.ts ...`), so that its peak RSS
 * is the scanner's and not the harness's. Prints one JSON line. Peak RSS is VmHWM from /proc/self/status after
 * resetting it (`5` into /proc/self/clear_refs) once the setup is done; getrusage's maxRSS is no good here, Linux
 * carries it across execve from the (large) harness that spawned this process.
 *
 * usage:
 *   scan-child.ts image <layer blob> <iterations> <OSV directory>
 *     imports the OSV records into an in-memory SQLite metadata store, then scans the layer blob (read from
 *     the file each time, as a registry reads it from storage) once to warm up and `iterations` times:
 *     `inventory()` then `findVulnerabilities()`, each timed.
 *   scan-child.ts large <MiB> <none|gzip>
 *     `inventory()` of a generated layer of that many MiB (`test/helpers/large-layer.ts`). `none`: the tar is
 *     generated while it is scanned, never stored. `gzip`: compressed (level 1) into memory first, outside the
 *     measurement, then scanned from memory; the compressed bytes held count in the peak RSS.
 */
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { inventory } from '../../src/scanning/inventory/inventory.ts';

function statusKiB(field: 'VmRSS' | 'VmHWM'): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
}

/**
 * Collects garbage (when run with --expose-gc) so that the setup's leftovers are not counted, then resets VmHWM
 * to the current RSS; false when the kernel does not allow the reset.
 */
function resetPeak(): boolean {
  (globalThis as { gc?: () => void }).gc?.();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function print(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function image(blob: string, iterations: number, osvDir: string): Promise<void> {
  // Imported here, not at the top: the large-layer mode must not carry the database modules in its RSS.
  const { createSqliteStore } = await import('../../src/metadata/dialects.ts');
  const { importDirectory } = await import('../../src/scanning/vulndb/import.ts');
  const { findVulnerabilities } = await import('../../src/scanning/vulndb/match.ts');
  const metadata = createSqliteStore(':memory:');
  try {
    await metadata.migrate();
    const store = metadata.vulnDbStore();
    const imported = await importDirectory(store, osvDir);
    const setupRssKiB = statusKiB('VmRSS');
    const hwmReset = resetPeak();
    const runs: { inventoryMs: number; matchMs: number }[] = [];
    let packages: string[] = [];
    let os = '';
    let findings: string[] = [];
    for (let i = 0; i <= iterations; i++) {
      const t0 = performance.now();
      const inv = await inventory([createReadStream(blob)]);
      const t1 = performance.now();
      const found = await findVulnerabilities(store, inv.os, inv.packages);
      const t2 = performance.now();
      // The first run warms up (JIT, page cache) and is reported apart.
      runs.push({ inventoryMs: t1 - t0, matchMs: t2 - t1 });
      packages = inv.packages.map((pkg) => pkg.name);
      os = inv.os ? `${inv.os.id} ${inv.os.versionId ?? ''}`.trim() : '';
      findings = found.map((f) => `${f.id} ${f.package.name}`);
    }
    print({
      imported: imported.added + imported.updated + imported.unchanged,
      packages: packages.length,
      packageNames: packages,
      os,
      findings,
      warmup: runs[0],
      runs: runs.slice(1),
      setupRssKiB,
      hwmReset,
      vmHwmKiB: statusKiB('VmHWM'),
    });
  } finally {
    await metadata.close();
  }
}

async function large(mib: number, compression: string): Promise<void> {
  const { largeLayer } = await import('../../test/helpers/large-layer.ts');
  let blob: Readable;
  let generated: () => number;
  let compressedBytes: number | null = null;
  if (compression === 'gzip') {
    const layer = largeLayer(mib);
    const parts: Buffer[] = [];
    for await (const chunk of layer.stream.pipe(zlib.createGzip({ level: 1 }))) parts.push(chunk as Buffer);
    compressedBytes = parts.reduce((n, b) => n + b.length, 0);
    generated = layer.generated;
    blob = Readable.from(parts, { objectMode: false });
  } else {
    const layer = largeLayer(mib);
    blob = layer.stream;
    generated = layer.generated;
  }
  const startRssKiB = statusKiB('VmRSS');
  const hwmReset = resetPeak();
  const started = performance.now();
  const result = await inventory([blob]);
  const seconds = (performance.now() - started) / 1000;
  print({
    packages: result.packages.map((pkg) => `${pkg.ecosystem}:${pkg.name}@${pkg.version}`),
    generated: generated(),
    compressedBytes,
    seconds,
    startRssKiB,
    hwmReset,
    vmHwmKiB: statusKiB('VmHWM'),
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'image') {
  const [blob = '', iterations = '10', osvDir = ''] = args;
  await image(blob, Number(iterations), osvDir);
} else if (mode === 'large') {
  const [mib = '1024', compression = 'none'] = args;
  await large(Number(mib), compression);
} else {
  process.stderr.write(
    'usage: scan-child.ts image <blob> <iterations> <osv dir> | large <MiB> <none|gzip>\n',
  );
  process.exit(2);
}
