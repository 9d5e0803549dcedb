/**
 * Pulls of the big blob: one full GET, the blob in Range requests (16 ranges, 4 in flight), and `skopeo copy`
 * of an image holding it as its layer into an OCI layout on disk. The blob and image are the ones the push
 * workload left in the same registries (pushed by the harness when it did not run). Each run pulls from a
 * fresh repository, the blob cross-repository mounted into it: the same stored blob, likely still in the page
 * cache, as a registry serving a popular layer would have it. Pulls go through the lean client of raw-http.ts and
 * every byte is compared with the source (see SyncVerifier);
 * skopeo verifies the digest itself and the written layer is hashed again afterwards.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  freshRepo,
  order,
  rssRow,
  runPhase,
  type BenchContext,
  type PhaseResult,
  type Registries,
} from '../lib/context.ts';
import { BlobSource, hashFile, type OciImage } from '../lib/data.ts';
import { sizeLabel } from '../lib/format.ts';
import { mapLimit, type RegistryClient } from '../lib/http.ts';
import { RawPool } from '../lib/raw-http.ts';
import { mountBlob, pushMonolithic, pushSmall, putManifest } from '../lib/oci.ts';
import type { Registry, RegistryKind } from '../lib/registries.ts';
import type { RowSpec, Target } from '../lib/results.ts';
import { GiB, MiB, secondsSince } from '../lib/stats.ts';

type Kind = 'full' | 'range' | 'skopeo';

const RANGES = 16;
const RANGES_IN_FLIGHT = 4;
const SEED_REPO = 'bench/pull-seed';

export async function pullWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options, data } = ctx;
  const size = sizeLabel(options.blobSize);
  const halfPageCache = ctx.machine.pageCacheMiBs / 2;
  const httpTarget: Target = {
    kind: 'all',
    of: [
      { kind: 'ratio-at-least', value: 1.5 },
      { kind: 'berth-at-least', value: halfPageCache, why: 'half the page-cache read speed' },
    ],
  };
  const rows: Record<Kind, RowSpec> = {
    full: {
      id: 'pull.full',
      family: 'pull',
      label: `pull ${size}, one GET`,
      unit: 'MiB/s',
      better: 'higher',
      target: httpTarget,
    },
    range: {
      id: 'pull.range',
      family: 'pull',
      label: `pull ${size} in ${RANGES} Range requests, ${RANGES_IN_FLIGHT} in flight`,
      unit: 'MiB/s',
      better: 'higher',
      target: httpTarget,
    },
    skopeo: {
      id: 'pull.skopeo',
      family: 'pull',
      label: `pull ${size} layer with skopeo copy (to disk)`,
      unit: 'MiB/s',
      better: 'higher',
      target: { kind: 'ratio-at-least', value: 1.5 },
      note: 'skopeo writes the layer to disk and hashes it, so the page-cache criterion is not applied',
    },
  };
  const layout = ctx.skopeo ? data.layout : undefined;
  const sources = new Map<RegistryKind, { repo: string; blob: BlobSource; imageRepo?: string }>();
  for (const reg of Object.values(regs)) {
    const seeds = (ctx.seeds[reg.kind] ??= {});
    if (!seeds.blob) {
      ctx.log(`  seeding ${reg.kind} with a ${size} blob`);
      const blob = data.blobs.next();
      await pushMonolithic(reg.client, SEED_REPO, blob);
      seeds.blob = { repo: SEED_REPO, blob };
    }
    if (layout && !seeds.imageRepo) {
      await seedImage(reg.client, layout);
      seeds.imageRepo = SEED_REPO;
    }
    sources.set(reg.kind, { ...seeds.blob, imageRepo: seeds.imageRepo });
  }
  const kinds: Kind[] = ['full', 'range', 'skopeo'];
  for (let rep = 0; rep < options.reps; rep++) {
    for (const kind of kinds) {
      if (kind === 'skopeo' && !layout) continue;
      for (const name of order(rep)) {
        const reg = regs[name];
        const source = sources.get(name)!;
        ctx.log(`  pull ${kind} <- ${name} (rep ${rep + 1}/${options.reps})`);
        await runPhase(ctx, reg, rep, rows[kind], rssRow('pull', `pull-${kind}`, rows[kind].label), () =>
          kind === 'skopeo'
            ? pullSkopeo(ctx, reg, layout as OciImage, source.imageRepo as string, rep)
            : pullHttp(reg, source.blob, source.repo, kind),
        );
      }
    }
  }
  if (!layout) ctx.rec.define(rows.skopeo);
}

/** The skopeo layout's blobs and manifest, pushed by the harness (untimed seeding). */
async function seedImage(client: RegistryClient, layout: OciImage): Promise<void> {
  const layer = new BlobSource(
    [{ kind: 'file', path: layout.layerPath, start: 0, length: layout.layerSize }],
    layout.layerDigest,
  );
  await pushMonolithic(client, SEED_REPO, layer);
  await pushSmall(client, SEED_REPO, layout.configBytes, layout.configDigest);
  await putManifest(client, SEED_REPO, layout.tag, layout.manifestBytes);
}

async function getInto(
  raw: RawPool,
  repo: string,
  blob: BlobSource,
  start: number,
  end: number,
  ranged: boolean,
): Promise<void> {
  const check = await blob.syncVerifier(start, end);
  const res = await raw.get(
    `/v2/${repo}/blobs/${blob.digest}`,
    ranged ? { Range: `bytes=${start}-${end - 1}` } : {},
    (chunk) => check.push(chunk),
  );
  const expected = ranged ? 206 : 200;
  if (res.status !== expected) {
    throw new Error(
      `GET blob${ranged ? ` bytes=${start}-${end - 1}` : ''}: status ${res.status}, expected ${expected}: ${res.errorBody.slice(0, 300)}`,
    );
  }
  const length = Number(res.headers['content-length']);
  if (length !== end - start) throw new Error(`GET blob: Content-Length ${length}, expected ${end - start}`);
  if (ranged) {
    const cr = res.headers['content-range'];
    if (cr !== `bytes ${start}-${end - 1}/${blob.size}`) throw new Error(`GET blob: Content-Range ${cr}`);
  } else {
    const digest = res.headers['docker-content-digest'];
    if (digest !== undefined && digest !== blob.digest)
      throw new Error(`GET blob: Docker-Content-Digest ${digest}`);
  }
  check.finish();
}

async function pullHttp(
  reg: Registry,
  blob: BlobSource,
  from: string,
  kind: 'full' | 'range',
): Promise<PhaseResult> {
  const repo = freshRepo(`pull-${kind}`);
  await mountBlob(reg.client, repo, blob.digest, from);
  await blob.syncVerifier(); // loads the expected bytes into memory before the clock starts
  const raw = new RawPool(reg.url);
  try {
    const start = performance.now();
    if (kind === 'full') {
      await getInto(raw, repo, blob, 0, blob.size, false);
    } else {
      const step = Math.ceil(blob.size / RANGES);
      const ranges = Array.from(
        { length: RANGES },
        (_, i) => [i * step, Math.min(blob.size, (i + 1) * step)] as const,
      );
      await mapLimit(ranges, RANGES_IN_FLIGHT, ([from, to]) => getInto(raw, repo, blob, from, to, true));
    }
    const seconds = secondsSince(start);
    return {
      value: blob.size / MiB / seconds,
      details: { seconds, repo },
      work: { amount: blob.size / GiB, per: 'GiB' },
    };
  } finally {
    raw.close();
  }
}

async function pullSkopeo(
  ctx: BenchContext,
  reg: Registry,
  layout: OciImage,
  from: string,
  rep: number,
): Promise<PhaseResult> {
  const repo = freshRepo('pull-skopeo');
  await mountBlob(reg.client, repo, layout.layerDigest, from);
  await mountBlob(reg.client, repo, layout.configDigest, from);
  await putManifest(reg.client, repo, layout.tag, layout.manifestBytes);
  const dest = path.join(ctx.tmp, `skopeo-pull-${reg.kind}-${rep}`);
  try {
    const result = await ctx.skopeo!.copy(
      `docker://${reg.host}/${repo}:${layout.tag}`,
      `oci:${dest}:${layout.tag}`,
    );
    const written = path.join(dest, 'blobs', 'sha256', layout.layerDigest.slice('sha256:'.length));
    const digest = await hashFile(written);
    if (digest !== layout.layerDigest) throw new Error(`skopeo wrote a layer with digest ${digest}`);
    return {
      value: layout.layerSize / MiB / result.seconds,
      details: { seconds: result.seconds, repo },
      work: { amount: layout.layerSize / GiB, per: 'GiB' },
    };
  } finally {
    await rm(dest, { recursive: true, force: true });
  }
}
