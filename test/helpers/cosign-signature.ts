/**
 * cosign's classic key-based signatures, made as cosign makes them (`cosign sign --key`): a simple-signing payload
 * naming the image's digest, signed with ECDSA P-256 / SHA-256 (DER, base64) into the layer annotation
 * `dev.cosignproject.cosign/signature`, in an OCI image manifest whose config is the image config cosign writes.
 * `sigManifest` builds the manifest for cosign's tag scheme (`sha256-<hex>.sig`) or, with `subject`, as an OCI 1.1
 * referrer with artifactType `application/vnd.dev.cosign.artifact.sig.v1+json`.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface SigningKey {
  readonly privateKey: KeyObject;
  /** SPKI PEM, what `cosign.pub` holds. */
  readonly publicKeyPem: string;
}

export interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly bytes: Buffer;
}

export function blobOf(bytes: Buffer): Blob {
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length, bytes };
}

/** A new ECDSA P-256 key pair, as `cosign generate-key-pair` makes. */
export function newSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** The simple-signing payload cosign signs for `reference` (`host/repo`) at `digest`. */
export function simpleSigningPayload(reference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** One signature layer: the payload blob and its descriptor with the signature annotation. */
export function signatureLayer(key: SigningKey, payload: Buffer): { blob: Blob; descriptor: object } {
  const blob = blobOf(payload);
  const signature = sign('sha256', payload, key.privateKey).toString('base64');
  return {
    blob,
    descriptor: {
      mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
      digest: blob.digest,
      size: blob.size,
      annotations: { 'dev.cosignproject.cosign/signature': signature },
    },
  };
}

/**
 * The signature manifest holding `layers` (cosign appends one layer per signature), its config blob, and its
 * bytes; with `subject`, an OCI 1.1 referrer of that manifest.
 */
export function sigManifest(
  layers: readonly { blob: Blob; descriptor: object }[],
  subject?: { mediaType: string; digest: string; size: number },
): { config: Blob; manifest: Blob } {
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: '',
        created: '0001-01-01T00:00:00Z',
        history: [{ created: '0001-01-01T00:00:00Z' }],
        os: '',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.blob.digest) },
        config: {},
      }),
    ),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...(subject ? { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' } : {}),
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((l) => l.descriptor),
    ...(subject ? { subject } : {}),
  };
  return { config, manifest: blobOf(Buffer.from(JSON.stringify(manifest))) };
}

/** The cosign tag-scheme tag of `digest`. */
export function sigTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}
