/**
 * SBOM documents of a scanned image, as the API serves them and as they are attached to the image as OCI 1.1
 * referrers: an image manifest with the empty config, one layer holding the document, `artifactType` the
 * document's media type and `subject` the image.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ManifestRecord } from '../../metadata/store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Registry } from '../../registry/registry.ts';
import type { ScanReport } from '../report.ts';
import { CYCLONEDX_JSON_MEDIA_TYPE, cycloneDxDocument } from './cyclonedx.ts';
import { SPDX_JSON_MEDIA_TYPE, spdxDocument } from './spdx.ts';

/** The SBOM formats served and attached. */
export type SbomFormat = 'spdx' | 'cyclonedx';

export const SBOM_MEDIA_TYPES: Record<SbomFormat, string> = {
  spdx: SPDX_JSON_MEDIA_TYPE,
  cyclonedx: CYCLONEDX_JSON_MEDIA_TYPE,
};

/** What every SBOM of a registry says about its maker. */
export interface SbomSettings {
  /** Berth's version (the documents' tool). */
  readonly toolVersion: string;
  /** Base of SPDX document namespaces: the registry's public URL, or a fixed placeholder. */
  readonly namespaceBase: string;
}

/** The SBOM of `report` (an image's inventory) in `format`, created at the report's scan time. */
export function sbomOf(
  format: SbomFormat,
  subject: { repository: string; digest: Digest; reference?: string },
  report: ScanReport,
  created: Date,
  settings: SbomSettings,
): object {
  const inventory = { os: report.os, packages: [...report.packages] };
  return format === 'spdx'
    ? spdxDocument(subject, inventory, {
        created,
        toolVersion: settings.toolVersion,
        namespaceBase: settings.namespaceBase,
      })
    : cycloneDxDocument(subject, inventory, { created, toolVersion: settings.toolVersion });
}

const EMPTY_CONFIG = Buffer.from('{}');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function sha256(bytes: Buffer): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
}

/** Uploads `bytes` as a blob of `repository` through an upload session (quotas and events as for a push). */
async function uploadBlob(registry: Registry, repository: string, bytes: Buffer): Promise<Digest> {
  const digest = sha256(bytes);
  const session = await registry.uploads.start(repository, null);
  await registry.uploads.complete(repository, session.id, null, digest, {
    stream: Readable.from([bytes]),
    length: bytes.length,
  });
  return digest;
}

/**
 * Pushes the SPDX and CycloneDX SBOMs of `report` into the image's repository as referrers of `manifest`
 * (replacing nothing: a document's digest is its content, so attaching the same SBOM again is a no-op).
 */
export async function attachSboms(
  registry: Registry,
  manifest: ManifestRecord,
  report: ScanReport,
  created: Date,
  settings: SbomSettings,
): Promise<Digest[]> {
  await uploadBlob(registry, manifest.repository, EMPTY_CONFIG);
  const out: Digest[] = [];
  for (const format of ['spdx', 'cyclonedx'] as const) {
    const document = Buffer.from(
      JSON.stringify(
        sbomOf(
          format,
          { repository: manifest.repository, digest: manifest.digest },
          report,
          created,
          settings,
        ),
      ),
    );
    const layer = await uploadBlob(registry, manifest.repository, document);
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: SBOM_MEDIA_TYPES[format],
        config: {
          mediaType: 'application/vnd.oci.empty.v1+json',
          digest: sha256(EMPTY_CONFIG),
          size: EMPTY_CONFIG.length,
        },
        layers: [{ mediaType: SBOM_MEDIA_TYPES[format], digest: layer, size: document.length }],
        subject: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size },
        annotations: {
          'org.opencontainers.image.created': created.toISOString(),
          'dev.berth.sbom.generator': `berth ${settings.toolVersion}`,
        },
      }),
    );
    const digest = sha256(body);
    await registry.manifests.put({
      repository: manifest.repository,
      reference: { kind: 'digest', digest },
      body,
      contentType: OCI_MANIFEST,
    });
    out.push(digest);
  }
  return out;
}
