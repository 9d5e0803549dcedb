/**
 * Memory during a 5 GiB push (1 GiB in quick mode): one streamed PATCH (chunked transfer encoding, as docker
 * pushes a layer) of fresh content, then PUT. A fresh registry instance per run, so each starts from its idle
 * footprint and the disk space is given back right after. The target is absolute: Berth below 200 MiB RSS.
 */
import { freshRepo, order, runPhase, withRegistries, type BenchContext } from '../lib/context.ts';
import { sizeLabel } from '../lib/format.ts';
import { checkBlob, pushStreamed } from '../lib/oci.ts';
import type { RowSpec } from '../lib/results.ts';
import { MiB, secondsSince } from '../lib/stats.ts';

export async function bigPushWorkload(ctx: BenchContext): Promise<void> {
  const { options, data } = ctx;
  const size = sizeLabel(options.bigPushSize);
  const rssRow: RowSpec = {
    id: 'rss.big-push',
    family: 'memory',
    label: `peak RSS during a ${size} push (one streamed PATCH)`,
    unit: 'MiB',
    better: 'lower',
    target: { kind: 'berth-below', value: 200 },
    note: 'a fresh registry process per run',
  };
  const throughputRow: RowSpec = {
    id: 'push.big',
    family: 'push',
    label: `push ${size}, streamed (one PATCH)`,
    unit: 'MiB/s',
    better: 'higher',
    note: 'the push whose memory is watched',
  };
  for (let rep = 0; rep < options.reps; rep++) {
    for (const name of order(rep)) {
      await withRegistries(
        ctx,
        async (regs) => {
          const reg = regs[name];
          const blob = data.bigBlobs.next();
          const repo = freshRepo('big-push');
          ctx.log(`  push ${size} -> ${name} (rep ${rep + 1})`);
          await runPhase(ctx, reg, rep, throughputRow, rssRow, async () => {
            const start = performance.now();
            await pushStreamed(reg.client, repo, blob);
            const seconds = secondsSince(start);
            await checkBlob(reg.client, repo, blob);
            return { value: blob.size / MiB / seconds, details: { seconds, repo } };
          });
        },
        [name],
      );
    }
  }
}
