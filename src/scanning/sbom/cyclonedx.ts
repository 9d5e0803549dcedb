/**
 * An image's SBOM as a CycloneDX 1.6 JSON document (https://cyclonedx.org/docs/1.6/json/): the image as the
 * metadata component, its operating system (when known) and installed packages as components, and one dependency
 * entry saying the image holds them all. Pure: the same arguments give the same document.
 */
import type { Inventory } from '../inventory/inventory.ts';
import { ociPurl, osVersion, sbomFingerprint, uuidV5, type SbomSubject } from './subject.ts';

/** The media type of a CycloneDX JSON document, also the artifact type of an SBOM attached as an OCI referrer. */
export const CYCLONEDX_JSON_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

/** Options of {@link cycloneDxDocument}. */
export interface CycloneDxOptions {
  /** The document's creation time (`metadata.timestamp`). */
  readonly created: Date;
  /** Berth's version, for the tool component. */
  readonly toolVersion: string;
}

/** A name/value pair CycloneDX carries for what its schema has no field for. */
export interface CycloneDxProperty {
  readonly name: string;
  readonly value: string;
}

/** A CycloneDX component, as written by Berth. */
export interface CycloneDxComponent {
  readonly type: 'application' | 'container' | 'library' | 'operating-system';
  readonly 'bom-ref'?: string;
  readonly name: string;
  readonly version?: string;
  readonly purl?: string;
  readonly properties?: readonly CycloneDxProperty[];
}

/** A CycloneDX 1.6 JSON document, as written by Berth. */
export interface CycloneDxDocument {
  readonly bomFormat: 'CycloneDX';
  readonly specVersion: '1.6';
  readonly serialNumber: string;
  readonly version: 1;
  readonly metadata: {
    readonly timestamp: string;
    readonly tools: { readonly components: readonly CycloneDxComponent[] };
    readonly component: CycloneDxComponent;
  };
  readonly components: readonly CycloneDxComponent[];
  readonly dependencies: readonly { readonly ref: string; readonly dependsOn: readonly string[] }[];
}

/** The image component's bom-ref. */
export const CYCLONEDX_IMAGE_REF = 'image';

/**
 * Property names, in Berth's own namespace (CycloneDX's property taxonomy lets each tool have one): the paths a
 * package was found in (one property per path) and the source package it was built from.
 */
export const CYCLONEDX_PROPERTIES = {
  location: 'berth:package:location',
  sourceName: 'berth:package:source-name',
  sourceVersion: 'berth:package:source-version',
  ecosystem: 'berth:package:ecosystem',
} as const;

/**
 * The CycloneDX 1.6 document of the image `subject` with `inventory`. The serial number is a version 5 UUID
 * derived from the image, inventory and tool version: deterministic, and different whenever the content is.
 * Throws a RangeError when `created` is not a valid date; never on the inventory's content.
 */
export function cycloneDxDocument(
  subject: SbomSubject,
  inventory: Inventory,
  options: CycloneDxOptions,
): CycloneDxDocument {
  if (Number.isNaN(options.created.getTime())) throw new RangeError('created is not a valid date');
  const serial = uuidV5(
    `cyclonedx:${sbomFingerprint(subject, inventory, options.toolVersion).toString('hex')}`,
  );
  const components: CycloneDxComponent[] = [];
  const refs = new Set<string>([CYCLONEDX_IMAGE_REF]);
  const unique = (ref: string): string => {
    // bom-refs must be unique in a document; an inventory not deduplicated by purl could repeat one.
    let out = ref;
    for (let n = 2; refs.has(out); n++) out = `${ref}#${n}`;
    refs.add(out);
    return out;
  };
  if (inventory.os) {
    const version = osVersion(inventory.os);
    components.push({
      type: 'operating-system',
      'bom-ref': unique(`os:${inventory.os.id}${version ? `@${version}` : ''}`),
      name: inventory.os.id,
      ...(version ? { version } : {}),
    });
  }
  for (const pkg of inventory.packages) {
    const properties: CycloneDxProperty[] = [{ name: CYCLONEDX_PROPERTIES.ecosystem, value: pkg.ecosystem }];
    if (pkg.sourceName !== undefined)
      properties.push({ name: CYCLONEDX_PROPERTIES.sourceName, value: pkg.sourceName });
    if (pkg.sourceVersion !== undefined)
      properties.push({ name: CYCLONEDX_PROPERTIES.sourceVersion, value: pkg.sourceVersion });
    for (const location of pkg.locations)
      properties.push({ name: CYCLONEDX_PROPERTIES.location, value: location });
    components.push({
      type: 'library',
      'bom-ref': unique(pkg.purl),
      name: pkg.name,
      version: pkg.version,
      purl: pkg.purl,
      properties,
    });
  }
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${serial}`,
    version: 1,
    metadata: {
      timestamp: options.created.toISOString(),
      tools: { components: [{ type: 'application', name: 'berth', version: options.toolVersion }] },
      component: {
        type: 'container',
        'bom-ref': CYCLONEDX_IMAGE_REF,
        name: subject.repository,
        version: subject.digest,
        purl: ociPurl(subject),
      },
    },
    components,
    dependencies: [
      { ref: CYCLONEDX_IMAGE_REF, dependsOn: components.map((component) => component['bom-ref'] as string) },
    ],
  };
}
