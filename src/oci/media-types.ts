/** Media types of the OCI image-spec and Docker's image manifest v2 that the registry understands. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciNondistributableLayer: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciNondistributableLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciNondistributableLayerZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
} as const;

/** Manifest media types accepted on push. */
export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
]);

/** Index-like media types (their `manifests` are child manifests). */
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  MediaType.OciIndex,
  MediaType.DockerManifestList,
]);

/** The media type grammar of RFC 6838 (type/subtype, no parameters). */
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** True when `s` is a syntactically valid media type. */
export function isValidMediaType(s: unknown): s is string {
  return typeof s === 'string' && MEDIA_TYPE_RE.test(s);
}

/** Strips parameters (`; charset=utf-8`) and whitespace from a Content-Type header value. */
export function baseMediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const base = contentType.split(';')[0]?.trim().toLowerCase();
  return base === '' ? undefined : base;
}
