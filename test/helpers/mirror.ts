/**
 * Pieces the pull-through cache's end-to-end tests share: a Berth process caching the upstreams it is given
 * (`BERTH_PROXY_UPSTREAMS`), images seeded into an upstream with skopeo, and a streamed blob GET that hashes the
 * bytes as they arrive (so many concurrent pulls of a big layer never sit in memory).
 */
import { createHash } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { run } from './clients.ts';
import { writeImageLayout, type ImageLayout } from './oci-layout.ts';
import { startBerth, type RunningBerth } from './server.ts';

/** An upstream as `proxy.upstreams` takes it (see src/proxy/upstream.ts for the fields). */
export type UpstreamConfig = Record<string, unknown> & { name: string; namespace: string; urls: string[] };

/** Starts Berth (open, no auth) with `upstreams` as its configured upstreams. */
export function startCache(
  upstreams: UpstreamConfig[],
  env: Record<string, string> = {},
): Promise<RunningBerth> {
  return startBerth({ env: { BERTH_PROXY_UPSTREAMS: JSON.stringify(upstreams), ...env } });
}

export interface SeedOptions {
  /** Working directory for the OCI layout. */
  readonly dir: string;
  /** The upstream's `127.0.0.1:PORT`. */
  readonly host: string;
  /** Repository on the upstream, e.g. `library/alpine-x`. */
  readonly repo: string;
  readonly tag: string;
  /** The containers env (skopeo's policy and storage) from `containersEnv`. */
  readonly env: NodeJS.ProcessEnv;
  /** `user:password` for an upstream that requires credentials. */
  readonly creds?: string;
  readonly layers?: number;
  readonly layerSize?: number;
}

/** Writes a fresh image (random layers) and copies it with skopeo to `<host>/<repo>:<tag>`. */
export async function seedUpstream(options: SeedOptions): Promise<ImageLayout> {
  const image = await writeImageLayout(options.dir, {
    tag: options.tag,
    layers: options.layers ?? 2,
    layerSize: options.layerSize ?? 256 * 1024,
  });
  await run(
    'skopeo',
    [
      'copy',
      '--dest-tls-verify=false',
      ...(options.creds ? ['--dest-creds', options.creds] : []),
      image.reference,
      `docker://${options.host}/${options.repo}:${options.tag}`,
    ],
    { env: options.env },
  );
  return image;
}

export interface StreamedBlob {
  readonly status: number;
  /** `sha256:<hex>` of the body. */
  readonly digest: string;
  readonly bytes: number;
}

/** GETs `url` and hashes the body while it streams (nothing is buffered). */
export function hashedGet(url: string): Promise<StreamedBlob> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, digest: `sha256:${hash.digest('hex')}`, bytes }),
      );
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`GET ${url}: response aborted after ${bytes} bytes`)));
    });
    req.on('error', reject);
  });
}
