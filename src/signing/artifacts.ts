/**
 * Recognising supply-chain artifacts among manifests: signatures (cosign, sigstore bundles, Notation),
 * attestations (in-toto) and SBOMs, in every shape clients push them today, and what each one is about.
 *
 * Two discovery paths exist:
 * - OCI 1.1 referrers: the manifest's `subject` names the signed manifest, and its `artifactType` (or its config's
 *   media type, for clients that predate `artifactType`) says what it is;
 * - cosign's tag scheme, for registries without the referrers API: the tag `sha256-<hex>.sig` (`.att`, `.sbom`)
 *   in the signed manifest's repository, holding an ordinary image manifest whose layers say what it is.
 */
import { isDigest, type Digest } from '../oci/digest.ts';
import { INDEX_MEDIA_TYPES, MediaType } from '../oci/media-types.ts';

export const ArtifactType = {
  /** cosign's classic signature, as an OCI 1.1 referrer. */
  CosignSignature: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  /** The layer media type of cosign's classic signatures (a simple-signing payload). */
  CosignSimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  /** A sigstore bundle (cosign 3 and `sigstore` clients). */
  SigstoreBundle: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  /** A Notation signature (artifactType, or config media type for older clients). */
  NotarySignature: 'application/vnd.cncf.notary.signature',
  /** An in-toto attestation in a DSSE envelope (cosign `attest`). */
  DsseEnvelope: 'application/vnd.dsse.envelope.v1+json',
  InTotoStatement: 'application/vnd.in-toto+json',
} as const;

/** Artifact types of SBOM documents pushed as referrers or attached by cosign. */
const SBOM_TYPES = new Set([
  'application/spdx+json',
  'application/vnd.spdx+json',
  'text/spdx',
  'text/spdx+json',
  'application/vnd.cyclonedx+json',
  'application/vnd.cyclonedx+xml',
  'application/vnd.cyclonedx',
  'application/vnd.syft+json',
]);

/** Layer media types that container runtimes unpack as filesystem layers. */
const CONTAINER_LAYER_RE =
  /^application\/vnd\.(oci\.image\.layer(\.nondistributable)?\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.(foreign\.)?diff\.tar\.gzip)$/;

/** Media types of sigstore bundles, whatever their version. */
const SIGSTORE_BUNDLE_RE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.[1-9])?\+json(;.*)?$/;

/**
 * What a manifest is, for signing purposes:
 * - `signature`: a signature of `subject`, made with `format`;
 * - `attestation` / `sbom`: about `subject`, kept for later use (never verified, never enforced);
 * - `image`: a container image manifest or index, the kind enforcement applies to;
 * - `other`: any other artifact (Helm charts, WASM modules, ...), not enforced.
 */
export type ArtifactClass =
  | {
      readonly kind: 'signature';
      readonly format: 'cosign' | 'sigstore-bundle' | 'notation';
      /** The signed manifest's digest, or null when neither the subject nor the tag names it. */
      readonly subject: Digest | null;
    }
  | { readonly kind: 'attestation' | 'sbom'; readonly subject: Digest | null }
  | { readonly kind: 'image'; readonly isIndex: boolean }
  | { readonly kind: 'other' };

/** The parts of a manifest the classification reads (a parsed body, not validated beyond its shape). */
interface ManifestShape {
  readonly mediaType?: unknown;
  readonly artifactType?: unknown;
  readonly config?: { readonly mediaType?: unknown };
  readonly layers?: readonly { readonly mediaType?: unknown }[];
  readonly manifests?: readonly unknown[];
  readonly subject?: { readonly digest?: unknown };
}

/**
 * The subject named by a cosign tag-scheme tag (`sha256-<hex>.sig|.att|.sbom`) and the kind of artifact it holds;
 * null for any other tag.
 */
export function cosignTagSubject(
  tag: string,
): { readonly subject: Digest; readonly kind: 'signature' | 'attestation' | 'sbom' } | null {
  const m = /^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.(sig|att|sbom)$/.exec(tag);
  if (!m) return null;
  const digest = `${m[1]}:${m[2]}`;
  if (!isDigest(digest)) return null;
  const kind = m[3] === 'sig' ? 'signature' : m[3] === 'att' ? 'attestation' : 'sbom';
  return { subject: digest, kind };
}

/**
 * Classifies a manifest from its exact bytes and media type, and the tags that point at it (for cosign's tag
 * scheme). Never throws: bytes that do not parse are `other`.
 */
export function classifyManifest(
  payload: Buffer,
  mediaType: string,
  tags: readonly string[] = [],
): ArtifactClass {
  let body: ManifestShape;
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'other' };
    body = parsed as ManifestShape;
  } catch {
    return { kind: 'other' };
  }
  const fromTag = tags.map(cosignTagSubject).find((t) => t !== null) ?? null;
  const subjectField = typeof body.subject?.digest === 'string' ? body.subject.digest : null;
  const subject = subjectField !== null && isDigest(subjectField) ? subjectField : (fromTag?.subject ?? null);

  const artifactType = typeof body.artifactType === 'string' ? body.artifactType : null;
  const configType = typeof body.config?.mediaType === 'string' ? body.config.mediaType : null;
  const layerTypes = (Array.isArray(body.layers) ? body.layers : [])
    .map((l) => (typeof l?.mediaType === 'string' ? l.mediaType : ''))
    .filter((t) => t !== '');
  const declared = [artifactType, configType].filter((t): t is string => t !== null);
  const imageConfig =
    configType === MediaType.OciConfig || configType === 'application/vnd.docker.container.image.v1+json';

  // A manifest with a filesystem layer is an image whatever else it says: docker, podman and containerd ignore
  // `artifactType` and `subject`, and unpack such layers whatever the config's media type, so honouring the
  // declarations would let an unsigned image through enforcement by calling itself a signature, naming a subject
  // or declaring an odd config. Signatures, attestations and SBOMs carry layers of their own media types only.
  if (layerTypes.some((t) => CONTAINER_LAYER_RE.test(t))) return { kind: 'image', isIndex: false };

  if (declared.includes(ArtifactType.NotarySignature))
    return { kind: 'signature', format: 'notation', subject };
  if (
    declared.some((t) => SIGSTORE_BUNDLE_RE.test(t)) ||
    layerTypes.some((t) => SIGSTORE_BUNDLE_RE.test(t))
  ) {
    // A bundle may hold a DSSE attestation rather than a signature: cosign 3 marks attestations by artifactType
    // only when they are not image signatures, and the verifier tells which; both are signatures to verify here.
    return { kind: 'signature', format: 'sigstore-bundle', subject };
  }
  if (
    declared.includes(ArtifactType.CosignSignature) ||
    layerTypes.includes(ArtifactType.CosignSimpleSigning) ||
    fromTag?.kind === 'signature'
  ) {
    return { kind: 'signature', format: 'cosign', subject };
  }
  if (
    declared.some((t) => t === ArtifactType.DsseEnvelope || t.startsWith('application/vnd.in-toto')) ||
    layerTypes.includes(ArtifactType.DsseEnvelope) ||
    fromTag?.kind === 'attestation'
  ) {
    return { kind: 'attestation', subject };
  }
  if (
    declared.some((t) => SBOM_TYPES.has(t)) ||
    layerTypes.some((t) => SBOM_TYPES.has(t)) ||
    fromTag?.kind === 'sbom'
  ) {
    return { kind: 'sbom', subject };
  }

  const type = typeof body.mediaType === 'string' ? body.mediaType : mediaType;
  if (INDEX_MEDIA_TYPES.has(type) || INDEX_MEDIA_TYPES.has(mediaType)) {
    // An index with an artifactType is an artifact index, not a multi-platform image.
    return artifactType === null ? { kind: 'image', isIndex: true } : { kind: 'other' };
  }
  // An image config makes it an image too, whatever it declares (see above).
  if (imageConfig) return { kind: 'image', isIndex: false };
  return { kind: 'other' };
}

/** True for the supply-chain artifacts themselves (signatures, attestations, SBOMs), which enforcement lets pass. */
export function isSupplyChainArtifact(c: ArtifactClass): boolean {
  return c.kind === 'signature' || c.kind === 'attestation' || c.kind === 'sbom';
}

/** The child manifest digests of an index's bytes (empty for anything else). */
export function indexChildren(payload: Buffer): Digest[] {
  try {
    const body = JSON.parse(payload.toString('utf8')) as ManifestShape;
    if (!Array.isArray(body.manifests)) return [];
    const out: Digest[] = [];
    for (const m of body.manifests) {
      const digest = (m as { digest?: unknown } | null)?.digest;
      if (typeof digest === 'string' && isDigest(digest)) out.push(digest);
    }
    return out;
  } catch {
    return [];
  }
}
