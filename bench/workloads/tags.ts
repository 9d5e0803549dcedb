/**
 * `tags/list` of a repository with 10,000 tags (1,000 in quick mode). Each run seeds a fresh repository through
 * the API (one small image, then one manifest PUT per tag, 32 in flight; the seeding rate is a row too) and
 * then lists its tags 10 times (following `Link` should a registry paginate), checking the complete list
 * every time. The row is the median time of one complete listing.
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
import { count } from '../lib/format.ts';
import { forCount, header, type RegistryClient } from '../lib/http.ts';
import { configOnlyManifest, pushSmall, putManifest } from '../lib/oci.ts';
import type { Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { median, secondsSince } from '../lib/stats.ts';

const LISTINGS = 10;

export function tagName(i: number): string {
  return `t${String(i).padStart(6, '0')}`;
}

export async function tagsWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options } = ctx;
  const n = count(options.tags);
  const seedRow: RowSpec = {
    id: 'tags.seed',
    family: 'tags',
    label: `tag ${n} manifests (PUT by tag, ${options.seedConcurrency} in flight): tags/s`,
    unit: 'tags/s',
    better: 'higher',
  };
  const listRow: RowSpec = {
    id: 'tags.list',
    family: 'tags',
    label: `tags/list of a repository with ${n} tags`,
    unit: 'ms',
    better: 'lower',
    note: `median of ${LISTINGS} complete listings`,
  };
  for (let rep = 0; rep < options.reps; rep++) {
    for (const name of order(rep)) {
      const reg = regs[name];
      const repo = freshRepo('tags');
      ctx.log(`  tag ${n} -> ${name} (rep ${rep + 1})`);
      const seeded = await runPhase(ctx, reg, rep, seedRow, rssRow('tags', 'tags-seed', 'tagging'), () =>
        seed(ctx, reg, repo),
      );
      if (!seeded) continue;
      ctx.log(`  tags/list x${LISTINGS} <- ${name} (rep ${rep + 1})`);
      await runPhase(ctx, reg, rep, listRow, rssRow('tags', 'tags-list', 'tags/list'), () =>
        list(ctx, reg, repo),
      );
    }
  }
}

async function seed(ctx: BenchContext, reg: Registry, repo: string): Promise<PhaseResult> {
  const config = Buffer.from(JSON.stringify({ repo }));
  const digest = await pushSmall(reg.client, repo, config);
  const manifest = configOnlyManifest({ digest, size: config.length });
  const start = performance.now();
  await forCount(ctx.options.tags, ctx.options.seedConcurrency, async (i) => {
    await putManifest(reg.client, repo, tagName(i), manifest);
  });
  const seconds = secondsSince(start);
  return { value: ctx.options.tags / seconds, details: { seconds, repo } };
}

/** All tags of a repository, following Link headers. */
export async function listAll(
  client: RegistryClient,
  firstPath: string,
  key: 'tags' | 'repositories',
): Promise<string[]> {
  const all: string[] = [];
  let next: string | undefined = firstPath;
  while (next) {
    const res = await client.expect(200, 'GET', next);
    const body = JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
    const items = body[key];
    if (!Array.isArray(items)) throw new Error(`GET ${next}: no "${key}" array`);
    all.push(...(items as string[]));
    const link = header(res.headers, 'link');
    next = link ? /<([^>]+)>/.exec(link)?.[1] : undefined;
  }
  return all;
}

async function list(ctx: BenchContext, reg: Registry, repo: string): Promise<PhaseResult> {
  const expected = Array.from({ length: ctx.options.tags }, (_, i) => tagName(i));
  const times: number[] = [];
  for (let i = 0; i < LISTINGS; i++) {
    const start = performance.now();
    const tags = await listAll(reg.client, `/v2/${repo}/tags/list`, 'tags');
    times.push(secondsSince(start) * 1000);
    // Distribution 2.8 does not promise an order without `n`, so compare as sets.
    tags.sort();
    if (tags.length !== expected.length || tags.some((t, j) => t !== expected[j])) {
      throw new Error(`tags/list returned ${tags.length} tags, not the ${expected.length} pushed`);
    }
  }
  return { value: median(times), details: { times, repo } };
}
