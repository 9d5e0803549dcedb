/**
 * Manifest parsing and validation (OCI image manifest and index, Docker schema2 manifest and manifest list).
 * Works on the exact bytes a client pushed; the digest is computed by the caller over those same bytes.
 * Returns what the registry must check and index: required blobs, required child manifests, subject,
 * artifactType for the referrers API, annotations.
 */
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../util/json-depth.ts';
import { type Digest, isDigest } from './digest.ts';
import { ManifestInvalidError } from './errors.ts';
import { INDEX_MEDIA_TYPES, isValidMediaType, MANIFEST_MEDIA_TYPES, MediaType } from './media-types.ts';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly annotations?: Record<string, string>;
  readonly artifactType?: string;
}

export interface ParsedManifest {
  /** The manifest's media type: the body's `mediaType`, else the request's Content-Type, else inferred. */
  readonly mediaType: string;
  readonly isIndex: boolean;
  readonly subject: Digest | null;
  /** For the referrers API: `artifactType`, else the config's media type (image manifests), else null. */
  readonly artifactType: string | null;
  readonly annotations: Record<string, string> | null;
  /** Blobs that must be present in the repository: config and every layer that is not foreign (`urls`). */
  readonly blobs: readonly Digest[];
  /** Child manifests that must be present in the repository (indexes). */
  readonly manifests: readonly Digest[];
}

const SCHEMA1_TYPES = new Set<string>([MediaType.DockerSchema1, MediaType.DockerSchema1Signed]);
/** Content-Types that say nothing about the manifest kind; the body decides. */
const GENERIC_CONTENT_TYPES = new Set(['application/json', 'application/octet-stream', 'text/plain']);

/**
 * Parses and validates manifest bytes pushed with `contentType` (already stripped of parameters).
 * Throws ManifestInvalidError with a message naming the first problem found; JSON nested deeper than
 * MAX_JSON_DEPTH is one.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  if (contentType !== undefined && SCHEMA1_TYPES.has(contentType)) {
    throw new ManifestInvalidError('schema1 manifests are not supported; push a schema2 or OCI manifest');
  }
  // Checked before parsing: cheap (one pass over the bytes), and nothing deeply nested reaches the parser's users.
  if (jsonNestingExceeds(bytes)) {
    throw new ManifestInvalidError(`manifest nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw new ManifestInvalidError('manifest is not valid JSON');
  }
  if (!isObject(body)) throw new ManifestInvalidError('manifest must be a JSON object');
  if (body.schemaVersion === 1) {
    throw new ManifestInvalidError('schema1 manifests are not supported; push a schema2 or OCI manifest');
  }
  if (body.schemaVersion !== 2) throw new ManifestInvalidError('manifest schemaVersion must be 2');

  const mediaType = resolveMediaType(body, contentType);
  const isIndex = INDEX_MEDIA_TYPES.has(mediaType);
  const annotations = optionalAnnotations(body.annotations, 'annotations');
  const subject = body.subject === undefined ? null : descriptor(body.subject, 'subject').digest;
  let artifactType: string | null = null;
  if (body.artifactType !== undefined) {
    if (!isValidMediaType(body.artifactType))
      throw new ManifestInvalidError('artifactType is not a valid media type');
    artifactType = body.artifactType;
  }

  if (isIndex) {
    if (!Array.isArray(body.manifests)) throw new ManifestInvalidError('index must have a manifests array');
    const children = body.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
    if (mediaType === MediaType.DockerManifestList) {
      for (const [i, c] of children.entries()) {
        if (!MANIFEST_MEDIA_TYPES.has(c.mediaType)) {
          throw new ManifestInvalidError(`manifests[${i}] has an unsupported media type ${c.mediaType}`);
        }
      }
    }
    // Children are manifests when their media type says so; an index may also list plain blobs (e.g. artifacts
    // in an OCI index); those must be present as blobs.
    const manifests: Digest[] = [];
    const blobs: Digest[] = [];
    for (const c of children) (MANIFEST_MEDIA_TYPES.has(c.mediaType) ? manifests : blobs).push(c.digest);
    return {
      mediaType,
      isIndex,
      subject,
      artifactType,
      annotations,
      blobs: unique(blobs),
      manifests: unique(manifests),
    };
  }

  const config = descriptor(body.config, 'config');
  if (!Array.isArray(body.layers)) throw new ManifestInvalidError('manifest must have a layers array');
  const layers = body.layers.map((l, i) => descriptor(l, `layers[${i}]`));
  if (mediaType === MediaType.DockerManifest && layers.length === 0) {
    throw new ManifestInvalidError('a docker schema2 manifest must have at least one layer');
  }
  const blobs: Digest[] = [config.digest];
  for (const layer of layers) {
    // Foreign (non-distributable) layers live at their URLs, not in the registry.
    if (layer.urls !== undefined && layer.urls.length > 0) continue;
    blobs.push(layer.digest);
  }
  return {
    mediaType,
    isIndex,
    subject,
    artifactType: artifactType ?? config.mediaType,
    annotations,
    blobs: unique(blobs),
    manifests: [],
  };
}

function resolveMediaType(body: Record<string, unknown>, contentType: string | undefined): string {
  const declared = body.mediaType;
  if (declared !== undefined && typeof declared !== 'string')
    throw new ManifestInvalidError('mediaType must be a string');
  const header =
    contentType !== undefined && !GENERIC_CONTENT_TYPES.has(contentType) ? contentType : undefined;
  if (declared !== undefined && header !== undefined && declared !== header) {
    throw new ManifestInvalidError(
      `Content-Type ${header} does not match the manifest's mediaType ${declared}`,
    );
  }
  const mediaType =
    declared ?? header ?? (Array.isArray(body.manifests) ? MediaType.OciIndex : MediaType.OciManifest);
  if (SCHEMA1_TYPES.has(mediaType)) {
    throw new ManifestInvalidError('schema1 manifests are not supported; push a schema2 or OCI manifest');
  }
  if (!MANIFEST_MEDIA_TYPES.has(mediaType))
    throw new ManifestInvalidError(`unsupported manifest media type ${mediaType}`);
  // Docker types must declare themselves in the body; OCI types may omit mediaType.
  if (
    declared === undefined &&
    (mediaType === MediaType.DockerManifest || mediaType === MediaType.DockerManifestList)
  ) {
    throw new ManifestInvalidError(`a ${mediaType} must carry its mediaType`);
  }
  const looksLikeIndex = Array.isArray(body.manifests);
  if (looksLikeIndex !== INDEX_MEDIA_TYPES.has(mediaType)) {
    throw new ManifestInvalidError(`manifest body does not match its media type ${mediaType}`);
  }
  return mediaType;
}

/** Validates a descriptor; throws naming `where`. */
export function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new ManifestInvalidError(`${where} must be a descriptor object`);
  const { mediaType, digest, size, urls } = value;
  if (!isValidMediaType(mediaType))
    throw new ManifestInvalidError(`${where}.mediaType is missing or invalid`);
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new ManifestInvalidError(`${where}.digest is missing, invalid or of an unsupported algorithm`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestInvalidError(`${where}.size must be a non-negative integer`);
  }
  let checkedUrls: string[] | undefined;
  if (urls !== undefined) {
    if (!Array.isArray(urls) || !urls.every(isHttpUrl))
      throw new ManifestInvalidError(`${where}.urls must be http(s) URLs`);
    checkedUrls = urls as string[];
  }
  const annotations = optionalAnnotations(value.annotations, `${where}.annotations`);
  if (value.artifactType !== undefined && !isValidMediaType(value.artifactType)) {
    throw new ManifestInvalidError(`${where}.artifactType is not a valid media type`);
  }
  return {
    mediaType,
    digest,
    size,
    ...(checkedUrls ? { urls: checkedUrls } : {}),
    ...(annotations ? { annotations } : {}),
    ...(typeof value.artifactType === 'string' ? { artifactType: value.artifactType } : {}),
  };
}

function optionalAnnotations(value: unknown, where: string): Record<string, string> | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new ManifestInvalidError(`${where} must be an object of strings`);
  }
  return value as Record<string, string>;
}

function isHttpUrl(u: unknown): boolean {
  if (typeof u !== 'string') return false;
  try {
    const p = new URL(u).protocol;
    return p === 'http:' || p === 'https:';
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
