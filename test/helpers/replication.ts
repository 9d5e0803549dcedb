/**
 * Content and admin API helpers for the replication tests: a multi-platform image with a signature-style
 * referrer pushed through a RegistryClient, and a small JSON client of Berth's admin API.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Digest } from '../../src/oci/digest.ts';
import type { RegistryClient } from '../../src/remote/registry-client.ts';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const SIGNATURE_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const ATTESTATION_TYPE = 'application/vnd.in-toto+json';

export function digestOf(bytes: Buffer): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Desc {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { architecture: string; os: string };
}

async function pushBlob(
  client: RegistryClient,
  repo: string,
  bytes: Buffer,
  mediaType: string,
): Promise<Desc> {
  const digest = digestOf(bytes);
  if ((await client.headBlob(repo, digest)) === null) {
    await client.putBlob(repo, digest, bytes.length, Readable.from([bytes]));
  }
  return { mediaType, digest, size: bytes.length };
}

async function pushManifest(
  client: RegistryClient,
  repo: string,
  reference: string | null,
  mediaType: string,
  body: unknown,
): Promise<{ digest: Digest; bytes: Buffer; desc: Desc }> {
  const bytes = Buffer.from(JSON.stringify(body));
  const digest = digestOf(bytes);
  await client.putManifest(repo, reference ?? digest, mediaType, bytes);
  return { digest, bytes, desc: { mediaType, digest, size: bytes.length } };
}

export interface PushedIndex {
  readonly index: Digest;
  readonly indexBytes: Buffer;
  readonly children: readonly Digest[];
  readonly blobs: readonly Digest[];
  /** The signature-style referrer (an artifact manifest whose subject is the index). */
  readonly referrer: Digest;
  readonly referrerBytes: Buffer;
  /** An attestation-style referrer of the first child (`children[0]`). */
  readonly attestation: Digest;
}

/**
 * Pushes a two-platform index (each child with a config and two layers of `layerSize` random bytes) under `tag`,
 * and a signature-style referrer of the index by digest; with `referrerTag`, also under the cosign tag (for a
 * registry without the referrers API).
 */
export async function pushIndexWithReferrer(
  client: RegistryClient,
  repo: string,
  tag: string,
  options: { layerSize?: number; referrerTag?: boolean } = {},
): Promise<PushedIndex> {
  const size = options.layerSize ?? 2048;
  const blobs: Digest[] = [];
  const children: Desc[] = [];
  for (const architecture of ['amd64', 'arm64']) {
    const config = await pushBlob(
      client,
      repo,
      Buffer.from(JSON.stringify({ architecture, os: 'linux', nonce: randomBytes(8).toString('hex') })),
      OCI_CONFIG,
    );
    const layers = [
      await pushBlob(client, repo, randomBytes(size), OCI_LAYER),
      await pushBlob(client, repo, randomBytes(size), OCI_LAYER),
    ];
    blobs.push(config.digest, ...layers.map((l) => l.digest));
    const m = await pushManifest(client, repo, null, OCI_MANIFEST, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config,
      layers,
    });
    children.push({ ...m.desc, platform: { architecture, os: 'linux' } });
  }
  const index = await pushManifest(client, repo, tag, OCI_INDEX, {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children,
  });
  const empty = await pushBlob(client, repo, Buffer.from('{}'), OCI_EMPTY);
  const sig = await pushBlob(
    client,
    repo,
    Buffer.from(`signature of ${index.digest}`),
    'application/octet-stream',
  );
  blobs.push(empty.digest, sig.digest);
  const referrer = await pushManifest(
    client,
    repo,
    options.referrerTag ? `${index.digest.replace(':', '-')}.sig` : null,
    OCI_MANIFEST,
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SIGNATURE_TYPE,
      config: empty,
      layers: [sig],
      subject: index.desc,
    },
  );
  // A per-platform attestation, referring to the first child.
  const statement = await pushBlob(
    client,
    repo,
    Buffer.from(`attestation of ${children[0]!.digest}`),
    'application/vnd.in-toto+json',
  );
  blobs.push(statement.digest);
  const attestation = await pushManifest(client, repo, null, OCI_MANIFEST, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ATTESTATION_TYPE,
    config: empty,
    layers: [statement],
    subject: children[0]!,
  });
  return {
    attestation: attestation.digest,
    index: index.digest,
    indexBytes: index.bytes,
    children: children.map((c) => c.digest),
    blobs,
    referrer: referrer.digest,
    referrerBytes: referrer.bytes,
  };
}

/** A JSON client of Berth's admin API as a Basic-authenticated user. */
export function adminApi(baseUrl: string, username: string, password: string) {
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  return async <T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers: {
        authorization: auth,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as T };
  };
}

export type AdminApi = ReturnType<typeof adminApi>;

export interface ExecutionJson {
  id: number;
  state: string;
  error: string | null;
  progress: {
    total: number;
    succeeded: number;
    failed: number;
    pending: number;
    running: number;
    bytes: number;
  };
  tasks?: { items: { state: string; error: string | null; sourceReference: string }[] };
}

/** Polls an execution until it is finished (or `timeoutMs` passes); returns it. */
export async function waitForExecution(
  api: AdminApi,
  id: number,
  timeoutMs = 60_000,
): Promise<ExecutionJson> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api<ExecutionJson>('GET', `/replication/executions/${id}`).catch(() => null);
    if (r !== null && r.status === 200 && ['succeeded', 'failed', 'canceled'].includes(r.body.state))
      return r.body;
    if (Date.now() > deadline) throw new Error(`execution ${id} did not finish: ${JSON.stringify(r?.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Polls `check` until it returns true (or throws after `timeoutMs`). */
export async function eventually(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
