/**
 * Pushes cosign's classic key-based signatures to a running registry over HTTP, shaped as cosign pushes them (the
 * signatures themselves come from `cosign-signature.ts`: simple-signing payload, ECDSA P-256 / SHA-256, DER,
 * base64 in the `dev.cosignproject.cosign/signature` layer annotation):
 *
 * - tag scheme (`cosign sign --key`, the default): an OCI image manifest tagged `sha256-<hex>.sig` whose config is
 *   the image config go-containerregistry builds for it (zero timestamps, the payload as the only diff ID) and
 *   whose layer is the payload (`application/vnd.dev.cosign.simplesigning.v1+json`);
 * - OCI 1.1 referrer (`--registry-referrers-mode=oci-1-1`, `WriteSignaturesExperimentalOCI` in sigstore/cosign's
 *   `pkg/oci/remote/write.go`): the same manifest with the config's media type and the manifest's `artifactType`
 *   set to `application/vnd.dev.cosign.artifact.sig.v1+json` and `subject` naming the signed manifest, pushed by
 *   digest.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  blobOf,
  sigManifest,
  sigTag,
  signatureLayer,
  simpleSigningPayload,
  type Blob,
  type SigningKey,
} from './cosign-signature.ts';

export const COSIGN_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** A content descriptor. */
export interface SignedDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/** Where and as whom signatures are pushed: the registry's base URL and an `Authorization` header value. */
export interface PushTarget {
  readonly url: string;
  readonly authorization: string;
}

/** Uploads `blob` to `repository` in one `POST ?digest=` and checks the 201. */
export async function pushBlob(target: PushTarget, repository: string, blob: Blob): Promise<void> {
  const res = await fetch(`${target.url}/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, {
    method: 'POST',
    headers: { authorization: target.authorization, 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  });
  assert.equal(res.status, 201, `blob upload to ${repository}: ${res.status} ${await res.text()}`);
}

/**
 * PUTs OCI image manifest bytes (an object is serialised) at `reference` and checks the 201 and the digest;
 * returns its descriptor.
 */
export async function pushManifest(
  target: PushTarget,
  repository: string,
  reference: string,
  manifest: Buffer | object,
): Promise<SignedDescriptor> {
  const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${target.url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { authorization: target.authorization, 'content-type': OCI_MANIFEST },
    body: bytes,
  });
  assert.equal(res.status, 201, `manifest PUT ${repository}:${reference}: ${res.status} ${await res.text()}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  assert.equal(res.headers.get('docker-content-digest'), digest);
  return { mediaType: OCI_MANIFEST, digest, size: bytes.length };
}

/** What a signing call pushed. */
export interface PushedSignature {
  /** The signature manifest. */
  readonly manifest: SignedDescriptor;
  /** The tag it went under (tag scheme), or null (a referrer, pushed by digest). */
  readonly tag: string | null;
}

export interface SignOptions {
  /** The repository of the signed manifest (signatures go into the same repository). */
  readonly repository: string;
  /** The signed manifest. */
  readonly subject: SignedDescriptor;
  /** `<host>/<repository>` as the signer named the image. */
  readonly dockerReference: string;
  readonly key: SigningKey;
}

/** Signs `subject` and uploads the payload and config; returns the tag-scheme manifest as an object. */
async function signAndUpload(target: PushTarget, o: SignOptions): Promise<Record<string, unknown>> {
  const layer = signatureLayer(o.key, simpleSigningPayload(o.dockerReference, o.subject.digest));
  const { config, manifest } = sigManifest([layer]);
  await pushBlob(target, o.repository, layer.blob);
  await pushBlob(target, o.repository, config);
  return JSON.parse(manifest.bytes.toString('utf8')) as Record<string, unknown>;
}

/** Signs `subject` as `cosign sign --key` does against a registry without referrers: the `.sig` tag. */
export async function signWithTag(target: PushTarget, o: SignOptions): Promise<PushedSignature> {
  const manifest = await signAndUpload(target, o);
  const tag = sigTag(o.subject.digest);
  return { manifest: await pushManifest(target, o.repository, tag, manifest), tag };
}

/** Signs `subject` as cosign does with `--registry-referrers-mode=oci-1-1`: an OCI 1.1 referrer by digest. */
export async function signAsReferrer(target: PushTarget, o: SignOptions): Promise<PushedSignature> {
  const manifest = await signAndUpload(target, o);
  const config = manifest.config as Record<string, unknown>;
  const bytes = Buffer.from(
    JSON.stringify({
      ...manifest,
      config: { ...config, mediaType: COSIGN_ARTIFACT_TYPE },
      subject: { mediaType: o.subject.mediaType, digest: o.subject.digest, size: o.subject.size },
      artifactType: COSIGN_ARTIFACT_TYPE,
    }),
  );
  const digest = blobOf(bytes).digest;
  return { manifest: await pushManifest(target, o.repository, digest, bytes), tag: null };
}
