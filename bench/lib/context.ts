/** What every workload gets: options, the shared data, the recorder, and the measuring helpers. */
import type { BlobSource, OciImage, VariantFactory } from './data.ts';
import { syncDisks } from './proc.ts';
import { LABELS, REGISTRY_KINDS, startRegistry, type Registry, type RegistryKind } from './registries.ts';
import type { Recorder, RowSpec } from './results.ts';
import { currentRss, withUsage } from './rss.ts';
import type { Skopeo } from './skopeo.ts';
import { MiB } from './stats.ts';

export interface BenchOptions {
  quick: boolean;
  /** Repetitions per workload and registry (alternating Berth/Distribution). */
  reps: number;
  /** Size of the big blob (1 GiB; 256 MiB in quick mode). */
  blobSize: number;
  /** Size of the push whose RSS is watched (5 GiB; 1 GiB in quick mode); a multiple of blobSize. */
  bigPushSize: number;
  chunkSize: number;
  /** Seconds of manifest load per method. */
  loadSeconds: number;
  connections: number;
  smallPulls: number;
  smallBlobSize: number;
  tags: number;
  repos: number;
  /** Concurrency of seeding requests (tags, repositories). */
  seedConcurrency: number;
  /** Workload families to run (all when empty). */
  only: ReadonlySet<string>;
}

export interface BenchData {
  /** The random file (blobSize bytes) everything streams from. */
  file: string;
  fileSize: number;
  /** Distinct blobs of blobSize bytes. */
  blobs: VariantFactory;
  /** Distinct blobs of bigPushSize bytes. */
  bigBlobs: VariantFactory;
  /** The 1 MiB blob of the parallel pulls. */
  small: BlobSource;
  /** OCI layout for skopeo (absent when skopeo is not installed). */
  layout?: OciImage;
}

export interface MachineInfo {
  /** `cat FILE > /dev/null` of the cached data file, MiB/s. */
  pageCacheMiBs: number;
  /** `dd conv=fsync` of the data file into the temp dir, MiB/s: what a durable push can reach at most. */
  diskWriteMiBs: number;
  /** How fast the harness can verify a stream (read back + compare), MiB/s, no network. */
  verifyCeilingMiBs: number;
  /** SHA-256 speed of the harness, MiB/s (what a digest-hashing client would be capped at). */
  sha256MiBs: number;
}

export type Registries = Record<RegistryKind, Registry>;

/** Blobs and images a workload left in the current registries, for later workloads of the same group. */
export interface Seeds {
  /** A repository holding a big blob (blobSize bytes) of known content. */
  blob?: { repo: string; blob: BlobSource };
  /** A repository holding the skopeo layout's image under its tag. */
  imageRepo?: string;
}

export interface BenchContext {
  options: BenchOptions;
  /** Per registry, reset whenever fresh registries start. */
  seeds: Partial<Record<RegistryKind, Seeds>>;
  tmp: string;
  data: BenchData;
  rec: Recorder;
  skopeo?: Skopeo;
  /** Why skopeo rows are not measured, when they are not. */
  skopeoMissing?: string;
  machine: MachineInfo;
  log(message: string): void;
}

/** Registry order for a repetition: alternates so neither always runs first (on a warmer or cooler machine). */
export function order(rep: number): RegistryKind[] {
  return rep % 2 === 0 ? ['berth', 'distribution'] : ['distribution', 'berth'];
}

/** The peak-RSS row of a phase (target: Berth at most 0.75x of Distribution). */
export function rssRow(family: string, phase: string, label: string): RowSpec {
  return {
    id: `rss.${phase}`,
    family: 'memory',
    label: `peak RSS: ${label}`,
    unit: 'MiB',
    better: 'lower',
    target: { kind: 'ratio-at-most', value: 0.75 },
    note: `during the ${family} workload`,
  };
}

export interface PhaseResult {
  /** The row's value (in the row's unit). */
  value: number;
  /** Further values for other rows of the same run (e.g. p99 next to requests/s). */
  extra?: Record<string, number>;
  /**
   * The work the phase did, for a "registry CPU per unit of work" row beside the main one: `amount` units of
   * `per` (e.g. 0.25 of 'GiB', 600 of 'pull'). CPU time is what a registry spends of a machine it shares,
   * whatever the load generator's own speed limits.
   */
  work?: { amount: number; per: string };
  details?: Record<string, unknown>;
}

/**
 * Runs one measured phase against one registry: flushes dirty pages first (so an earlier run's writeback does
 * not land in this one), samples the process's memory and CPU while `fn` runs, and records the value, the extra
 * values and the peak RSS. A failure is recorded (and logged) instead of thrown, so one broken workload does not
 * hide the others; the run exits non-zero at the end.
 */
export async function runPhase(
  ctx: BenchContext,
  reg: Registry,
  rep: number,
  row: RowSpec,
  rss: RowSpec | undefined,
  fn: () => Promise<PhaseResult>,
): Promise<PhaseResult | undefined> {
  ctx.rec.define(row);
  if (rss) ctx.rec.define(rss);
  await syncDisks();
  try {
    const { value, usage } = await withUsage(reg.pid, fn);
    const details = {
      ...value.details,
      peakRssMiB: usage.peakRssBytes / MiB,
      startRssMiB: usage.startRssBytes / MiB,
      cpuSeconds: usage.cpuSeconds,
      hwmReset: usage.hwmReset,
    };
    ctx.rec.add(row.id, reg.kind, rep, value.value, details);
    for (const [id, v] of Object.entries(value.extra ?? {})) ctx.rec.add(id, reg.kind, rep, v);
    if (rss) ctx.rec.add(rss.id, reg.kind, rep, usage.peakRssBytes / MiB);
    if (value.work && value.work.amount > 0) {
      const cpu = cpuRow(row, value.work.per);
      ctx.rec.define(cpu);
      ctx.rec.add(cpu.id, reg.kind, rep, (usage.cpuSeconds * 1000) / value.work.amount);
    }
    return value;
  } catch (err) {
    ctx.rec.fail(row.id, reg.kind, rep, err);
    ctx.log(`  ! ${LABELS[reg.kind]} ${row.label}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/** The row of registry CPU time per unit of work done in `row`'s phase. */
function cpuRow(row: RowSpec, per: string): RowSpec {
  return {
    id: `cpu.${row.id}`,
    family: 'cpu',
    label: `registry CPU: ${row.label.replace(/: [a-z/]+$/, '')}`,
    unit: `CPU ms per ${per}`,
    better: 'lower',
    note: 'user + system time of the registry process during the phase',
  };
}

/** Unique-enough repository name component. */
let counter = 0;
export function freshRepo(prefix: string): string {
  counter++;
  return `bench/${prefix}-${process.pid.toString(36)}-${Date.now().toString(36)}-${counter}`;
}

/** Rows every registry start records: resident memory right after start, idle. */
const IDLE_RSS: RowSpec = {
  id: 'rss.idle',
  family: 'memory',
  label: 'RSS after start (idle)',
  unit: 'MiB',
  better: 'lower',
  note: 'right after start: 250 ms after GET /v2/ first answered',
};

/**
 * Starts fresh Berth and Distribution instances (empty temp dirs), runs `fn`, and stops them (removing their
 * data) even when `fn` fails.
 */
export async function withRegistries<T>(
  ctx: BenchContext,
  fn: (regs: Registries) => Promise<T>,
  only: readonly RegistryKind[] = REGISTRY_KINDS,
): Promise<T> {
  const started: Partial<Registries> = {};
  try {
    ctx.seeds = {};
    for (const kind of only) started[kind] = await startRegistry(kind);
    await new Promise((resolve) => setTimeout(resolve, 250));
    ctx.rec.define(IDLE_RSS);
    for (const kind of only) {
      const reg = started[kind] as Registry;
      ctx.rec.add(IDLE_RSS.id, kind, 0, currentRss(reg.pid) / MiB);
    }
    return await fn(started as Registries);
  } finally {
    for (const reg of Object.values(started)) await reg.stop();
  }
}
