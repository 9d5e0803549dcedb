/**
 * `npm run profile -- WORKLOAD [--seconds N] [--top N]`: runs one workload against Berth started as `npm start`
 * does plus `--cpu-prof`, then prints where its CPU time went (self time by function and by module or package)
 * and the path of the `.cpuprofile`, which Chrome DevTools (Performance panel) or speedscope open as a flame
 * graph. This is how the hot paths in docs/performance.md were found.
 *
 * Workloads: manifest-get (50 connections GET a manifest by tag), blob-pull (4 connections pull a 256 MiB blob
 * over and over), small-pulls (50 connections pull a 1 MiB blob), push (monolithic pushes of fresh 64 MiB blobs),
 * push-webhooks (8 clients push small images while three webhook endpoints are subscribed).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobSource, sha256, MEDIA_TYPE_OCI_MANIFEST } from './lib/data.ts';
import type { RegistryClient } from './lib/http.ts';
import { pushRound, startReceiver, subscribe } from './workloads/webhooks-overhead.ts';
import { configOnlyManifest, pushMonolithic, pushSmall, putManifest } from './lib/oci.ts';
import { buildBerth, startBerth, type Registry } from './lib/registries.ts';
import { MiB } from './lib/stats.ts';

const WORKLOADS = ['manifest-get', 'blob-pull', 'small-pulls', 'push', 'push-webhooks'] as const;
type Workload = (typeof WORKLOADS)[number];

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function parseArgs(argv: string[]): { workload: Workload; seconds: number; top: number } {
  const workload = argv.find((a) => !a.startsWith('--')) as Workload | undefined;
  if (!workload || !WORKLOADS.includes(workload)) {
    throw new Error(`usage: npm run profile -- (${WORKLOADS.join('|')}) [--seconds N] [--top N]`);
  }
  const flag = (name: string, fallback: number): number => {
    const i = argv.indexOf(name);
    const value = i === -1 ? fallback : Number(argv[i + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} needs a positive number`);
    return value;
  };
  return { workload, seconds: flag('--seconds', 10), top: flag('--top', 25) };
}

/** Runs `fn` in `concurrency` loops until `seconds` have passed; returns how many times it completed. */
async function loop(concurrency: number, seconds: number, fn: () => Promise<void>): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await fn();
        count++;
      }
    }),
  );
  return count;
}

/** GETs a blob and discards the body, failing on a wrong status or length. */
async function pull(client: RegistryClient, repo: string, blob: BlobSource): Promise<void> {
  const res = await client.send('GET', `/v2/${repo}/blobs/${blob.digest}`);
  let received = 0;
  for await (const chunk of res) received += (chunk as Buffer).length;
  if (res.statusCode !== 200 || received !== blob.size) {
    throw new Error(`GET blob: status ${res.statusCode}, ${received} of ${blob.size} bytes`);
  }
}

async function runWorkload(workload: Workload, berth: Registry, seconds: number): Promise<string> {
  const repo = 'profile/repo';
  const { client } = berth;
  switch (workload) {
    case 'push-webhooks': {
      const receiver = await startReceiver();
      try {
        await subscribe(berth, receiver);
        const { rate, puts } = await pushRound(berth, seconds, 'profile');
        // Then the deliveries that trailed the load (profiled too).
        const started = performance.now();
        const deadline = Date.now() + 120_000;
        while (receiver.received < puts.length * 3 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const drained = ((performance.now() - started) / 1000).toFixed(1);
        return `${rate.toFixed(0)} small image pushes/s; ${receiver.received} of ${puts.length * 3} deliveries, the last ${drained} s after the load`;
      } finally {
        await receiver.close();
      }
    }
    case 'manifest-get': {
      const config = Buffer.from('{}');
      await pushSmall(client, repo, config, sha256(config));
      const manifest = configOnlyManifest({ digest: sha256(config), size: config.length });
      await putManifest(client, repo, 'latest', manifest);
      const n = await loop(50, seconds, async () => {
        const res = await client.request('GET', `/v2/${repo}/manifests/latest`, {
          headers: { Accept: MEDIA_TYPE_OCI_MANIFEST },
        });
        if (res.status !== 200 || !res.body.equals(manifest)) throw new Error(`GET manifest: ${res.status}`);
      });
      return `${n} manifest GETs (${(n / seconds).toFixed(0)}/s)`;
    }
    case 'blob-pull':
    case 'small-pulls': {
      const blob = BlobSource.fromBuffer(randomBytes(workload === 'blob-pull' ? 256 * MiB : MiB));
      await pushMonolithic(client, repo, blob);
      const n = await loop(workload === 'blob-pull' ? 4 : 50, seconds, () => pull(client, repo, blob));
      return `${n} pulls of ${blob.size / MiB} MiB (${((n * blob.size) / MiB / seconds).toFixed(0)} MiB/s)`;
    }
    case 'push': {
      const n = await loop(1, seconds, () =>
        pushMonolithic(client, repo, BlobSource.fromBuffer(randomBytes(64 * MiB))),
      );
      return `${n} pushes of 64 MiB`;
    }
  }
}

/** Self time per function and per module (a package under node_modules, a Berth file, or a Node.js builtin). */
function summarize(profile: CpuProfile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfByNode = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + dt);
    total += dt;
  });
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  for (const [id, time] of selfByNode) {
    const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame;
    const where = url.includes('/node_modules/')
      ? url.replace(/.*\/node_modules\//, '')
      : url.replace(/^file:\/\/.*?\/dist\//, 'berth/');
    const fn = `${functionName || '(anonymous)'}  ${where ? `${where}:${lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + time);
    const module = url.includes('/node_modules/')
      ? url.replace(/.*\/node_modules\/((@[^/]+\/)?[^/]+).*/, '$1')
      : url.startsWith('file://')
        ? url.replace(/^file:\/\/.*?\/dist\//, 'berth/')
        : url || functionName;
    byModule.set(module, (byModule.get(module) ?? 0) + time);
  }
  const table = (m: Map<string, number>): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}`)
      .join('\n');
  return `Self time by module (of ${(total / 1e6).toFixed(1)} s sampled):\n${table(byModule)}\n\nSelf time by function:\n${table(byFunction)}`;
}

async function main(): Promise<void> {
  const { workload, seconds, top } = parseArgs(process.argv.slice(2));
  await buildBerth();
  const profileDir = await mkdtemp(path.join(tmpdir(), 'berth-profile-'));
  const berth = await startBerth(
    ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
    workload === 'push-webhooks' ? { BERTH_WEBHOOKS_ALLOWED_HOSTS: '127.0.0.1' } : {},
  );
  let done: string;
  try {
    done = await runWorkload(workload, berth, seconds);
  } finally {
    await berth.stop(); // the profile is written as the process exits
  }
  const file = (await readdir(profileDir)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`berth wrote no profile in ${profileDir}`);
  const profile = JSON.parse(await readFile(path.join(profileDir, file), 'utf8')) as CpuProfile;
  process.stdout.write(`${workload}: ${done}\n\n${summarize(profile, top)}\n\n`);
  process.stdout.write(`Profile: ${path.join(profileDir, file)} (open in Chrome DevTools or speedscope)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
