/**
 * cosign's classic key-based signatures, made the way cosign makes them, with node:crypto and plain HTTP pushes:
 *
 * - the payload is the simple-signing JSON naming the image (`critical.identity.docker-reference`, the image's
 *   `<host>/<repository>`) and its manifest digest (`critical.image.docker-manifest-digest`);
 * - the signature is ECDSA P-256 with SHA-256 over the exact payload bytes, DER-encoded, in base64, carried in the
 *   layer annotation `dev.cosignproject.cosign/signature`;
 * - tag scheme (`cosign sign` against registries without referrers): an OCI image manifest tagged
 *   `sha256-<hex>.sig` whose config is the image config go-containerregistry builds for it (zero timestamps, the
 *   payload as the only diff ID; `pkg/oci/empty` and `pkg/oci/mutate` in sigstore/cosign) and whose one layer is
 *   the payload (`application/vnd.dev.cosign.simplesigning.v1+json`);
 * - OCI 1.1 referrer (`--registry-referrers-mode=oci-1-1`): the same layer under a manifest with `artifactType`
 *   `application/vnd.dev.cosign.artifact.sig.v1+json`, the empty config and `subject` = the signed manifest.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export const COSIGN_SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** A content descriptor. */
export interface SignedDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/** An ECDSA P-256 key pair, as `cosign generate-key-pair` makes (the public key as SPKI PEM). */
export interface CosignKey {
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

/** Where and as whom signatures are pushed: the registry's base URL and an `Authorization` header value. */
export interface PushTarget {
  readonly url: string;
  readonly authorization: string;
}

/** `sha256:<hex>` of `bytes`. */
function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A fresh ECDSA P-256 key pair. */
export function generateCosignKey(): CosignKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** The simple-signing payload cosign signs for `dockerReference` (`<host>/<repository>`) at `digest`. */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  // cosign marshals this struct with Go's encoding/json: this key order, no spaces, `optional` null.
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** base64 of the DER ECDSA-SHA256 signature of `payload`. */
export function signPayload(payload: Buffer, key: KeyObject): string {
  return sign('sha256', payload, key).toString('base64');
}

/** Uploads `bytes` to `repository` in one `POST ?digest=` and checks the 201. */
export async function pushBlob(
  target: PushTarget,
  repository: string,
  bytes: Buffer,
  mediaType: string,
): Promise<SignedDescriptor> {
  const digest = sha256(bytes);
  const res = await fetch(`${target.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { authorization: target.authorization, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  assert.equal(res.status, 201, `blob upload to ${repository}: ${res.status} ${await res.text()}`);
  return { mediaType, digest, size: bytes.length };
}

/** PUTs an OCI image manifest at `reference` and checks the 201 and the digest; returns its descriptor. */
export async function pushManifest(
  target: PushTarget,
  repository: string,
  reference: string,
  manifest: unknown,
): Promise<SignedDescriptor> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${target.url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { authorization: target.authorization, 'content-type': OCI_MANIFEST },
    body: bytes,
  });
  assert.equal(res.status, 201, `manifest PUT ${repository}:${reference}: ${res.status} ${await res.text()}`);
  const digest = sha256(bytes);
  assert.equal(res.headers.get('docker-content-digest'), digest);
  return { mediaType: OCI_MANIFEST, digest, size: bytes.length };
}

/** What a signing call pushed. */
export interface PushedSignature {
  /** The signature manifest. */
  readonly manifest: SignedDescriptor;
  /** The payload layer. */
  readonly payload: SignedDescriptor;
  /** The tag it went under (tag scheme), or null (referrer pushed by digest). */
  readonly tag: string | null;
}

export interface SignOptions {
  /** The repository of the signed manifest (signatures go into the same repository). */
  readonly repository: string;
  /** The signed manifest. */
  readonly subject: SignedDescriptor;
  /** `<host>/<repository>` as the signer named the image. */
  readonly dockerReference: string;
  readonly key: KeyObject;
}

/** Uploads the payload and returns its layer descriptor with the signature annotation. */
async function signatureLayer(
  target: PushTarget,
  o: SignOptions,
): Promise<{ payload: SignedDescriptor; layer: Record<string, unknown> }> {
  const payloadBytes = simpleSigningPayload(o.dockerReference, o.subject.digest);
  const payload = await pushBlob(target, o.repository, payloadBytes, COSIGN_SIMPLE_SIGNING);
  const layer = {
    ...payload,
    annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signPayload(payloadBytes, o.key) },
  };
  return { payload, layer };
}

/** The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** Signs `subject` as `cosign sign --key` does against a registry without referrers: the `.sig` tag. */
export async function signWithTag(target: PushTarget, o: SignOptions): Promise<PushedSignature> {
  const { payload, layer } = await signatureLayer(target, o);
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: [payload.digest] },
      config: {},
    }),
  );
  const config = await pushBlob(target, o.repository, configBytes, OCI_CONFIG);
  const tag = signatureTag(o.subject.digest);
  const manifest = await pushManifest(target, o.repository, tag, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config,
    layers: [layer],
  });
  return { manifest, payload, tag };
}

/** Signs `subject` as cosign does with `--registry-referrers-mode=oci-1-1`: an OCI 1.1 referrer by digest. */
export async function signAsReferrer(target: PushTarget, o: SignOptions): Promise<PushedSignature> {
  const { payload, layer } = await signatureLayer(target, o);
  const config = await pushBlob(target, o.repository, Buffer.from('{}'), OCI_EMPTY);
  const body = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: COSIGN_ARTIFACT_TYPE,
    config,
    layers: [layer],
    subject: { mediaType: o.subject.mediaType, digest: o.subject.digest, size: o.subject.size },
  };
  const digest = sha256(Buffer.from(JSON.stringify(body)));
  const manifest = await pushManifest(target, o.repository, digest, body);
  return { manifest, payload, tag: null };
}
