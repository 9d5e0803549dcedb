/** Distribution-API operations the workloads share: the three upload styles, mounts, manifests. */
import type { BlobSource } from './data.ts';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST, sha256 } from './data.ts';
import { header, requireHeader, type RegistryClient } from './http.ts';

const OCTET = 'application/octet-stream';

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

async function startUpload(client: RegistryClient, repo: string): Promise<string> {
  const res = await client.expect(202, 'POST', `/v2/${repo}/blobs/uploads/`);
  return requireHeader(res.headers, 'location', `POST /v2/${repo}/blobs/uploads/`);
}

function checkDigest(what: string, headers: Record<string, unknown>, blob: BlobSource): void {
  const got = headers['docker-content-digest'];
  if (got !== blob.digest)
    throw new Error(`${what}: Docker-Content-Digest ${String(got)}, expected ${blob.digest}`);
}

/** POST, then one PUT with the whole blob and `?digest=`. */
export async function pushMonolithic(client: RegistryClient, repo: string, blob: BlobSource): Promise<void> {
  const location = await startUpload(client, repo);
  const res = await client.expect(201, 'PUT', withDigest(location, blob.digest), {
    headers: { 'Content-Type': OCTET, 'Content-Length': blob.size },
    body: blob.open(),
  });
  checkDigest('PUT upload', res.headers, blob);
}

/** POST, one PATCH with the whole blob as a chunked-encoded stream (no Content-Range, as docker does), PUT. */
export async function pushStreamed(client: RegistryClient, repo: string, blob: BlobSource): Promise<void> {
  const location = await startUpload(client, repo);
  const patched = await client.expect(202, 'PATCH', location, {
    headers: { 'Content-Type': OCTET },
    body: blob.open(),
  });
  const range = header(patched.headers, 'range');
  if (range !== `0-${blob.size - 1}`) throw new Error(`PATCH: Range ${range}, expected 0-${blob.size - 1}`);
  const next = requireHeader(patched.headers, 'location', 'PATCH');
  const res = await client.expect(201, 'PUT', withDigest(next, blob.digest));
  checkDigest('PUT upload', res.headers, blob);
}

/** POST, PATCHes of `chunkSize` bytes with Content-Range (following each Location), PUT. */
export async function pushChunked(
  client: RegistryClient,
  repo: string,
  blob: BlobSource,
  chunkSize: number,
): Promise<void> {
  let location = await startUpload(client, repo);
  for (let start = 0; start < blob.size; start += chunkSize) {
    const end = Math.min(blob.size, start + chunkSize);
    const patched = await client.expect(202, 'PATCH', location, {
      headers: {
        'Content-Type': OCTET,
        'Content-Length': end - start,
        'Content-Range': `${start}-${end - 1}`,
      },
      body: blob.open(start, end),
    });
    const range = header(patched.headers, 'range');
    if (range !== `0-${end - 1}`) throw new Error(`PATCH ${start}-${end - 1}: Range ${range}`);
    location = requireHeader(patched.headers, 'location', 'PATCH');
  }
  const res = await client.expect(201, 'PUT', withDigest(location, blob.digest));
  checkDigest('PUT upload', res.headers, blob);
}

/** A small blob in one POST + PUT (buffered body). */
export async function pushSmall(
  client: RegistryClient,
  repo: string,
  data: Buffer,
  digest = sha256(data),
): Promise<string> {
  const location = await startUpload(client, repo);
  await client.expect(201, 'PUT', withDigest(location, digest), {
    headers: { 'Content-Type': OCTET },
    body: data,
  });
  return digest;
}

/** Cross-repository mount (201). */
export async function mountBlob(
  client: RegistryClient,
  repo: string,
  digest: string,
  from: string,
): Promise<void> {
  await client.expect(
    201,
    'POST',
    `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
  );
}

/** HEAD a blob: must exist with this size and digest. */
export async function checkBlob(
  client: RegistryClient,
  repo: string,
  blob: { digest: string; size: number },
): Promise<void> {
  const res = await client.expect(200, 'HEAD', `/v2/${repo}/blobs/${blob.digest}`);
  const length = Number(header(res.headers, 'content-length'));
  if (length !== blob.size) throw new Error(`HEAD blob: Content-Length ${length}, expected ${blob.size}`);
  const digest = header(res.headers, 'docker-content-digest');
  if (digest !== undefined && digest !== blob.digest) throw new Error(`HEAD blob: digest ${digest}`);
}

/** PUT an OCI manifest by reference; returns its digest (checked against the registry's). */
export async function putManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  manifest: Buffer,
): Promise<string> {
  const digest = sha256(manifest);
  const res = await client.expect(201, 'PUT', `/v2/${repo}/manifests/${reference}`, {
    headers: { 'Content-Type': MEDIA_TYPE_OCI_MANIFEST },
    body: manifest,
  });
  const got = header(res.headers, 'docker-content-digest');
  if (got !== undefined && got !== digest) throw new Error(`PUT manifest: digest ${got}, expected ${digest}`);
  return digest;
}

/** A manifest with only a config blob (and no layers): the smallest image a repository can hold. */
export function configOnlyManifest(config: { digest: string; size: number }): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: config.digest, size: config.size },
      layers: [],
    }),
  );
}
