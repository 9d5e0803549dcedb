/**
 * An image's SBOM as an SPDX 2.3 JSON document (https://spdx.github.io/spdx-spec/v2.3/): one package for the
 * image, one for its operating system when known, one per installed package, tied together by relationships
 * (the document DESCRIBES the image, the image CONTAINS the rest). Pure: the same arguments give the same document.
 */
import type { Inventory } from '../inventory/inventory.ts';
import type { Package } from '../inventory/types.ts';
import { createHash } from 'node:crypto';
import { isTag, ociPurl, osVersion, sbomFingerprint, uuidV5, type SbomSubject } from './subject.ts';

/** The media type of an SPDX JSON document, also the artifact type of an SBOM attached as an OCI referrer. */
export const SPDX_JSON_MEDIA_TYPE = 'application/spdx+json';

/** Options of {@link spdxDocument}. */
export interface SpdxOptions {
  /** The document's creation time (`creationInfo.created`, whole seconds in UTC). */
  readonly created: Date;
  /** Berth's version, for the creator `Tool: berth-<version>`. */
  readonly toolVersion: string;
  /** An absolute http(s) URI the document namespace is made under, e.g. `https://registry.example/spdx`. */
  readonly namespaceBase: string;
}

/** A reference from a package to an outside identifier (here: its purl). */
export interface SpdxExternalRef {
  readonly referenceCategory: 'PACKAGE-MANAGER';
  readonly referenceType: 'purl';
  readonly referenceLocator: string;
}

/** An SPDX 2.3 package, as written by Berth. */
export interface SpdxPackage {
  readonly SPDXID: string;
  readonly name: string;
  readonly versionInfo?: string;
  readonly downloadLocation: 'NOASSERTION';
  readonly filesAnalyzed: false;
  readonly licenseConcluded: 'NOASSERTION';
  readonly licenseDeclared: 'NOASSERTION';
  readonly copyrightText: 'NOASSERTION';
  readonly primaryPackagePurpose?: 'CONTAINER' | 'OPERATING-SYSTEM';
  readonly checksums?: readonly { readonly algorithm: 'SHA256' | 'SHA512'; readonly checksumValue: string }[];
  readonly sourceInfo?: string;
  readonly comment?: string;
  readonly externalRefs?: readonly SpdxExternalRef[];
}

/** An SPDX 2.3 relationship. */
export interface SpdxRelationship {
  readonly spdxElementId: string;
  readonly relationshipType: 'DESCRIBES' | 'CONTAINS';
  readonly relatedSpdxElement: string;
}

/** An SPDX 2.3 JSON document, as written by Berth. */
export interface SpdxDocument {
  readonly spdxVersion: 'SPDX-2.3';
  readonly dataLicense: 'CC0-1.0';
  readonly SPDXID: 'SPDXRef-DOCUMENT';
  readonly name: string;
  readonly documentNamespace: string;
  readonly creationInfo: { readonly created: string; readonly creators: readonly string[] };
  readonly packages: readonly SpdxPackage[];
  readonly relationships: readonly SpdxRelationship[];
}

/** The image package's SPDXID. */
export const SPDX_IMAGE_ID = 'SPDXRef-Image';
/** The operating system package's SPDXID. */
export const SPDX_OS_ID = 'SPDXRef-OperatingSystem';

/** Replaces every character SPDXIDs do not allow (anything but letters, digits, `.` and `-`) with `-`. */
export function sanitizeSpdxId(text: string): string {
  return text.replace(/[^A-Za-z0-9.-]/g, '-');
}

/**
 * A package's SPDXID: readable (ecosystem, name, version) and unique, since sanitising can map two names to one
 * (`a_b` and `a+b` both become `a-b`): a short hash of the purl tells them apart.
 */
function packageId(pkg: Package): string {
  const hash = createHash('sha256').update(pkg.purl).digest('hex').slice(0, 12);
  return `SPDXRef-Package-${sanitizeSpdxId(`${pkg.ecosystem}-${pkg.name}-${pkg.version}`)}-${hash}`;
}

/** SPDX timestamps are `YYYY-MM-DDThh:mm:ssZ`, without fractions of a second. */
function spdxTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function purlRef(locator: string): SpdxExternalRef {
  return { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: locator };
}

const NO_ASSERTIONS = {
  downloadLocation: 'NOASSERTION',
  filesAnalyzed: false,
  licenseConcluded: 'NOASSERTION',
  licenseDeclared: 'NOASSERTION',
  copyrightText: 'NOASSERTION',
} as const;

function installedPackage(pkg: Package, id: string): SpdxPackage {
  const source =
    pkg.sourceName !== undefined &&
    (pkg.sourceName !== pkg.name || (pkg.sourceVersion !== undefined && pkg.sourceVersion !== pkg.version))
      ? `built package from: ${pkg.sourceName}${pkg.sourceVersion ? ` ${pkg.sourceVersion}` : ''}`
      : undefined;
  return {
    SPDXID: id,
    name: pkg.name,
    versionInfo: pkg.version,
    ...NO_ASSERTIONS,
    ...(source ? { sourceInfo: source } : {}),
    ...(pkg.locations.length > 0 ? { comment: `found in: ${pkg.locations.join(', ')}` } : {}),
    externalRefs: [purlRef(pkg.purl)],
  };
}

/**
 * The SPDX 2.3 document of the image `subject` with `inventory`. The document namespace is
 * `<namespaceBase>/<repository>/<algorithm>-<hex>-<uuid>`, the UUID derived from the image, inventory and tool
 * version: deterministic, and different whenever the content is. Throws a RangeError when `namespaceBase` is not
 * an absolute http(s) URI or `created` is not a valid date; never on the inventory's content.
 */
export function spdxDocument(subject: SbomSubject, inventory: Inventory, options: SpdxOptions): SpdxDocument {
  let base: URL;
  try {
    base = new URL(options.namespaceBase);
  } catch {
    throw new RangeError(`namespaceBase is not an absolute URI: ${options.namespaceBase}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new RangeError(`namespaceBase must be http(s): ${options.namespaceBase}`);
  if (Number.isNaN(options.created.getTime())) throw new RangeError('created is not a valid date');

  const uuid = uuidV5(`spdx:${sbomFingerprint(subject, inventory, options.toolVersion).toString('hex')}`);
  const repositoryPath = subject.repository.split('/').map(encodeURIComponent).join('/');
  const namespace = `${options.namespaceBase.replace(/\/+$/, '')}/${repositoryPath}/${sanitizeSpdxId(subject.digest)}-${uuid}`;

  const [algorithm, hex] = subject.digest.split(':', 2);
  const checksumAlgorithm = algorithm === 'sha256' ? 'SHA256' : algorithm === 'sha512' ? 'SHA512' : null;
  const image: SpdxPackage = {
    SPDXID: SPDX_IMAGE_ID,
    name: subject.repository,
    versionInfo: subject.digest,
    ...NO_ASSERTIONS,
    primaryPackagePurpose: 'CONTAINER',
    ...(checksumAlgorithm && hex
      ? { checksums: [{ algorithm: checksumAlgorithm, checksumValue: hex }] }
      : {}),
    externalRefs: [purlRef(ociPurl(subject))],
  };
  const packages: SpdxPackage[] = [image];
  const relationships: SpdxRelationship[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: SPDX_IMAGE_ID },
  ];
  if (inventory.os) {
    const version = osVersion(inventory.os);
    packages.push({
      SPDXID: SPDX_OS_ID,
      name: inventory.os.id,
      ...(version ? { versionInfo: version } : {}),
      ...NO_ASSERTIONS,
      primaryPackagePurpose: 'OPERATING-SYSTEM',
    });
    relationships.push({
      spdxElementId: SPDX_IMAGE_ID,
      relationshipType: 'CONTAINS',
      relatedSpdxElement: SPDX_OS_ID,
    });
  }
  const seen = new Set<string>();
  for (const pkg of inventory.packages) {
    let id = packageId(pkg);
    // An inventory not deduplicated by purl can repeat one; SPDXIDs must stay unique regardless.
    for (let n = 2; seen.has(id); n++) id = `${packageId(pkg)}-${n}`;
    seen.add(id);
    packages.push(installedPackage(pkg, id));
    relationships.push({
      spdxElementId: SPDX_IMAGE_ID,
      relationshipType: 'CONTAINS',
      relatedSpdxElement: id,
    });
  }
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: isTag(subject.reference)
      ? `${subject.repository}:${subject.reference}@${subject.digest}`
      : `${subject.repository}@${subject.digest}`,
    documentNamespace: namespace,
    creationInfo: { created: spdxTime(options.created), creators: [`Tool: berth-${options.toolVersion}`] },
    packages,
    relationships,
  };
}
