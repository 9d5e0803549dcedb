/**
 * What the SBOM writers share: the image an SBOM describes, its package URL, and the deterministic identifiers
 * (SPDX document namespace, CycloneDX serial number) derived from the image and its inventory.
 */
import { createHash } from 'node:crypto';
import type { Inventory } from '../inventory/inventory.ts';
import { purl } from '../inventory/purl.ts';

/** The image an SBOM describes. */
export interface SbomSubject {
  /** Repository name in the registry, e.g. `library/debian`. */
  readonly repository: string;
  /** The manifest digest, e.g. `sha256:…`. */
  readonly digest: string;
  /** The tag the image was asked for by, when there was one. */
  readonly reference?: string;
  /** The registry's `host[:port]`, for the purl's `repository_url`; the bare repository when absent. */
  readonly registry?: string;
}

/** True when `reference` is a tag (a digest reference has a `:`). */
export function isTag(reference: string | undefined): reference is string {
  return reference !== undefined && reference !== '' && !reference.includes(':');
}

/**
 * The image's package URL per the purl `oci` type: the repository's last segment (lowercased) as name, the
 * digest as version, `repository_url` and (for a tag) `tag` as qualifiers.
 */
export function ociPurl(subject: SbomSubject): string {
  const segments = subject.repository.split('/');
  const name = (segments[segments.length - 1] ?? subject.repository).toLowerCase();
  const repositoryUrl = subject.registry ? `${subject.registry}/${subject.repository}` : subject.repository;
  const tag = isTag(subject.reference) ? subject.reference : null;
  return purl('oci', null, name, subject.digest, { repository_url: repositoryUrl, tag });
}

/**
 * A SHA-256 over everything an SBOM says except its creation time: the same image, inventory and tool version
 * always give the same fingerprint, and a different inventory of the same image (a newer scanner found more)
 * gives another, so the identifiers derived from it stay unique per document content.
 */
export function sbomFingerprint(subject: SbomSubject, inventory: Inventory, toolVersion: string): Buffer {
  const canonical = JSON.stringify([
    subject.repository,
    subject.digest,
    subject.reference ?? null,
    subject.registry ?? null,
    toolVersion,
    inventory.os,
    inventory.packages.map((pkg) => [
      pkg.purl,
      pkg.sourceName ?? null,
      pkg.sourceVersion ?? null,
      pkg.locations,
    ]),
  ]);
  return createHash('sha256').update(canonical).digest();
}

// The URL namespace of RFC 9562 appendix A.
const URL_NAMESPACE = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');

/** A name-based UUID, version 5 (SHA-1, in the URL namespace): the same `name` always gives the same UUID. */
export function uuidV5(name: string): string {
  const bytes = createHash('sha1').update(URL_NAMESPACE).update(name, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The version of the OS as a package version: `VERSION_ID`, else the codename, else null. */
export function osVersion(os: Inventory['os']): string | null {
  return os ? (os.versionId ?? os.versionCodename) : null;
}
