/**
 * `_catalog` over 100,000 repositories (500 in quick mode, with pages of 100 instead of 1000). Each registry is seeded once through the API with
 * many small pushes in parallel (per repository one tiny config blob, POST + PUT, and a manifest tagged
 * `latest`; 32 repositories in flight); the seeding rate is a row. Then pages of `n=1000` are timed at three
 * positions (first page; `last=` the middle; `last=` just before the final 1000), 10 times each per
 * repetition, each page checked to hold exactly the expected names. Once per registry the whole catalog is
 * walked through its `Link` headers and checked to list every repository.
 */
import {
  order,
  rssRow,
  runPhase,
  type BenchContext,
  type PhaseResult,
  type Registries,
} from '../lib/context.ts';
import { count } from '../lib/format.ts';
import { forCount } from '../lib/http.ts';
import { configOnlyManifest, pushSmall, putManifest } from '../lib/oci.ts';
import type { Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { median, secondsSince } from '../lib/stats.ts';
import { listAll } from './tags.ts';

/** Page size: n=1000, or a fifth of the repositories when there are fewer than 5,000 (quick mode). */
function pageSize(repos: number): number {
  return Math.max(1, Math.min(1000, Math.floor(repos / 5)));
}

export function repoName(i: number): string {
  return `catalog/r${String(i).padStart(7, '0')}`;
}

type Position = 'first' | 'middle' | 'last';

export async function catalogWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options } = ctx;
  const total = options.repos;
  const n = count(total);
  const samples = options.quick ? 5 : 10;
  const perPage = pageSize(total);
  const seedRow: RowSpec = {
    id: 'catalog.seed',
    family: 'catalog',
    label: `create ${n} repositories (blob + manifest each, ${options.seedConcurrency} in flight): repos/s`,
    unit: 'repos/s',
    better: 'higher',
    note: 'once per registry',
  };
  const pageRow = (position: Position): RowSpec => ({
    id: `catalog.page.${position}`,
    family: 'catalog',
    label: `_catalog ${position} page (n=${perPage}) of ${n} repositories`,
    unit: 'ms',
    better: 'lower',
    target: { kind: 'berth-below', value: 20 },
    note: `median of ${samples} requests`,
  });
  const walkRow: RowSpec = {
    id: 'catalog.walk',
    family: 'catalog',
    label: `walk all of _catalog (n=${perPage}, following Link) over ${n} repositories`,
    unit: 's',
    better: 'lower',
    note: 'once per registry',
  };
  const positions: Position[] = ['first', 'middle', 'last'];
  const names = Array.from({ length: total }, (_, i) => repoName(i));
  for (const name of order(0)) {
    ctx.log(`  creating ${n} repositories in ${name}`);
    await runPhase(
      ctx,
      regs[name],
      0,
      seedRow,
      rssRow('catalog', 'catalog-seed', 'creating repositories'),
      () => seed(ctx, regs[name]),
    );
  }
  for (let rep = 0; rep < options.reps; rep++) {
    for (const name of order(rep)) {
      for (const position of positions) {
        ctx.log(`  _catalog ${position} page x${samples} <- ${name} (rep ${rep + 1})`);
        await runPhase(
          ctx,
          regs[name],
          rep,
          pageRow(position),
          rssRow('catalog', 'catalog-pages', '_catalog pages'),
          () => page(regs[name], names, position, samples, perPage),
        );
      }
    }
  }
  for (const name of order(0)) {
    ctx.log(`  walking _catalog of ${name}`);
    await runPhase(ctx, regs[name], 0, walkRow, undefined, () => walk(regs[name], names, perPage));
  }
}

async function seed(ctx: BenchContext, reg: Registry): Promise<PhaseResult> {
  const start = performance.now();
  let done = 0;
  const progress = setInterval(() => {
    ctx.log(
      `    ${count(done)} of ${count(ctx.options.repos)} repositories (${(done / secondsSince(start)).toFixed(0)}/s)`,
    );
  }, 30_000);
  try {
    await forCount(ctx.options.repos, ctx.options.seedConcurrency, async (i) => {
      const repo = repoName(i);
      const config = Buffer.from(JSON.stringify({ repo }));
      const digest = await pushSmall(reg.client, repo, config);
      await putManifest(reg.client, repo, 'latest', configOnlyManifest({ digest, size: config.length }));
      done++;
    });
  } finally {
    clearInterval(progress);
  }
  const seconds = secondsSince(start);
  return { value: ctx.options.repos / seconds, details: { seconds } };
}

async function page(
  reg: Registry,
  names: readonly string[],
  position: Position,
  samples: number,
  perPage: number,
): Promise<PhaseResult> {
  const from =
    position === 'first'
      ? 0
      : position === 'middle'
        ? Math.floor(names.length / 2)
        : Math.max(0, names.length - perPage);
  const path =
    from === 0
      ? `/v2/_catalog?n=${perPage}`
      : `/v2/_catalog?n=${perPage}&last=${encodeURIComponent(names[from - 1] as string)}`;
  const expected = names.slice(from, from + perPage);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    const res = await reg.client.expect(200, 'GET', path);
    const body = JSON.parse(res.body.toString('utf8')) as { repositories?: string[] };
    times.push(secondsSince(start) * 1000);
    const got = body.repositories ?? [];
    if (got.length !== expected.length || got.some((r, j) => r !== expected[j])) {
      throw new Error(
        `GET ${path}: ${got.length} repositories (${got[0]}..${got.at(-1)}), expected ${expected[0]}..${expected.at(-1)}`,
      );
    }
  }
  return { value: median(times), details: { times, path } };
}

async function walk(reg: Registry, names: readonly string[], perPage: number): Promise<PhaseResult> {
  const start = performance.now();
  const all = await listAll(reg.client, `/v2/_catalog?n=${perPage}`, 'repositories');
  const seconds = secondsSince(start);
  if (all.length !== names.length || all.some((r, j) => r !== names[j])) {
    throw new Error(
      `the _catalog walk returned ${all.length} repositories, expected ${names.length} in order`,
    );
  }
  return { value: seconds, details: { pages: Math.ceil(names.length / perPage) } };
}
