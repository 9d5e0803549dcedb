/**
 * The built-in scanner, Berth alone (there is no Distribution counterpart), each measurement in a process of its
 * own (`lib/scan-child.ts`) so that its peak RSS is the scanner's:
 *
 * 1. A Debian image of about 100 packages (`lib/scan-image.ts`: this machine's dpkg status trimmed, its
 *    os-release, some 50 MiB of filler in 3,000 files, one gzip layer read from disk): `inventory()` then
 *    `findVulnerabilities()` against an in-memory SQLite metadata store holding the OSV fixtures of
 *    `test/fixtures/osv`, timed over several iterations after a warm-up (20; 5 with --quick): median and p95 of
 *    the whole scan, medians of its two parts, and the peak RSS of the process.
 * 2. A 1 GiB layer (256 MiB with --quick) generated while it is scanned (`test/helpers/large-layer.ts`), never
 *    stored: `inventory()` once per repetition as an uncompressed tar, and once gzip-compressed (compressed into
 *    memory beforehand, outside the measurement): seconds, MiB/s of tar, peak RSS (target: below 200 MiB).
 *
 * Every run is checked: the image's inventory holds exactly the packages written into its dpkg status, on the
 * machine's OS; the large layer's inventory is exactly the packages it was generated with.
 */
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import type { BenchContext } from '../lib/context.ts';
import { formatNumber, type RowSpec } from '../lib/results.ts';
import { removeTree, run } from '../lib/proc.ts';
import { PROJECT_ROOT } from '../lib/registries.ts';
import { writeDebianImage, type DebianImage } from '../lib/scan-image.ts';
import { median, MiB, percentile } from '../lib/stats.ts';
import { LARGE_LAYER_PACKAGES } from '../../test/helpers/large-layer.ts';

/** Peak RSS allowed while scanning the large layer (Node and the TypeScript loader included). */
const LARGE_LAYER_MAX_RSS_MIB = 200;

/** Sizes of the scanning workload. */
export function scanScale(quick: boolean): { iterations: number; largeMiB: number } {
  return quick ? { iterations: 5, largeMiB: 256 } : { iterations: 20, largeMiB: 1024 };
}

function rows(image: string, large: string): Record<string, RowSpec> {
  const row = (
    id: string,
    label: string,
    unit: string,
    better: 'lower' | 'higher',
    note: string,
  ): RowSpec => ({
    id: `scan.${id}`,
    family: 'scan',
    label,
    unit,
    better,
    note,
  });
  const rssTarget = { kind: 'berth-below', value: LARGE_LAYER_MAX_RSS_MIB } as const;
  return {
    scanMedian: row(
      'image.median',
      `Scan of ${image}: inventory + match, median`,
      'ms',
      'lower',
      'Berth alone; layer read from disk (page cache), OSV fixtures in an in-memory SQLite store',
    ),
    scanP95: row(
      'image.p95',
      'Debian image scan: inventory + match, p95',
      'ms',
      'lower',
      'after one warm-up scan',
    ),
    inventory: row('image.inventory', 'Debian image scan: inventory, median', 'ms', 'lower', 'inventory()'),
    match: row('image.match', 'Debian image scan: match, median', 'ms', 'lower', 'findVulnerabilities()'),
    imageRss: row(
      'image.rss',
      'Debian image scan: peak RSS of the scanning process',
      'MiB',
      'lower',
      'VmHWM reset after the store was set up; Node and the TypeScript loader included',
    ),
    largeSeconds: row(
      'large.seconds',
      `Inventory of a ${large} layer (tar): time`,
      's',
      'lower',
      'generated while scanned, never stored; a quarter of it one executable the Go detector reads to its end',
    ),
    largeThroughput: row(
      'large.throughput',
      `Inventory of a ${large} layer (tar): throughput`,
      'MiB/s',
      'higher',
      'MiB of tar per second',
    ),
    largeRss: {
      ...row(
        'large.rss',
        `Inventory of a ${large} layer (tar): peak RSS`,
        'MiB',
        'lower',
        'VmHWM of the scanning process; Node and the TypeScript loader included',
      ),
      target: rssTarget,
    },
    gzipThroughput: row(
      'large-gzip.throughput',
      `Inventory of a ${large} layer (tar.gz): throughput`,
      'MiB/s',
      'higher',
      'MiB of uncompressed tar per second; compressed (level 1) into memory before the measurement',
    ),
    gzipRss: {
      ...row(
        'large-gzip.rss',
        `Inventory of a ${large} layer (tar.gz): peak RSS`,
        'MiB',
        'lower',
        'VmHWM of the scanning process; includes the compressed layer held in memory',
      ),
      target: rssTarget,
    },
  };
}

/** Runs `lib/scan-child.ts` with `args` and returns its JSON line. */
async function child<T>(args: string[]): Promise<T> {
  const script = path.join(PROJECT_ROOT, 'bench', 'lib', 'scan-child.ts');
  const r = await run(process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    timeoutMs: 600_000,
  });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as T;
}

interface ImageResult {
  imported: number;
  packages: number;
  packageNames: string[];
  os: string;
  findings: string[];
  warmup: { inventoryMs: number; matchMs: number };
  runs: { inventoryMs: number; matchMs: number }[];
  setupRssKiB: number | null;
  hwmReset: boolean;
  vmHwmKiB: number | null;
}

interface LargeResult {
  packages: string[];
  generated: number;
  compressedBytes: number | null;
  seconds: number;
  startRssKiB: number | null;
  hwmReset: boolean;
  vmHwmKiB: number | null;
}

export async function scanWorkload(ctx: BenchContext): Promise<void> {
  const scale = scanScale(ctx.options.quick);
  const dir = await mkdtemp(path.join(ctx.tmp, 'scan-'));
  try {
    const blob = path.join(dir, 'layer.tar.gz');
    ctx.log('  writing the Debian image (this machine’s dpkg status trimmed, filler files)');
    const image = await writeDebianImage(blob);
    const imageText =
      `a Debian image (${image.packages.length} packages, ${formatNumber(image.entries)} files, ` +
      `${formatNumber(image.blobBytes / MiB)} MiB gzip)`;
    const spec = rows(
      imageText,
      `${scale.largeMiB >= 1024 ? `${scale.largeMiB / 1024} GiB` : `${scale.largeMiB} MiB`}`,
    );
    for (const s of Object.values(spec)) ctx.rec.define(s);
    for (let rep = 0; rep < ctx.options.reps; rep++) {
      await imageRun(ctx, spec, rep, blob, image, scale.iterations);
      for (const compression of ['none', 'gzip'] as const)
        await largeRun(ctx, spec, rep, scale.largeMiB, compression);
    }
  } finally {
    await removeTree(dir);
  }
}

async function imageRun(
  ctx: BenchContext,
  spec: Record<string, RowSpec>,
  rep: number,
  blob: string,
  image: DebianImage,
  iterations: number,
): Promise<void> {
  const ids = [spec.scanMedian!, spec.scanP95!, spec.inventory!, spec.match!, spec.imageRss!];
  try {
    ctx.log(`  scanning the Debian image ${iterations} times (rep ${rep + 1})`);
    const r = await child<ImageResult>([
      'image',
      blob,
      String(iterations),
      path.join(PROJECT_ROOT, 'test', 'fixtures', 'osv'),
    ]);
    const found = [...r.packageNames].sort();
    const written = [...image.packages].sort();
    if (found.join('\n') !== written.join('\n')) {
      const missing = written.filter((n) => !found.includes(n));
      const extra = found.filter((n) => !written.includes(n));
      throw new Error(
        `wrong inventory: missing ${missing.join(', ') || 'none'}, unexpected ${extra.join(', ') || 'none'}`,
      );
    }
    if (r.os === '') throw new Error('no operating system detected');
    if (r.imported === 0) throw new Error('no OSV record imported');
    const totals = r.runs.map((x) => x.inventoryMs + x.matchMs);
    const value = median(totals);
    const details = {
      iterations,
      totalsMs: totals,
      warmupMs: r.warmup.inventoryMs + r.warmup.matchMs,
      os: r.os,
      packages: r.packages,
      findings: r.findings,
      osvRecords: r.imported,
      blobBytes: image.blobBytes,
      tarBytes: image.tarBytes,
      entries: image.entries,
      setupRssMiB: (r.setupRssKiB ?? Number.NaN) / 1024,
      hwmReset: r.hwmReset,
    };
    const rssMiB = (r.vmHwmKiB ?? Number.NaN) / 1024;
    ctx.rec.add(spec.scanMedian!.id, 'berth', rep, value, details);
    ctx.rec.add(spec.scanP95!.id, 'berth', rep, percentile(totals, 95));
    ctx.rec.add(spec.inventory!.id, 'berth', rep, median(r.runs.map((x) => x.inventoryMs)));
    ctx.rec.add(spec.match!.id, 'berth', rep, median(r.runs.map((x) => x.matchMs)));
    if (Number.isFinite(rssMiB)) ctx.rec.add(spec.imageRss!.id, 'berth', rep, rssMiB);
    ctx.log(
      `    median ${value.toFixed(0)} ms, p95 ${percentile(totals, 95).toFixed(0)} ms (${r.os}, ${r.packages} packages, ` +
        `${r.findings.length} finding(s)), peak RSS ${rssMiB.toFixed(0)} MiB; verified`,
    );
  } catch (err) {
    for (const s of ids) ctx.rec.fail(s.id, 'berth', rep, err);
    ctx.log(`  ! scan of the Debian image: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function largeRun(
  ctx: BenchContext,
  spec: Record<string, RowSpec>,
  rep: number,
  mib: number,
  compression: 'none' | 'gzip',
): Promise<void> {
  const ids =
    compression === 'none'
      ? [spec.largeSeconds!, spec.largeThroughput!, spec.largeRss!]
      : [spec.gzipThroughput!, spec.gzipRss!];
  try {
    ctx.log(
      `  inventory of a ${mib} MiB layer (${compression === 'none' ? 'tar' : 'tar.gz'}, rep ${rep + 1})`,
    );
    const r = await child<LargeResult>(['large', String(mib), compression]);
    if (r.packages.join('\n') !== LARGE_LAYER_PACKAGES.join('\n')) {
      throw new Error(`wrong inventory: ${r.packages.join(', ')}`);
    }
    if (r.generated < mib * MiB) throw new Error(`only ${r.generated} bytes generated`);
    const throughput = r.generated / MiB / r.seconds;
    const rssMiB = (r.vmHwmKiB ?? Number.NaN) / 1024;
    const details = {
      seconds: r.seconds,
      tarBytes: r.generated,
      compressedBytes: r.compressedBytes,
      startRssMiB: (r.startRssKiB ?? Number.NaN) / 1024,
      hwmReset: r.hwmReset,
    };
    if (compression === 'none') {
      ctx.rec.add(spec.largeSeconds!.id, 'berth', rep, r.seconds, details);
      ctx.rec.add(spec.largeThroughput!.id, 'berth', rep, throughput);
      if (Number.isFinite(rssMiB)) ctx.rec.add(spec.largeRss!.id, 'berth', rep, rssMiB);
    } else {
      ctx.rec.add(spec.gzipThroughput!.id, 'berth', rep, throughput, details);
      if (Number.isFinite(rssMiB)) ctx.rec.add(spec.gzipRss!.id, 'berth', rep, rssMiB);
    }
    ctx.log(
      `    ${r.seconds.toFixed(2)} s, ${throughput.toFixed(0)} MiB/s, peak RSS ${rssMiB.toFixed(0)} MiB; verified`,
    );
  } catch (err) {
    for (const s of ids) ctx.rec.fail(s.id, 'berth', rep, err);
    ctx.log(`  ! inventory of the large layer: ${err instanceof Error ? err.message : String(err)}`);
  }
}
