/**
 * Garbage collection at scale. Two parts, both on synthetic content generated without HTTP (`lib/gc-data.ts`):
 *
 * 1. Berth alone, metadata only: 100,000 manifests in 1,000 repositories and 1,000,000 blobs written straight into
 *    a SQLite metadata database (2,000 manifests and 20,000 blobs with --quick), about 10 % garbage. One
 *    collection as `berth gc` runs it (`lib/gc-child.mjs`: a process of its own on the compiled build) with
 *    `gc.sweepStorage: false` and no blob files: the storage deletes it issues find no file (the filesystem
 *    driver's delete of an absent key returns false), so this measures the metadata work. Rows: the manifest
 *    phase (mark), the blob phase (sweep), the total and the process's peak RSS, against the targets (60 s,
 *    300 MiB).
 * 2. Berth against Distribution's offline `docker-registry garbage-collect --delete-untagged` on the same content
 *    at a size a filesystem layout can be generated at here (10,000 manifests and 100,000 blobs; 500 and
 *    5,000 with --quick), blob files on disk for both (empty: neither collector reads blob content), Berth with its
 *    default `gc.sweepStorage: true` (it lists every blob file, as Distribution's sweep does).
 *
 * After every run the outcome is checked: exactly the planted garbage deleted, nothing else (SQL counts and
 * files on disk), no manifest reference left without its blob.
 */
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { order, type BenchContext } from '../lib/context.ts';
import { formatNumber } from '../lib/results.ts';
import { GcModel, writeBerthDatabase, writeDistributionLayout, type GcScale } from '../lib/gc-data.ts';
import { removeTree, run, syncDisks, which } from '../lib/proc.ts';
import { distributionConfig, PROJECT_ROOT } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { BetterSqlite3 } from '../../src/metadata/dialects.ts';
import { secondsSince } from '../lib/stats.ts';

/** The sizes of the two parts. */
export function gcScales(quick: boolean): { metadata: GcScale; disk: GcScale } {
  return quick
    ? { metadata: { repos: 20, manifestsPerRepo: 100 }, disk: { repos: 5, manifestsPerRepo: 100 } }
    : { metadata: { repos: 1_000, manifestsPerRepo: 100 }, disk: { repos: 100, manifestsPerRepo: 100 } };
}

function sizeText(scale: GcScale): string {
  const m = scale.repos * scale.manifestsPerRepo;
  return `${formatNumber(m)} manifests / ${formatNumber(10 * m)} blobs`;
}

function rows(scales: { metadata: GcScale; disk: GcScale }): Record<string, RowSpec> {
  const meta = `GC of ${sizeText(scales.metadata)}, metadata only`;
  const disk = `GC of ${sizeText(scales.disk)} on disk`;
  return {
    manifests: {
      id: 'gc.metadata.manifests',
      family: 'gc',
      label: `${meta}: manifest phase (mark)`,
      unit: 's',
      better: 'lower',
      note: 'Berth alone: 10 % of manifests untagged and due; their deletions queue their blobs',
    },
    blobs: {
      id: 'gc.metadata.blobs',
      family: 'gc',
      label: `${meta}: blob phase (sweep)`,
      unit: 's',
      better: 'lower',
      note: 'Berth alone: due blobs re-checked, unreferenced ones marked, deleted (no files) and forgotten',
    },
    total: {
      id: 'gc.metadata.total',
      family: 'gc',
      label: `${meta}: whole run`,
      unit: 's',
      better: 'lower',
      target: { kind: 'berth-below', value: 60 },
      note: 'Berth alone, gc.sweepStorage off; from runHere() to its result',
    },
    rss: {
      id: 'gc.metadata.rss',
      family: 'gc',
      label: `${meta}: peak RSS of the collecting process`,
      unit: 'MiB',
      better: 'lower',
      target: { kind: 'berth-below', value: 300 },
      note: 'VmHWM of a `berth gc`-like process, start-up included',
    },
    diskTotal: {
      id: 'gc.disk.total',
      family: 'gc',
      label: `${disk}: whole run (Berth online vs garbage-collect --delete-untagged)`,
      unit: 's',
      better: 'lower',
      note: 'Distribution: the registry must be stopped; Berth: gc.sweepStorage on (the default)',
    },
    diskRss: {
      id: 'gc.disk.rss',
      family: 'gc',
      label: `${disk}: peak RSS of the collecting process`,
      unit: 'MiB',
      better: 'lower',
      note: 'Berth: VmHWM of the process; Distribution: maxRSS from /usr/bin/time',
    },
  };
}

/** What `gc-child.mjs` prints. */
interface ChildResult {
  openMs: number;
  totalMs: number;
  phases: Record<string, number>;
  state: string;
  error: string | null;
  progress: {
    manifestsDeleted: number;
    blobsDeleted: number;
    manifestsReviewed: number;
    blobsReviewed: number;
  };
  rssBeforeKiB: number;
  maxRssKiB: number;
  vmHwmKiB: number | null;
}

export async function gcWorkload(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  const scales = gcScales(options.quick);
  const spec = rows(scales);
  for (const s of Object.values(spec)) ctx.rec.define(s);
  const dir = await mkdtemp(path.join(ctx.tmp, 'gc-'));
  try {
    await metadataPart(ctx, scales.metadata, spec, dir);
    await diskPart(ctx, scales.disk, spec, dir);
  } finally {
    await removeTree(dir);
  }
}

/** Part 1: the big metadata-only collection, on copies of one generated database. */
async function metadataPart(
  ctx: BenchContext,
  scale: GcScale,
  spec: Record<string, RowSpec>,
  dir: string,
): Promise<void> {
  const template = path.join(dir, 'template.db');
  const model = new GcModel(scale, Date.now());
  ctx.log(`  generating ${sizeText(scale)} in ${scale.repos} repositories (SQLite, bulk inserts)`);
  const started = performance.now();
  await writeBerthDatabase(model, template);
  const generateSeconds = secondsSince(started);
  const e = model.expected;
  ctx.log(
    `  generated in ${generateSeconds.toFixed(1)} s: ${e.manifests} manifests (${e.garbageManifests} garbage), ` +
      `${e.blobs} blobs (${e.garbageBlobs} garbage), ${e.references} references`,
  );
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const data = path.join(dir, `metadata-${rep}`);
    try {
      await mkdir(data, { recursive: true });
      await copyFile(template, path.join(data, 'berth.db'));
      await syncDisks();
      ctx.log(`  Berth gc, metadata only (rep ${rep + 1})`);
      const r = await runBerthChild(data, false);
      const phases = phaseSeconds(r);
      await verifyBerth(model, path.join(data, 'berth.db'), r);
      const details = {
        ...phases,
        openSeconds: r.openMs / 1000,
        rssBeforeMiB: r.rssBeforeKiB / 1024,
        maxRssMiB: r.maxRssKiB / 1024,
        generateSeconds,
        expected: e,
        progress: r.progress,
      };
      ctx.rec.add(spec.manifests!.id, 'berth', rep, phases.manifests, details);
      ctx.rec.add(spec.blobs!.id, 'berth', rep, phases.blobs);
      ctx.rec.add(spec.total!.id, 'berth', rep, r.totalMs / 1000, details);
      ctx.rec.add(spec.rss!.id, 'berth', rep, peakRssMiB(r));
      ctx.log(
        `    manifests ${phases.manifests.toFixed(1)} s, blobs ${phases.blobs.toFixed(1)} s, total ` +
          `${(r.totalMs / 1000).toFixed(1)} s, peak RSS ${peakRssMiB(r).toFixed(0)} MiB; verified`,
      );
    } catch (err) {
      for (const s of [spec.manifests!, spec.blobs!, spec.total!, spec.rss!])
        ctx.rec.fail(s.id, 'berth', rep, err);
      ctx.log(`  ! Berth gc, metadata only: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await removeTree(data);
    }
  }
}

/** Part 2: the same content on disk for both registries, generated afresh for each run. */
async function diskPart(
  ctx: BenchContext,
  scale: GcScale,
  spec: Record<string, RowSpec>,
  dir: string,
): Promise<void> {
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const kind of order(rep)) {
      const data = path.join(dir, `disk-${kind}-${rep}`);
      const model = new GcModel(scale, Date.now());
      try {
        await mkdir(data, { recursive: true });
        const started = performance.now();
        if (kind === 'berth') {
          await writeBerthDatabase(model, path.join(data, 'berth.db'), path.join(data, 'blobs'));
        } else {
          writeDistributionLayout(model, path.join(data, 'root'));
        }
        const generateSeconds = secondsSince(started);
        await syncDisks();
        ctx.log(
          `  ${kind === 'berth' ? 'Berth gc' : 'docker-registry garbage-collect --delete-untagged'} of ` +
            `${sizeText(scale)} on disk (rep ${rep + 1}; generated in ${generateSeconds.toFixed(1)} s)`,
        );
        let seconds: number;
        let rssMiB: number;
        let details: Record<string, unknown>;
        if (kind === 'berth') {
          const r = await runBerthChild(data, true);
          await verifyBerth(model, path.join(data, 'berth.db'), r);
          await verifyFiles(
            path.join(data, 'blobs', 'blobs'),
            model.expected.blobs - model.expected.garbageBlobs,
            '-type f',
          );
          seconds = r.totalMs / 1000;
          rssMiB = peakRssMiB(r);
          details = {
            ...phaseSeconds(r),
            openSeconds: r.openMs / 1000,
            generateSeconds,
            progress: r.progress,
          };
        } else {
          const r = await runDistributionGc(data);
          await verifyDistribution(model, path.join(data, 'root'));
          seconds = r.seconds;
          rssMiB = r.maxRssMiB;
          details = { generateSeconds, processSeconds: r.seconds };
        }
        ctx.rec.add(spec.diskTotal!.id, kind, rep, seconds, details);
        if (Number.isFinite(rssMiB)) ctx.rec.add(spec.diskRss!.id, kind, rep, rssMiB);
        ctx.log(`    ${seconds.toFixed(1)} s, peak RSS ${rssMiB.toFixed(0)} MiB; verified`);
      } catch (err) {
        ctx.rec.fail(spec.diskTotal!.id, kind, rep, err);
        ctx.log(`  ! ${kind} gc on disk: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await removeTree(data);
      }
    }
  }
}

/** Runs `gc-child.mjs` (Berth's build, a process of its own) on the data directory `data`. */
async function runBerthChild(data: string, sweepStorage: boolean): Promise<ChildResult> {
  const child = path.join(PROJECT_ROOT, 'bench', 'lib', 'gc-child.mjs');
  const r = await run(
    process.execPath,
    [child, path.join(PROJECT_ROOT, 'dist'), data, String(sweepStorage)],
    {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  const result = JSON.parse(line) as ChildResult;
  if (result.state !== 'succeeded') throw new Error(`gc run ${result.state}: ${result.error ?? ''}`);
  return result;
}

/**
 * The child's peak RSS: VmHWM, which belongs to the process's own address space. Its getrusage maxRSS is no good
 * here: Linux carries it across execve, so a child spawned by the (large) harness starts with the harness's
 * resident size as its "peak". (Distribution's is taken by /usr/bin/time, which forks from a small process.)
 */
function peakRssMiB(r: ChildResult): number {
  return (r.vmHwmKiB ?? r.maxRssKiB) / 1024;
}

/** Seconds of the manifest phase (mark) and the blob phase (sweep), from when each phase was first reported. */
function phaseSeconds(r: ChildResult): { manifests: number; blobs: number; storage: number; rest: number } {
  const at = (phase: string): number | undefined => r.phases[phase];
  const m = at('manifests') ?? 0;
  const b = at('blobs') ?? m;
  const afterBlobs = at('storage') ?? at('purge') ?? r.totalMs;
  const purge = at('purge') ?? r.totalMs;
  return {
    manifests: (b - m) / 1000,
    blobs: (afterBlobs - b) / 1000,
    storage: (purge - afterBlobs) / 1000,
    rest: (m + (r.totalMs - purge)) / 1000,
  };
}

/** Checks the database after a collection: exactly the planted garbage gone, nothing else. */
async function verifyBerth(model: GcModel, file: string, r: ChildResult): Promise<void> {
  const e = model.expected;
  const problems: string[] = [];
  const expect = (what: string, actual: number, expected: number): void => {
    if (actual !== expected) problems.push(`${what}: ${actual}, expected ${expected}`);
  };
  expect('manifests deleted (run)', r.progress.manifestsDeleted, e.garbageManifests);
  expect('blobs deleted (run)', r.progress.blobsDeleted, e.garbageBlobs);
  const db = new BetterSqlite3(file, { readonly: true });
  try {
    const count = (q: string): number => Number((db.prepare(q).pluck().get() as number | bigint) ?? -1);
    expect('repositories', count('select count(*) from repositories'), e.repositories);
    expect('manifests', count('select count(*) from manifests'), e.manifests - e.garbageManifests);
    expect('tags', count('select count(*) from tags'), e.tags);
    expect('blobs', count('select count(*) from blobs'), e.blobs - e.garbageBlobs);
    expect(
      'manifest references',
      count('select count(*) from manifest_references'),
      e.references - e.garbageReferences,
    );
    expect(
      'repository blob links',
      count('select count(*) from repository_blobs'),
      e.repositoryBlobs - e.garbageRepositoryBlobs,
    );
    expect(
      'referenced blobs without a row',
      count(
        `select count(*) from manifest_references mr where mr.kind = 'blob'
           and not exists (select 1 from blobs b where b.digest = mr.digest)`,
      ),
      0,
    );
    expect(
      'untagged manifests left',
      count(
        'select count(*) from manifests m where not exists (select 1 from tags t where t.manifest_id = m.id)',
      ),
      0,
    );
    expect(
      'blobs left marked as deleting',
      count('select count(*) from blobs where deleting_at is not null'),
      0,
    );
    expect('manifests left due', count('select count(*) from manifests where review_after is not null'), 0);
    expect(
      'unreferenced blobs within their grace period',
      count(`select count(*) from blobs where review_after > ${model.now}`),
      e.unreferencedInGrace,
    );
  } finally {
    db.close();
  }
  if (problems.length > 0) throw new Error(`wrong outcome: ${problems.join('; ')}`);
}

/** Counts `find DIR <filter>` entries and compares. */
async function verifyFiles(dir: string, expected: number, filter: string): Promise<void> {
  const r = await run('sh', ['-c', `find "$1" ${filter} | wc -l`, 'sh', dir]);
  const actual = Number(r.stdout.trim());
  if (actual !== expected)
    throw new Error(`wrong outcome: ${actual} files under ${dir}, expected ${expected}`);
}

/**
 * Distribution deletes the untagged manifests (with --delete-untagged) and every blob no remaining manifest
 * references, including those Berth keeps for their grace period (Distribution has none: it must run offline).
 */
async function verifyDistribution(model: GcModel, root: string): Promise<void> {
  const e = model.expected;
  const v2 = path.join(root, 'docker', 'registry', 'v2');
  const blobsLeft = e.blobs + e.manifests - (e.garbageBlobs + e.unreferencedInGrace + e.garbageManifests);
  await verifyFiles(path.join(v2, 'blobs'), blobsLeft, '-name data -type f');
  await verifyFiles(
    path.join(v2, 'repositories'),
    e.manifests - e.garbageManifests,
    '-path "*/_manifests/revisions/sha256/*/link" -type f',
  );
}

/** `docker-registry garbage-collect --delete-untagged` under /usr/bin/time (for its peak RSS), output to a file. */
async function runDistributionGc(data: string): Promise<{ seconds: number; maxRssMiB: number }> {
  const config = path.join(data, 'config.yml');
  await writeFile(config, distributionConfig(path.join(data, 'root'), '127.0.0.1:0'));
  const log = path.join(data, 'gc.log');
  const timeFile = path.join(data, 'time.txt');
  const time = which('time');
  const gc = ['docker-registry', 'garbage-collect', '--delete-untagged', config];
  const args = time ? [time, '-f', '%e %M', '-o', timeFile, ...gc] : gc;
  const r = await run('sh', ['-c', 'log="$1"; shift; exec "$@" > "$log" 2>&1', 'sh', log, ...args], {
    allowFailure: true,
  });
  if (r.code !== 0) {
    const tail = await run('tail', ['-n', '5', log], { allowFailure: true });
    throw new Error(`docker-registry garbage-collect exited with ${r.code}: ${tail.stdout}`);
  }
  if (!time) return { seconds: r.seconds, maxRssMiB: Number.NaN };
  const [, maxKiB] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number);
  return { seconds: r.seconds, maxRssMiB: (maxKiB ?? Number.NaN) / 1024 };
}
