/**
 * The pull-through cache: Berth caching an upstream (`proxy.upstreams`, namespace `up`) side by side with CNCF
 * Distribution 2.8.2 in its proxy mode (`proxy: remoteurl:`), both in front of the same upstream (a plain
 * Distribution holding the images). Per repetition and registry a fresh image (4 layers of 256 MiB, 16 MiB in
 * quick mode: 1 GiB / 64 MiB) is pushed to the upstream, then pulled as a client pulls it (manifest by tag, the
 * config, the layers on 4 connections at once, every byte compared):
 *
 * - cold: the first pull through the cache, against a direct pull of the same image from the upstream (target:
 *   at least 80 % of the direct speed);
 * - cached: the second pull through the cache, against a direct pull from the same registry (Berth: the same
 *   blobs mounted into a local repository of the caching instance; Distribution in proxy mode takes no pushes,
 *   so its direct pull is from a plain Distribution, the upstream), target at least 95 %;
 * - 50 concurrent cold pulls of one layer through the cache: how many copies of the layer the upstream sent
 *   (counted by a relay between each cache and the upstream; target: Berth once) and the bytes/s delivered.
 */
import type { BenchContext } from '../lib/context.ts';
import type { BlobSource } from '../lib/data.ts';
import {
  MEDIA_TYPE_OCI_CONFIG,
  MEDIA_TYPE_OCI_LAYER_GZIP,
  MEDIA_TYPE_OCI_MANIFEST,
  sha256,
  VariantFactory,
} from '../lib/data.ts';
import { sizeLabel } from '../lib/format.ts';
import type { RegistryClient } from '../lib/http.ts';
import { mountBlob, pushMonolithic, pushSmall, putManifest } from '../lib/oci.ts';
import { syncDisks } from '../lib/proc.ts';
import { RawPool } from '../lib/raw-http.ts';
import { startBerth, startDistribution, type Registry, type RegistryKind } from '../lib/registries.ts';
import { startByteRelay, type ByteRelay } from '../lib/relay.ts';
import type { RowSpec } from '../lib/results.ts';
import { MiB, secondsSince } from '../lib/stats.ts';

const LAYERS = 4;
const CLIENTS = 50;
/** Berth's namespace for the upstream. */
const NAMESPACE = 'up';

/** The rows, with this run's sizes in their labels. */
function rowsFor(layerSize: number) {
  const image = `${sizeLabel(layerSize * LAYERS)} image (${LAYERS} x ${sizeLabel(layerSize)})`;
  const layer = `one ${sizeLabel(layerSize)} layer`;
  return {
    cold: {
      id: 'mirror.cold',
      family: 'mirror',
      label: `first (cold) pull of a ${image} through the cache`,
      unit: 'MiB/s',
      better: 'higher',
    },
    coldPct: {
      id: 'mirror.cold.pct',
      family: 'mirror',
      label: `first (cold) pull of a ${image} through the cache vs a direct pull from the upstream`,
      unit: '% of direct',
      better: 'higher',
      target: { kind: 'berth-at-least', value: 80, why: '80 % of a direct pull from the upstream' },
    },
    cached: {
      id: 'mirror.cached',
      family: 'mirror',
      label: `pull of a cached ${image} through the cache`,
      unit: 'MiB/s',
      better: 'higher',
    },
    cachedPct: {
      id: 'mirror.cached.pct',
      family: 'mirror',
      label: `pull of a cached ${image} through the cache vs a direct pull from the same registry`,
      unit: '% of direct',
      better: 'higher',
      target: { kind: 'berth-at-least', value: 95, why: '95 % of a direct pull' },
      note: 'Distribution in proxy mode takes no pushes: its "direct" pull is from a plain Distribution',
    },
    concurrentCopies: {
      id: 'mirror.concurrent.copies',
      family: 'mirror',
      label: `${CLIENTS} concurrent cold pulls of ${layer}: copies the upstream sent`,
      unit: 'layers',
      better: 'lower',
      target: { kind: 'berth-below', value: 1.01 },
      note: 'upstream blob bytes (counted by a relay between the cache and the upstream) / layer size',
    },
    concurrentRate: {
      id: 'mirror.concurrent.rate',
      family: 'mirror',
      label: `${CLIENTS} concurrent cold pulls of ${layer}: delivered`,
      unit: 'MiB/s',
      better: 'higher',
    },
  } satisfies Record<string, RowSpec>;
}

interface BenchImage {
  readonly repo: string;
  readonly tag: string;
  readonly layers: readonly BlobSource[];
  readonly config: Buffer;
  readonly manifest: Buffer;
}

/** A caching registry and where its copy of an upstream repository is. */
interface Cache {
  readonly kind: RegistryKind;
  readonly registry: Registry;
  /** The repository name on the cache for the upstream's `repo`. */
  path(repo: string): string;
}

export async function mirrorWorkload(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  const layerSize = options.quick ? 16 * MiB : 256 * MiB;
  const ROWS = rowsFor(layerSize);
  for (const row of Object.values(ROWS)) ctx.rec.define(row);
  ctx.log(`  hashing a ${sizeLabel(layerSize)} layer prefix`);
  const layers = await VariantFactory.create(ctx.data.file, layerSize, 1);
  let imageCount = 0;
  const newImage = (): BenchImage => {
    imageCount++;
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
        created: new Date().toISOString(),
        comment: `bench image ${process.pid}-${imageCount}`,
      }),
    );
    const blobs = Array.from({ length: LAYERS }, () => layers.next());
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: blobs.map((b) => ({ mediaType: MEDIA_TYPE_OCI_LAYER_GZIP, digest: b.digest, size: b.size })),
      }),
    );
    return {
      repo: `bench/mirror-${process.pid.toString(36)}-${imageCount}`,
      tag: 'v1',
      layers: blobs,
      config,
      manifest,
    };
  };

  const started: { stop(): Promise<void> }[] = [];
  try {
    const upstream = await startDistribution();
    started.push(upstream);
    const relays = {
      berth: await startByteRelay(upstream.url),
      distribution: await startByteRelay(upstream.url),
    };
    for (const relay of Object.values(relays)) started.push({ stop: () => relay.close() });
    const startCaches = async (urls: Record<RegistryKind, string>): Promise<Record<RegistryKind, Cache>> => {
      const berth = await startBerth([], {
        BERTH_PROXY_UPSTREAMS: JSON.stringify([{ name: 'up', namespace: NAMESPACE, urls: [urls.berth] }]),
      });
      started.push(berth);
      const distribution = await startDistribution(['proxy:', `  remoteurl: ${urls.distribution}`]);
      started.push(distribution);
      return {
        berth: { kind: 'berth', registry: berth, path: (repo) => `${NAMESPACE}/${repo}` },
        distribution: { kind: 'distribution', registry: distribution, path: (repo) => repo },
      };
    };
    // The pull comparisons go straight to the upstream; the concurrency test through the counting relays.
    const caches = await startCaches({ berth: upstream.url, distribution: upstream.url });
    const counted = await startCaches({ berth: relays.berth.url, distribution: relays.distribution.url });

    for (let rep = 0; rep < options.reps; rep++) {
      const order: RegistryKind[] = rep % 2 === 0 ? ['berth', 'distribution'] : ['distribution', 'berth'];
      for (const kind of order) {
        const cache = caches[kind];
        const label = `${kind} (rep ${rep + 1}/${options.reps})`;
        try {
          const image = newImage();
          await pushImage(upstream.client, image);
          ctx.log(`  cold pull <- ${label}`);
          await syncDisks();
          const cold = await pullImage(cache.registry, cache.path(image.repo), image);
          ctx.log(`  direct pull from the upstream <- ${label}`);
          await syncDisks();
          const direct = await pullImage(upstream, image.repo, image);
          ctx.rec.add(ROWS.cold.id, kind, rep, cold.mibs, { seconds: cold.seconds, repo: image.repo });
          ctx.rec.add(ROWS.coldPct.id, kind, rep, (cold.mibs / direct.mibs) * 100, {
            coldMiBs: cold.mibs,
            directMiBs: direct.mibs,
          });

          ctx.log(`  cached pull <- ${label}`);
          await syncDisks();
          const cached = await pullImage(cache.registry, cache.path(image.repo), image);
          let local: { mibs: number; seconds: number };
          if (kind === 'berth') {
            // The same stored blobs, in a repository of the caching instance that is not cached.
            const localRepo = `${image.repo}-direct`;
            for (const b of image.layers)
              await mountBlob(cache.registry.client, localRepo, b.digest, cache.path(image.repo));
            await mountBlob(cache.registry.client, localRepo, sha256(image.config), cache.path(image.repo));
            await putManifest(cache.registry.client, localRepo, image.tag, image.manifest);
            ctx.log(`  direct pull from the same registry <- ${label}`);
            await syncDisks();
            local = await pullImage(cache.registry, localRepo, image);
          } else {
            ctx.log(`  direct pull from a plain Distribution <- ${label}`);
            await syncDisks();
            local = await pullImage(upstream, image.repo, image);
          }
          ctx.rec.add(ROWS.cached.id, kind, rep, cached.mibs, { seconds: cached.seconds });
          ctx.rec.add(ROWS.cachedPct.id, kind, rep, (cached.mibs / local.mibs) * 100, {
            cachedMiBs: cached.mibs,
            directMiBs: local.mibs,
          });
        } catch (err) {
          for (const row of [ROWS.cold, ROWS.coldPct, ROWS.cached, ROWS.cachedPct])
            ctx.rec.fail(row.id, kind, rep, err);
          ctx.log(`  ! ${label}: ${err instanceof Error ? err.message : String(err)}`);
        }

        try {
          ctx.log(`  ${CLIENTS} concurrent cold pulls of a ${sizeLabel(layerSize)} layer <- ${label}`);
          const result = await concurrentPulls(
            upstream.client,
            counted[kind],
            relays[kind],
            layers.next(),
            rep,
          );
          ctx.rec.add(ROWS.concurrentCopies.id, kind, rep, result.copies, result.details);
          ctx.rec.add(ROWS.concurrentRate.id, kind, rep, result.mibs, result.details);
        } catch (err) {
          for (const row of [ROWS.concurrentCopies, ROWS.concurrentRate])
            ctx.rec.fail(row.id, kind, rep, err);
          ctx.log(`  ! ${label} concurrent: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => {});
  }
}

/** Pushes the image to the upstream (untimed). */
async function pushImage(client: RegistryClient, image: BenchImage): Promise<void> {
  for (const layer of image.layers) await pushMonolithic(client, image.repo, layer);
  await pushSmall(client, image.repo, image.config);
  await putManifest(client, image.repo, image.tag, image.manifest);
}

/**
 * Pulls `image` from `repo` on `reg` as a client does: the manifest by tag, the config, then every layer on its
 * own connection at once; every byte is compared with what was pushed. Returns the layer bytes per second.
 */
async function pullImage(
  reg: { url: string; client: RegistryClient },
  repo: string,
  image: BenchImage,
): Promise<{ mibs: number; seconds: number }> {
  const verifiers = await Promise.all(image.layers.map((l) => l.syncVerifier()));
  const raw = new RawPool(reg.url);
  try {
    const start = performance.now();
    const manifest = await reg.client.expect(200, 'GET', `/v2/${repo}/manifests/${image.tag}`, {
      headers: { Accept: MEDIA_TYPE_OCI_MANIFEST },
    });
    if (!manifest.body.equals(image.manifest)) throw new Error(`GET ${repo}:${image.tag}: another manifest`);
    const config = await reg.client.expect(200, 'GET', `/v2/${repo}/blobs/${sha256(image.config)}`);
    if (!config.body.equals(image.config)) throw new Error(`GET ${repo} config: other bytes`);
    await Promise.all(
      image.layers.map(async (layer, i) => {
        const check = verifiers[i]!;
        const res = await raw.get(`/v2/${repo}/blobs/${layer.digest}`, {}, (chunk) => check.push(chunk));
        if (res.status !== 200)
          throw new Error(`GET ${repo} layer ${i}: status ${res.status}: ${res.errorBody.slice(0, 300)}`);
        check.finish();
      }),
    );
    const seconds = secondsSince(start);
    const bytes = image.layers.reduce((n, l) => n + l.size, 0);
    return { mibs: bytes / MiB / seconds, seconds };
  } finally {
    raw.close();
  }
}

/**
 * Pushes `layer` to the upstream, then GETs it through the cache from CLIENTS connections at once, comparing
 * every byte; the relay between the cache and the upstream counts what the upstream sent.
 */
async function concurrentPulls(
  upstream: RegistryClient,
  cache: Cache,
  relay: ByteRelay,
  layer: BlobSource,
  rep: number,
): Promise<{ copies: number; mibs: number; details: Record<string, unknown> }> {
  const repo = `bench/mirror-concurrent-${process.pid.toString(36)}-${cache.kind}-${rep}`;
  await pushMonolithic(upstream, repo, layer);
  const verifiers = await Promise.all(Array.from({ length: CLIENTS }, () => layer.syncVerifier()));
  const raw = new RawPool(cache.registry.url);
  try {
    await syncDisks();
    const start = performance.now();
    await Promise.all(
      verifiers.map(async (check, i) => {
        const res = await raw.get(`/v2/${cache.path(repo)}/blobs/${layer.digest}`, {}, (chunk) =>
          check.push(chunk),
        );
        if (res.status !== 200)
          throw new Error(`client ${i}: status ${res.status}: ${res.errorBody.slice(0, 300)}`);
        check.finish();
      }),
    );
    const seconds = secondsSince(start);
    const upstreamBytes = relay.blobBytes(layer.digest);
    return {
      copies: upstreamBytes / layer.size,
      mibs: (CLIENTS * layer.size) / MiB / seconds,
      details: { seconds, upstreamBytes, upstreamGets: relay.blobGets(layer.digest), layerBytes: layer.size },
    };
  } finally {
    raw.close();
  }
}
