/**
 * 200 parallel pulls of one 1 MiB blob (as when many nodes start the same image at once): 200 GETs issued at
 * once over up to 200 keep-alive connections, each body verified. A run is 5 such bursts (3 in quick mode) on
 * one fresh repository; its value is the median burst's pulls/s (the first burst also opens the connections).
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
import { sizeLabel } from '../lib/format.ts';
import { RawPool } from '../lib/raw-http.ts';
import { mountBlob, pushMonolithic } from '../lib/oci.ts';
import type { Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { median, secondsSince } from '../lib/stats.ts';

const SEED_REPO = 'bench/small-seed';

function burstCount(quick: boolean): number {
  return quick ? 3 : 5;
}

export async function smallPullsWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options, data } = ctx;
  const row: RowSpec = {
    id: 'pull.parallel-small',
    family: 'pull',
    label: `${options.smallPulls} parallel pulls of a ${sizeLabel(options.smallBlobSize)} blob: pulls/s`,
    unit: 'pulls/s',
    better: 'higher',
    target: { kind: 'ratio-at-least', value: 2 },
    note: `median of ${burstCount(options.quick)} bursts`,
  };
  for (const reg of Object.values(regs)) await pushMonolithic(reg.client, SEED_REPO, data.small);
  for (let rep = 0; rep < options.reps; rep++) {
    for (const name of order(rep)) {
      ctx.log(`  ${options.smallPulls} parallel pulls <- ${name} (rep ${rep + 1})`);
      await runPhase(
        ctx,
        regs[name],
        rep,
        row,
        rssRow('small pulls', 'parallel-small', 'parallel small pulls'),
        () => bursts(ctx, regs[name]),
      );
    }
  }
}

async function bursts(ctx: BenchContext, reg: Registry): Promise<PhaseResult> {
  const { options, data } = ctx;
  const blob = data.small;
  const repo = freshRepo('small');
  await mountBlob(reg.client, repo, blob.digest, SEED_REPO);
  const raw = new RawPool(reg.url, 256 * 1024);
  await blob.syncVerifier(); // loads the expected bytes into memory before the clock starts
  const rates: number[] = [];
  try {
    for (let b = 0; b < burstCount(options.quick); b++) {
      const start = performance.now();
      await Promise.all(
        Array.from({ length: options.smallPulls }, async () => {
          const check = await blob.syncVerifier();
          const res = await raw.get(`/v2/${repo}/blobs/${blob.digest}`, {}, (chunk) => check.push(chunk));
          if (res.status !== 200) throw new Error(`GET small blob: status ${res.status}`);
          const digest = res.headers['docker-content-digest'];
          if (digest !== undefined && digest !== blob.digest)
            throw new Error(`GET small blob: digest ${digest}`);
          check.finish();
        }),
      );
      rates.push(options.smallPulls / secondsSince(start));
    }
  } finally {
    raw.close();
  }
  return {
    value: median(rates),
    details: { bursts: rates, repo },
    work: { amount: rates.length * options.smallPulls, per: 'pull' },
  };
}
