/**
 * Manifest GET and HEAD by tag under load: autocannon (in the harness process) keeps 50 keep-alive connections
 * busy for 20 s (5 s in quick mode) against one fresh repository's `latest`. Requests/s is completed requests
 * over the run's duration; p50/p99 come from every response's latency (autocannon's own histogram has 1 ms
 * resolution, too coarse here, so the latencies are collected from its `response` events). GET bodies must
 * equal the pushed manifest (autocannon's `expectBody`), and any non-2xx, error, timeout or mismatch fails the run.
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import {
  freshRepo,
  order,
  rssRow,
  runPhase,
  type BenchContext,
  type PhaseResult,
  type Registries,
} from '../lib/context.ts';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST, sha256 } from '../lib/data.ts';
import { header } from '../lib/http.ts';
import { pushSmall, putManifest } from '../lib/oci.ts';
import type { Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { percentile, SampleBuffer } from '../lib/stats.ts';

type Method = 'GET' | 'HEAD';

function rows(method: Method, connections: number): { rps: RowSpec; p50: RowSpec; p99: RowSpec } {
  const m = method.toLowerCase();
  const what = `manifest ${method} by tag, ${connections} connections`;
  return {
    rps: {
      id: `manifest.${m}.rps`,
      family: 'manifests',
      label: `${what}: requests/s`,
      unit: 'req/s',
      better: 'higher',
      target: { kind: 'ratio-at-least', value: 3 },
    },
    p50: {
      id: `manifest.${m}.p50`,
      family: 'manifests',
      label: `${what}: p50 latency`,
      unit: 'ms',
      better: 'lower',
    },
    p99: {
      id: `manifest.${m}.p99`,
      family: 'manifests',
      label: `${what}: p99 latency`,
      unit: 'ms',
      better: 'lower',
      target: { kind: 'ratio-below', value: 1 },
    },
  };
}

export async function manifestWorkload(ctx: BenchContext, regs: Registries): Promise<void> {
  const { options } = ctx;
  const methods: Method[] = ['GET', 'HEAD'];
  const specs = { GET: rows('GET', options.connections), HEAD: rows('HEAD', options.connections) };
  for (const m of methods) for (const spec of Object.values(specs[m])) ctx.rec.define(spec);
  for (let rep = 0; rep < options.reps; rep++) {
    for (const method of methods) {
      for (const name of order(rep)) {
        const reg = regs[name];
        const s = specs[method];
        ctx.log(
          `  manifest ${method} x${options.connections} for ${options.loadSeconds}s -> ${name} (rep ${rep + 1})`,
        );
        const manifest = await seedImage(reg);
        await runPhase(
          ctx,
          reg,
          rep,
          s.rps,
          rssRow('manifests', `manifest-${method.toLowerCase()}`, `manifest ${method} load`),
          () => load(ctx, reg, manifest, method, s),
        );
      }
    }
  }
}

export interface SeededManifest {
  repo: string;
  bytes: Buffer;
  digest: string;
}

/** A fresh repository with a small image (config + one 1 KiB layer) tagged `latest`. */
export async function seedImage(reg: Registry): Promise<SeededManifest> {
  const repo = freshRepo('manifest');
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const layer = randomBytes(1024);
  await pushSmall(reg.client, repo, config);
  await pushSmall(reg.client, repo, layer);
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length },
      ],
    }),
  );
  const digest = await putManifest(reg.client, repo, 'latest', bytes);
  // The registry serves it back as pushed.
  const res = await reg.client.expect(200, 'GET', `/v2/${repo}/manifests/latest`, {
    headers: { Accept: MEDIA_TYPE_OCI_MANIFEST },
  });
  if (!res.body.equals(bytes)) throw new Error('GET manifest: body differs from the pushed manifest');
  const head = await reg.client.expect(200, 'HEAD', `/v2/${repo}/manifests/latest`, {
    headers: { Accept: MEDIA_TYPE_OCI_MANIFEST },
  });
  if (header(head.headers, 'docker-content-digest') !== digest)
    throw new Error('HEAD manifest: wrong Docker-Content-Digest');
  return { repo, bytes, digest };
}

/**
 * autocannon's HTTP parser (http-parser-js) is never told that its requests are HEADs, so it waits for the
 * Content-Length bytes of body a HEAD response announces but does not carry, and no request ever completes.
 * The parser skips the body when the headers-complete callback returns true (as node's own client does for
 * HEAD): autocannon installs that callback after `setupClient`, so intercept the assignment and wrap it.
 */
function skipBodiesOfHeadResponses(client: unknown): void {
  const parser = (client as { parser: { constructor: { kOnHeadersComplete: number } } }).parser;
  const key = parser.constructor.kOnHeadersComplete;
  let onHeadersComplete: ((info: unknown) => unknown) | undefined;
  Object.defineProperty(parser, key, {
    configurable: true,
    get: () => (info: unknown) => {
      onHeadersComplete?.(info);
      return true;
    },
    set: (fn: (info: unknown) => unknown) => {
      onHeadersComplete = fn;
    },
  });
}

async function load(
  ctx: BenchContext,
  reg: Registry,
  manifest: SeededManifest,
  method: Method,
  s: { rps: RowSpec; p50: RowSpec; p99: RowSpec },
): Promise<PhaseResult> {
  const latencies = new SampleBuffer();
  const statuses = new Map<number, number>();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${reg.url}/v2/${manifest.repo}/manifests/latest`,
        method,
        connections: ctx.options.connections,
        duration: ctx.options.loadSeconds,
        headers: { accept: MEDIA_TYPE_OCI_MANIFEST },
        expectBody: method === 'GET' ? manifest.bytes.toString('utf8') : undefined,
        timeout: 10,
        setupClient: method === 'HEAD' ? skipBodiesOfHeadResponses : undefined,
      },
      (err: unknown, res: autocannon.Result) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1);
    });
  });
  const problems = [
    result.non2xx
      ? `${result.non2xx} non-2xx responses (${JSON.stringify(Object.fromEntries(statuses))})`
      : '',
    result.errors ? `${result.errors} errors` : '',
    result.timeouts ? `${result.timeouts} timeouts` : '',
    result.mismatches ? `${result.mismatches} bodies differing from the manifest` : '',
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`manifest ${method} under load: ${problems.join(', ')}`);
  if (latencies.length === 0) throw new Error(`manifest ${method} under load: no responses`);
  const sorted = latencies.sorted();
  const rps = result.requests.total / result.duration;
  return {
    value: rps,
    extra: { [s.p50.id]: percentile(sorted, 50, true), [s.p99.id]: percentile(sorted, 99, true) },
    details: { requests: result.requests.total, seconds: result.duration, repo: manifest.repo },
    work: { amount: result.requests.total / 1000, per: '1,000 requests' },
  };
}
