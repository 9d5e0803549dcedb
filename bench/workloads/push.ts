/**
 * Pushes of one big blob (1 GiB; 256 MiB in quick mode) of fresh random content into a fresh repository:
 * monolithic (POST + PUT), streamed (one PATCH, chunked transfer encoding, no Content-Range), chunked (8 MiB
 * PATCHes with Content-Range), and `skopeo copy` of an OCI layout (its layer a real gzip stream, copied as is).
 * Throughput is the blob size over the wall time from the POST to the final 201.
 */
import {
  freshRepo,
  order,
  rssRow,
  runPhase,
  type BenchContext,
  type PhaseResult,
  type Registries,
} from '../lib/context.ts';
import { header } from '../lib/http.ts';
import { checkBlob, pushChunked, pushMonolithic, pushStreamed } from '../lib/oci.ts';
import type { Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { GiB, MiB, secondsSince } from '../lib/stats.ts';
import { sizeLabel } from '../lib/format.ts';

type Kind = 'monolithic' | 'streamed' | 'chunked' | 'skopeo';

export async function pushWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options, data } = ctx;
  const size = sizeLabel(options.blobSize);
  const rows: Record<Kind, RowSpec> = {
    monolithic: pushRow('monolithic', `push ${size}, monolithic (POST + PUT)`),
    streamed: pushRow('streamed', `push ${size}, streamed (one PATCH, no Content-Range)`),
    chunked: pushRow('chunked', `push ${size}, chunked (${sizeLabel(options.chunkSize)} PATCHes)`),
    skopeo: pushRow('skopeo', `push ${size} layer with skopeo copy`),
  };
  const kinds: Kind[] = ['monolithic', 'streamed', 'chunked', 'skopeo'];
  for (let rep = 0; rep < options.reps; rep++) {
    for (const kind of kinds) {
      if (kind === 'skopeo' && !(ctx.skopeo && data.layout)) continue;
      for (const name of order(rep)) {
        const reg = regs[name];
        ctx.log(`  push ${kind} -> ${name} (rep ${rep + 1}/${options.reps})`);
        await runPhase(ctx, reg, rep, rows[kind], rssRow('push', `push-${kind}`, rows[kind].label), () =>
          pushOnce(ctx, reg, kind),
        );
      }
    }
  }
  if (!ctx.skopeo) ctx.rec.define(rows.skopeo);
}

function pushRow(kind: Kind, label: string): RowSpec {
  return {
    id: `push.${kind}`,
    family: 'push',
    label,
    unit: 'MiB/s',
    better: 'higher',
    target: { kind: 'ratio-at-least', value: 3 },
    note: kind === 'skopeo' ? 'layer size over the wall time of the skopeo process' : undefined,
  };
}

async function pushOnce(ctx: BenchContext, reg: Registry, kind: Kind): Promise<PhaseResult> {
  const repo = freshRepo(`push-${kind}`);
  const client = reg.client;
  if (kind === 'skopeo') {
    const layout = ctx.data.layout!;
    const result = await ctx.skopeo!.copy(layout.reference, `docker://${reg.host}/${repo}:${layout.tag}`);
    // Verify: the manifest as pushed (same digest, so skopeo did not convert it) and the layer.
    const res = await client.expect(200, 'HEAD', `/v2/${repo}/manifests/${layout.tag}`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const digest = header(res.headers, 'docker-content-digest');
    if (digest !== layout.manifestDigest) {
      throw new Error(
        `skopeo pushed manifest ${digest}, expected ${layout.manifestDigest} (was it converted?)`,
      );
    }
    await checkBlob(client, repo, { digest: layout.layerDigest, size: layout.layerSize });
    (ctx.seeds[reg.kind] ??= {}).imageRepo = repo;
    return {
      value: layout.layerSize / MiB / result.seconds,
      details: { seconds: result.seconds, repo },
      work: { amount: layout.layerSize / GiB, per: 'GiB' },
    };
  }
  const blob = ctx.data.blobs.next();
  const start = performance.now();
  if (kind === 'monolithic') await pushMonolithic(client, repo, blob);
  else if (kind === 'streamed') await pushStreamed(client, repo, blob);
  else await pushChunked(client, repo, blob, ctx.options.chunkSize);
  const seconds = secondsSince(start);
  await checkBlob(client, repo, blob);
  (ctx.seeds[reg.kind] ??= {}).blob = { repo, blob };
  return {
    value: blob.size / MiB / seconds,
    details: { seconds, repo, digest: blob.digest },
    work: { amount: blob.size / GiB, per: 'GiB' },
  };
}
