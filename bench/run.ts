/**
 * `npm run bench [-- --quick] [--reps N] [--only push,pull,...]`: Berth against CNCF Distribution 2.8.2 on the
 * same workloads, on this machine, in one run. Prints a table of medians with the Berth/Distribution ratio and
 * each row's target, and writes bench/results.json, bench/report.md and bench/report-chart.svg.
 * See bench/README.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  withRegistries,
  type BenchContext,
  type BenchData,
  type BenchOptions,
  type MachineInfo,
  type Registries,
} from './lib/context.ts';
import {
  BlobSource,
  hashFile,
  residentFile,
  VariantFactory,
  writeOciLayout,
  writeRandomFile,
} from './lib/data.ts';
import { ensureDebianPackage, removeTree, run, syncDisks } from './lib/proc.ts';
import { buildBerth, PROJECT_ROOT, stopAllRegistries } from './lib/registries.ts';
import { consoleTable, summary, writeOutputs, type RunMeta } from './lib/report.ts';
import { Recorder } from './lib/results.ts';
import { createSkopeo } from './lib/skopeo.ts';
import { GiB, median, MiB, secondsSince } from './lib/stats.ts';
import { bigPushWorkload } from './workloads/big-push.ts';
import { catalogWorkload } from './workloads/catalog.ts';
import { gcWorkload } from './workloads/gc.ts';
import { manifestWorkload } from './workloads/manifests.ts';
import { metricsOverheadWorkload } from './workloads/metrics-overhead.ts';
import { mirrorWorkload } from './workloads/mirror.ts';
import { webhooksOverheadWorkload } from './workloads/webhooks-overhead.ts';
import { pullWorkload } from './workloads/pull.ts';
import { pushWorkload } from './workloads/push.ts';
import { scanWorkload } from './workloads/scan.ts';
import { smallPullsWorkload } from './workloads/small-pulls.ts';
import { tagsWorkload } from './workloads/tags.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

const FAMILIES: Record<string, (ctx: BenchContext, regs: Registries) => Promise<void>> = {
  push: pushWorkload,
  pull: pullWorkload,
  manifests: manifestWorkload,
  'small-pulls': smallPullsWorkload,
  tags: tagsWorkload,
  catalog: catalogWorkload,
};

/**
 * Families run in groups, each group on freshly started registries: pull reuses the blobs push left behind;
 * the catalog needs registries holding only its own repositories; the big push starts a fresh registry per run.
 */
const GROUPS: readonly (readonly string[])[] = [
  ['push', 'pull'],
  ['manifests', 'small-pulls', 'tags'],
  ['catalog'],
];
/**
 * Families with no Distribution to compare with: they start their own Berth instances only (metrics, webhooks)
 * or no registry at all (scan: the scanner's functions in a process of their own).
 */
const SOLO_FAMILIES = ['metrics', 'webhooks', 'scan'];
/** Families that start no registry server: they generate content on disk and run each collector offline. */
const OFFLINE_FAMILIES = ['gc'];
const ALL_FAMILIES = [...GROUPS.flat(), 'big-push', 'mirror', ...OFFLINE_FAMILIES, ...SOLO_FAMILIES];

const USAGE = `usage: npm run bench [-- [--quick] [--reps N] [--only FAMILY,...]]

  --quick        256 MiB instead of 1 GiB, 5 s of load instead of 20 s, 1,000 tags and 500 repositories,
                 a 1 GiB memory-watched push instead of 5 GiB, garbage collection of 2,000 manifests
                 instead of 100,000, a 64 MiB image for the pull-through cache instead of 1 GiB,
                 a 256 MiB layer for the scanner instead of 1 GiB and 5 scans of the Debian image
                 instead of 20, 1 repetition (under 2 minutes)
  --reps N       repetitions per workload and registry (default 3; 1 with --quick)
  --only LIST    run only these workload families: ${ALL_FAMILIES.join(', ')}
`;

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = values.quick === true;
  const reps = values.reps === undefined ? (quick ? 1 : 3) : Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1)
    throw new Error(`--reps must be a positive integer, got ${values.reps}`);
  const only = new Set(
    (values.only ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const f of only) {
    if (!ALL_FAMILIES.includes(f)) {
      throw new Error(`--only: unknown workload family ${f} (${ALL_FAMILIES.join(', ')})`);
    }
  }
  return {
    quick,
    reps,
    blobSize: quick ? 256 * MiB : GiB,
    bigPushSize: quick ? GiB : 5 * GiB,
    chunkSize: 8 * MiB,
    loadSeconds: quick ? 4 : 20,
    connections: 50,
    smallPulls: 200,
    smallBlobSize: MiB,
    tags: quick ? 1_000 : 10_000,
    repos: quick ? 500 : 100_000,
    seedConcurrency: 32,
    only,
  };
}

const QUICK_NOTES = [
  'blobs of 256 MiB instead of 1 GiB (push, pull, page-cache read);',
  'the memory-watched push is 1 GiB instead of 5 GiB (the 200 MiB RSS target is meant for 5 GiB);',
  'manifest GET/HEAD load runs 5 s instead of 20 s;',
  '1,000 tags instead of 10,000;',
  '500 repositories instead of 100,000, catalog pages of n=100 instead of n=1000 (the 20 ms catalog-page target is meant for 1000 of 100,000), 5 page samples instead of 10;',
  '3 bursts of parallel small pulls instead of 5;',
  'pull-through cache: a 64 MiB image (4 x 16 MiB) instead of 1 GiB (4 x 256 MiB), 50 concurrent pulls of a 16 MiB layer instead of 256 MiB;',
  'scanning: the generated layer is 256 MiB instead of 1 GiB (the 200 MiB RSS target is meant for 1 GiB), 5 timed scans of the Debian image instead of 20;',
  'garbage collection of 2,000 manifests / 20,000 blobs instead of 100,000 / 1,000,000 (the 60 s and 300 MiB targets are meant for the full size), and 500 / 5,000 instead of 10,000 / 100,000 for the comparison with Distribution;',
  'one repetition per workload and registry instead of 3, so the "medians" are single runs.',
];

const started = performance.now();
function log(message: string): void {
  const t = secondsSince(started).toFixed(1).padStart(6);
  process.stderr.write(`[${t}s] ${message}\n`);
}

async function versionOf(command: string, args: string[]): Promise<string> {
  try {
    const r = await run(command, args, { allowFailure: true });
    return (r.stdout || r.stderr).trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

async function berthRevision(): Promise<string> {
  try {
    const rev = (await run('git', ['-C', PROJECT_ROOT, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
    const dirty = (
      await run('git', ['-C', PROJECT_ROOT, 'status', '--porcelain', '--untracked-files=no'])
    ).stdout.trim();
    return `${rev}${dirty ? ' with uncommitted changes' : ''}`;
  } catch {
    return '(unknown revision)';
  }
}

/**
 * `cat FILE > /dev/null` of the cached file: the file named as often as needed to read at least 1 GiB (so the
 * start of `cat` is small against the read), minus the same command on an empty file; median of 5.
 */
async function pageCacheSpeed(file: string, size: number, tmp: string): Promise<number> {
  const empty = path.join(tmp, 'empty');
  await writeFile(empty, '');
  const times = Math.max(1, Math.ceil(GiB / size));
  const cat = async (f: string): Promise<number> =>
    (await run('sh', ['-c', 'cat "$@" > /dev/null', 'sh', ...Array<string>(times).fill(f)])).seconds;
  await cat(file); // make sure it is cached
  const full: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 5; i++) {
    full.push(await cat(file));
    base.push(await cat(empty));
  }
  const seconds = Math.max(1e-6, median(full) - median(base));
  return (size * times) / MiB / seconds;
}

/** `dd if=FILE of=TMP bs=4M conv=fsync`: how fast this disk takes a durable write of the data file. */
async function diskWriteSpeed(file: string, size: number, tmp: string): Promise<number> {
  const out = path.join(tmp, 'dd-test');
  await syncDisks();
  const r = await run('dd', [`if=${file}`, `of=${out}`, 'bs=4M', 'conv=fsync']);
  await rm(out, { force: true });
  return size / MiB / r.seconds;
}

async function machineInfo(data: BenchData, tmp: string): Promise<MachineInfo> {
  const pageCacheMiBs = await pageCacheSpeed(data.file, data.fileSize, tmp);
  const diskWriteMiBs = await diskWriteSpeed(data.file, data.fileSize, tmp);
  const source = new BlobSource(
    [{ kind: 'file', path: data.file, start: 0, length: data.fileSize }],
    'unknown',
  );
  // What a verified pull costs the harness besides the network: each 1 MiB is copied into a reused read buffer
  // (as the raw client's socket reads do) and compared with the expected bytes, held in memory.
  const check = await source.syncVerifier();
  const readBuffer = Buffer.allocUnsafe(MiB);
  const bytes = (await residentFile(data.file)) as Buffer;
  let start = performance.now();
  for (let o = 0; o < bytes.length; o += MiB) {
    const n = bytes.copy(readBuffer, 0, o, Math.min(bytes.length, o + MiB));
    check.push(readBuffer.subarray(0, n));
  }
  check.finish();
  const verifyCeilingMiBs = data.fileSize / MiB / secondsSince(start);
  start = performance.now();
  await hashFile(data.file);
  const sha256MiBs = data.fileSize / MiB / secondsSince(start);
  return { pageCacheMiBs, diskWriteMiBs, verifyCeilingMiBs, sha256MiBs };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const selected = ALL_FAMILIES.filter((f) => options.only.size === 0 || options.only.has(f));
  const startedAt = new Date().toISOString();
  const loadAtStart = os.loadavg()[0] ?? 0;
  log(
    `berth bench (${options.quick ? 'quick' : 'full'} mode, ${options.reps} repetition(s)): ${selected.join(', ')}`,
  );

  const needsDistribution = selected.some((f) => !SOLO_FAMILIES.includes(f));
  if (needsDistribution && !(await ensureDebianPackage('docker-registry', 'docker-registry', log))) {
    throw new Error('docker-registry (CNCF Distribution) is not installed and apt-get could not install it');
  }
  log('building berth (npm run build)');
  await buildBerth();
  const wantsSkopeo = selected.includes('push') || selected.includes('pull');
  const haveSkopeo = wantsSkopeo && (await ensureDebianPackage('skopeo', 'skopeo', log));

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-'));
  const cleanup = async (): Promise<void> => {
    await stopAllRegistries();
    await removeTree(tmp);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping registries and removing ${tmp}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const fs = await statfs(tmp);
    const free = fs.bavail * fs.bsize;
    // Push family: 4 pushes x reps into each registry, plus the data file, layout and a skopeo pull.
    const need = options.blobSize * (4 * options.reps * 2 + 4) + options.bigPushSize;
    if (free < need)
      log(
        `warning: ${(free / GiB).toFixed(1)} GiB free in ${tmp}, about ${(need / GiB).toFixed(1)} GiB needed`,
      );

    log(`writing ${options.blobSize / MiB} MiB of random data`);
    const file = path.join(tmp, 'random.bin');
    await writeRandomFile(file, options.blobSize, startedAt);
    const skopeo = haveSkopeo ? await createSkopeo(path.join(tmp, 'skopeo')) : undefined;
    const layout = skopeo
      ? await writeOciLayout(path.join(tmp, 'layout'), file, options.blobSize)
      : undefined;
    log('hashing');
    const blobs = await VariantFactory.create(file, options.blobSize, 1);
    const bigBlobs = selected.includes('big-push')
      ? await VariantFactory.create(
          file,
          options.blobSize,
          Math.max(1, Math.round(options.bigPushSize / options.blobSize)),
        )
      : blobs;
    const data: BenchData = {
      file,
      fileSize: options.blobSize,
      blobs,
      bigBlobs,
      small: BlobSource.fromBuffer(randomBytes(options.smallBlobSize)),
      layout,
    };
    log('measuring page-cache read speed');
    const machine = await machineInfo(data, tmp);
    log(
      `page cache ${machine.pageCacheMiBs.toFixed(0)} MiB/s, disk write ${machine.diskWriteMiBs.toFixed(0)} MiB/s, harness verify ceiling ${machine.verifyCeilingMiBs.toFixed(0)} MiB/s, sha256 ${machine.sha256MiBs.toFixed(0)} MiB/s`,
    );
    const ctx: BenchContext = {
      options,
      tmp,
      data,
      seeds: {},
      rec: new Recorder(),
      skopeo,
      skopeoMissing: haveSkopeo ? undefined : wantsSkopeo ? 'skopeo is not installed' : undefined,
      machine,
      log,
    };

    const failed = (family: string, err: unknown): void => {
      log(`! ${family} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      ctx.rec.fail(`family.${family}`, 'berth', 0, err);
    };
    for (const group of GROUPS) {
      const families = group.filter((f) => selected.includes(f));
      if (families.length === 0) continue;
      try {
        await withRegistries(ctx, async (regs) => {
          for (const family of families) {
            log(`== ${family}`);
            try {
              await (FAMILIES[family] as (c: BenchContext, r: Registries) => Promise<void>)(ctx, regs);
            } catch (err) {
              failed(family, err);
            }
          }
        });
      } catch (err) {
        failed(families.join('+'), err);
      }
    }
    if (selected.includes('big-push')) {
      log('== big-push');
      try {
        await bigPushWorkload(ctx);
      } catch (err) {
        failed('big-push', err);
      }
    }
    if (selected.includes('mirror')) {
      log('== mirror');
      try {
        await mirrorWorkload(ctx);
      } catch (err) {
        failed('mirror', err);
      }
    }
    if (selected.includes('gc')) {
      log('== gc');
      try {
        await gcWorkload(ctx);
      } catch (err) {
        failed('gc', err);
      }
    }
    if (selected.includes('scan')) {
      log('== scan');
      try {
        await scanWorkload(ctx);
      } catch (err) {
        failed('scan', err);
      }
    }
    if (selected.includes('metrics')) {
      log('== metrics');
      try {
        await metricsOverheadWorkload(ctx);
      } catch (err) {
        failed('metrics', err);
      }
    }
    if (selected.includes('webhooks')) {
      log('== webhooks');
      try {
        await webhooksOverheadWorkload(ctx);
      } catch (err) {
        failed('webhooks', err);
      }
    }
    await skopeo?.cleanup();

    const rows = ctx.rec.results();
    const meta: RunMeta = {
      startedAt,
      durationSeconds: secondsSince(started),
      command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
      node: process.version,
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
      cores: os.cpus().length,
      memoryGiB: os.totalmem() / GiB,
      kernel: os.release(),
      berthRevision: await berthRevision(),
      distributionVersion: (await versionOf('docker-registry', ['--version'])).replace(
        /^.*docker\/distribution\s*/,
        '',
      ),
      skopeoVersion: await versionOf('skopeo', ['--version']),
      loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 },
      quickNotes: options.quick ? QUICK_NOTES : [],
    };
    const written = await writeOutputs(BENCH_DIR, ctx, meta, rows);
    const s = summary(rows);
    process.stdout.write(`\n${consoleTable(rows)}\n\n`);
    process.stdout.write(
      `Page-cache read speed: ${machine.pageCacheMiBs.toFixed(0)} MiB/s (pull target: Berth >= ${(machine.pageCacheMiBs / 2).toFixed(0)} MiB/s); ` +
        `disk write (dd conv=fsync) ${machine.diskWriteMiBs.toFixed(0)} MiB/s; ` +
        `harness verify ceiling ${machine.verifyCeilingMiBs.toFixed(0)} MiB/s; harness sha256 ${machine.sha256MiBs.toFixed(0)} MiB/s.\n`,
    );
    process.stdout.write(
      `Both registries at their production logging defaults (info, access log on). ${options.quick ? 'Quick mode: smaller sizes and counts (see report). ' : ''}\n`,
    );
    process.stdout.write(
      `Targets: ${s.met} met, ${s.notMet} not met${s.notMeasured ? `, ${s.notMeasured} not measured` : ''}.\n`,
    );
    process.stdout.write(
      `Wrote ${path.relative(process.cwd(), written.report)}, ${path.relative(process.cwd(), written.chart)}, ${path.relative(process.cwd(), written.results)} in ${meta.durationSeconds.toFixed(0)} s.\n`,
    );
    const errors = ctx.rec.errors;
    if (errors.length > 0) {
      process.stdout.write(`\n${errors.length} run(s) failed:\n`);
      for (const e of errors) process.stdout.write(`  ${e.registry} ${e.row} rep ${e.rep + 1}: ${e.error}\n`);
      return 1;
    }
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    void stopAllRegistries().finally(() => process.exit(1));
  },
);
