/**
 * SBOM writers (`src/scanning/sbom/`): SPDX 2.3 and CycloneDX 1.6 JSON documents of an image's inventory. The
 * CycloneDX documents are validated against the official 1.6 JSON schema (test/fixtures/sbom/); no SPDX 2.3
 * schema is at hand, so the SPDX documents get the spec's structural rules as assertions.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { Inventory } from '../../src/scanning/inventory/inventory.ts';
import { purl } from '../../src/scanning/inventory/purl.ts';
import type { Package } from '../../src/scanning/inventory/types.ts';
import {
  CYCLONEDX_IMAGE_REF,
  CYCLONEDX_JSON_MEDIA_TYPE,
  CYCLONEDX_PROPERTIES,
  cycloneDxDocument,
} from '../../src/scanning/sbom/cyclonedx.ts';
import {
  SPDX_IMAGE_ID,
  SPDX_JSON_MEDIA_TYPE,
  SPDX_OS_ID,
  sanitizeSpdxId,
  spdxDocument,
  type SpdxDocument,
} from '../../src/scanning/sbom/spdx.ts';
import { ociPurl, uuidV5 } from '../../src/scanning/sbom/subject.ts';

// ajv-formats is CommonJS: its plugin is the module itself, `default` only under some interop modes.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

const schema = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../fixtures/sbom/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;

function cycloneDxValidator() {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  // The 1.6 schema refers to these two relative to its own $id.
  for (const name of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json']) {
    const { $id: _id, ...rest } = schema(name);
    ajv.addSchema(rest, `http://cyclonedx.org/schema/${name}`);
  }
  return ajv.compile(schema('bom-1.6.SNAPSHOT.schema.json'));
}

const bookworm = { id: 'debian', versionId: '12', versionCodename: 'bookworm', idLike: [] };
const distro = 'debian-12';

function deb(name: string, version: string, arch: string, source?: [string, string]): Package {
  return {
    ecosystem: 'Debian',
    name,
    version,
    ...(source ? { sourceName: source[0], sourceVersion: source[1] } : {}),
    purl: purl('deb', 'debian', name, version, { arch, distro, upstream: source ? source[0] : null }),
    locations: ['/var/lib/dpkg/status'],
  };
}

/** A python:3.12-slim-bookworm-like image with an npm app: real package names and versions. */
const packages: Package[] = [
  deb('base-files', '12.4+deb12u5', 'amd64'),
  deb('libc6', '2.36-9+deb12u4', 'amd64', ['glibc', '2.36-9+deb12u4']),
  deb('libssl3', '3.0.11-1~deb12u2', 'amd64', ['openssl', '3.0.11-1~deb12u2']),
  deb('tzdata', '2024a-0+deb12u1', 'all'),
  deb('zlib1g', '1:1.2.13.dfsg-1', 'amd64', ['zlib', '1:1.2.13.dfsg-1']),
  {
    ecosystem: 'PyPI',
    name: 'requests',
    version: '2.31.0',
    purl: purl('pypi', null, 'requests', '2.31.0'),
    locations: ['/usr/local/lib/python3.12/site-packages/requests-2.31.0.dist-info/METADATA'],
  },
  {
    ecosystem: 'PyPI',
    name: 'urllib3',
    version: '2.0.7',
    purl: purl('pypi', null, 'urllib3', '2.0.7'),
    locations: ['/usr/local/lib/python3.12/site-packages/urllib3-2.0.7.dist-info/METADATA'],
  },
  {
    ecosystem: 'npm',
    name: '@babel/core',
    version: '7.23.2',
    purl: purl('npm', '@babel', 'core', '7.23.2'),
    locations: ['/app/node_modules/@babel/core/package.json'],
  },
  {
    ecosystem: 'npm',
    name: 'express',
    version: '4.18.2',
    purl: purl('npm', null, 'express', '4.18.2'),
    locations: ['/app/node_modules/express/package.json', '/usr/lib/node_modules/express/package.json'],
  },
];
const inventory: Inventory = { os: bookworm, packages };
const subject = {
  repository: 'team/web-app',
  digest: 'sha256:5f8b05fdd4f1fca6d4dd1d5e0a3f1b6cc2b7d3b0e0a9f6b4e51a1e2d0a5d0c3e',
  reference: 'v1.4.2',
  registry: 'registry.example:5000',
};
const created = new Date('2026-12-08T01:02:03.456Z');

function spdx(inv: Inventory = inventory, over: Partial<typeof subject> = {}): SpdxDocument {
  return spdxDocument({ ...subject, ...over }, inv, {
    created,
    toolVersion: '0.1.0',
    namespaceBase: 'https://registry.example/spdx/',
  });
}

describe('the SBOM media types', () => {
  it('are the registered ones', () => {
    assert.equal(SPDX_JSON_MEDIA_TYPE, 'application/spdx+json');
    assert.equal(CYCLONEDX_JSON_MEDIA_TYPE, 'application/vnd.cyclonedx+json');
  });
});

describe('ociPurl', () => {
  it('names the image by its last repository segment, digest and repository_url', () => {
    assert.equal(
      ociPurl(subject),
      'pkg:oci/web-app@sha256:5f8b05fdd4f1fca6d4dd1d5e0a3f1b6cc2b7d3b0e0a9f6b4e51a1e2d0a5d0c3e' +
        '?repository_url=registry.example:5000%2Fteam%2Fweb-app&tag=v1.4.2',
    );
  });
  it('leaves out a digest reference and an absent registry', () => {
    const out = ociPurl({ repository: 'Library/Debian', digest: 'sha256:ab', reference: 'sha256:ab' });
    assert.equal(out, 'pkg:oci/debian@sha256:ab?repository_url=Library%2FDebian');
  });
});

describe('uuidV5', () => {
  it('is the RFC 9562 name-based UUID in the URL namespace', () => {
    // The value Python's uuid.uuid5(uuid.NAMESPACE_URL, 'http://www.example.com/') gives.
    assert.equal(uuidV5('http://www.example.com/'), 'fcde3c85-2270-590f-9e7c-ee003d65e0e2');
  });
});

describe('spdxDocument', () => {
  const doc = spdx();
  const ids = doc.packages.map((pkg) => pkg.SPDXID);

  it('has the SPDX 2.3 header fields', () => {
    assert.equal(doc.spdxVersion, 'SPDX-2.3');
    assert.equal(doc.dataLicense, 'CC0-1.0');
    assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT');
    assert.equal(doc.name, `team/web-app:v1.4.2@${subject.digest}`);
    assert.equal(doc.creationInfo.created, '2026-12-08T01:02:03Z');
    assert.match(doc.creationInfo.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(doc.creationInfo.creators, ['Tool: berth-0.1.0']);
  });

  it('has a namespace made under the base from the digest, with a UUID, and no fragment', () => {
    const url = new URL(doc.documentNamespace);
    assert.equal(url.hash, '');
    assert.ok(
      doc.documentNamespace.startsWith(
        'https://registry.example/spdx/team/web-app/sha256-5f8b05fdd4f1fca6d4dd1d5e0a3f1b6cc2b7d3b0e0a9f6b4e51a1e2d0a5d0c3e-',
      ),
      doc.documentNamespace,
    );
    assert.match(
      doc.documentNamespace,
      /-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('is deterministic, and its namespace changes with the image or the inventory', () => {
    assert.deepEqual(spdx(), doc);
    assert.equal(JSON.stringify(spdx()), JSON.stringify(doc));
    const otherDigest = spdx(inventory, { digest: `sha256:${'1'.repeat(64)}` });
    assert.notEqual(otherDigest.documentNamespace, doc.documentNamespace);
    const fewer = spdx({ os: bookworm, packages: packages.slice(1) });
    assert.notEqual(fewer.documentNamespace, doc.documentNamespace);
  });

  it('has an image package, an OS package and one package per installed package', () => {
    assert.equal(doc.packages.length, 2 + packages.length);
    const image = doc.packages.find((pkg) => pkg.SPDXID === SPDX_IMAGE_ID);
    assert.ok(image);
    assert.equal(image.primaryPackagePurpose, 'CONTAINER');
    assert.equal(image.name, 'team/web-app');
    assert.equal(image.versionInfo, subject.digest);
    assert.deepEqual(image.checksums, [{ algorithm: 'SHA256', checksumValue: subject.digest.slice(7) }]);
    assert.deepEqual(image.externalRefs, [
      { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: ociPurl(subject) },
    ]);
    const os = doc.packages.find((pkg) => pkg.SPDXID === SPDX_OS_ID);
    assert.ok(os);
    assert.equal(os.primaryPackagePurpose, 'OPERATING-SYSTEM');
    assert.equal(os.name, 'debian');
    assert.equal(os.versionInfo, '12');
    for (const pkg of packages) {
      const written = doc.packages.filter((p) =>
        p.externalRefs?.some((ref) => ref.referenceLocator === pkg.purl),
      );
      assert.equal(written.length, 1, pkg.purl);
      assert.equal(written[0]!.name, pkg.name);
      assert.equal(written[0]!.versionInfo, pkg.version);
      assert.equal(written[0]!.downloadLocation, 'NOASSERTION');
      assert.equal(written[0]!.filesAnalyzed, false);
      assert.equal(written[0]!.comment, `found in: ${pkg.locations.join(', ')}`);
    }
  });

  it('says the source package where it differs from the binary one', () => {
    const byName = (name: string) => doc.packages.find((pkg) => pkg.name === name);
    assert.equal(byName('libc6')?.sourceInfo, 'built package from: glibc 2.36-9+deb12u4');
    assert.equal(byName('zlib1g')?.sourceInfo, 'built package from: zlib 1:1.2.13.dfsg-1');
    assert.equal(byName('base-files')?.sourceInfo, undefined);
    assert.equal(byName('express')?.sourceInfo, undefined);
  });

  it('follows the SPDX 2.3 structural rules', () => {
    // SPDXIDs: `SPDXRef-` then letters, digits, `.` and `-` (spec 3.2, 7.2), unique in the document.
    for (const id of [doc.SPDXID, ...ids]) assert.match(id, /^SPDXRef-[A-Za-z0-9.-]+$/);
    assert.equal(new Set(ids).size, ids.length);
    // Every package has the fields 2.3 requires, of the right types.
    for (const pkg of doc.packages) {
      assert.equal(typeof pkg.name, 'string');
      assert.ok(pkg.name.length > 0);
      assert.equal(pkg.downloadLocation, 'NOASSERTION');
      if (pkg.versionInfo !== undefined) assert.equal(typeof pkg.versionInfo, 'string');
      if (pkg.primaryPackagePurpose !== undefined)
        assert.ok(
          ['CONTAINER', 'OPERATING-SYSTEM', 'LIBRARY', 'APPLICATION'].includes(pkg.primaryPackagePurpose),
        );
      for (const ref of pkg.externalRefs ?? []) {
        assert.equal(ref.referenceCategory, 'PACKAGE-MANAGER');
        assert.equal(ref.referenceType, 'purl');
        assert.match(ref.referenceLocator, /^pkg:[a-z]+\//);
      }
      for (const checksum of pkg.checksums ?? []) assert.match(checksum.checksumValue, /^[0-9a-f]{64}$/);
    }
    // Every relationship joins two elements of the document.
    const known = new Set([doc.SPDXID, ...ids]);
    for (const rel of doc.relationships) {
      assert.ok(known.has(rel.spdxElementId), rel.spdxElementId);
      assert.ok(known.has(rel.relatedSpdxElement), rel.relatedSpdxElement);
    }
    // The document describes the image, which contains every other package.
    assert.deepEqual(
      doc.relationships.filter((rel) => rel.relationshipType === 'DESCRIBES'),
      [
        {
          spdxElementId: 'SPDXRef-DOCUMENT',
          relationshipType: 'DESCRIBES',
          relatedSpdxElement: SPDX_IMAGE_ID,
        },
      ],
    );
    const contained = doc.relationships
      .filter((rel) => rel.relationshipType === 'CONTAINS' && rel.spdxElementId === SPDX_IMAGE_ID)
      .map((rel) => rel.relatedSpdxElement)
      .sort();
    assert.deepEqual(contained, ids.filter((id) => id !== SPDX_IMAGE_ID).sort());
    // It survives a JSON round trip unchanged (no undefined values, no non-JSON types).
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
  });

  it('keeps SPDXIDs unique when sanitising makes names collide or purls repeat', () => {
    const twin = (name: string): Package => ({
      ecosystem: 'PyPI',
      name,
      version: '1.0',
      purl: purl('pypi', null, name, '1.0'),
      locations: [],
    });
    const repeated = twin('a_b');
    const out = spdx({ os: null, packages: [twin('a_b'), twin('a+b'), repeated, repeated] });
    const outIds = out.packages.map((pkg) => pkg.SPDXID);
    assert.equal(new Set(outIds).size, 5);
    for (const id of outIds) assert.match(id, /^SPDXRef-[A-Za-z0-9.-]+$/);
    assert.equal(sanitizeSpdxId('@babel/core_7+x'), '-babel-core-7-x');
  });

  it('writes no OS package without an os-release, and no version for an OS without one', () => {
    const none = spdx({ os: null, packages: [] });
    assert.deepEqual(
      none.packages.map((pkg) => pkg.SPDXID),
      [SPDX_IMAGE_ID],
    );
    assert.equal(none.relationships.length, 1);
    const sid = spdx({
      os: { id: 'debian', versionId: null, versionCodename: null, idLike: [] },
      packages: [],
    });
    const os = sid.packages.find((pkg) => pkg.SPDXID === SPDX_OS_ID);
    assert.equal(os?.versionInfo, undefined);
    assert.equal('versionInfo' in (os ?? {}), false);
  });

  it('rejects a namespace base that is not an absolute http(s) URI', () => {
    for (const namespaceBase of ['spdx', '/relative', 'urn:x:y', ''])
      assert.throws(
        () => spdxDocument(subject, inventory, { created, toolVersion: '0.1.0', namespaceBase }),
        RangeError,
      );
    assert.throws(
      () =>
        spdxDocument(subject, inventory, {
          created: new Date('nope'),
          toolVersion: '0.1.0',
          namespaceBase: 'https://x',
        }),
      RangeError,
    );
  });
});

describe('cycloneDxDocument', () => {
  const validate = cycloneDxValidator();
  const bom = cycloneDxDocument(subject, inventory, { created, toolVersion: '0.1.0' });

  it('is valid against the CycloneDX 1.6 JSON schema', () => {
    const ok = validate(bom);
    assert.ok(ok, JSON.stringify(validate.errors, null, 2));
  });

  it('the schema check can fail: a broken document is rejected', () => {
    const broken = JSON.parse(JSON.stringify(bom)) as Record<string, unknown>;
    (broken.components as Record<string, unknown>[])[0]!.type = 'lib';
    assert.equal(validate(broken), false);
    assert.equal(validate({ ...bom, serialNumber: 'not-a-urn' }), false);
  });

  it('has the header, the tool and the image as metadata component', () => {
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.6');
    assert.equal(bom.version, 1);
    assert.match(
      bom.serialNumber,
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.equal(bom.metadata.timestamp, '2026-12-08T01:02:03.456Z');
    assert.deepEqual(bom.metadata.tools.components, [
      { type: 'application', name: 'berth', version: '0.1.0' },
    ]);
    assert.deepEqual(bom.metadata.component, {
      type: 'container',
      'bom-ref': CYCLONEDX_IMAGE_REF,
      name: 'team/web-app',
      version: subject.digest,
      purl: ociPurl(subject),
    });
  });

  it('has a serial number deterministic from the image and inventory', () => {
    const again = cycloneDxDocument(subject, inventory, { created: new Date(0), toolVersion: '0.1.0' });
    assert.equal(again.serialNumber, bom.serialNumber);
    const other = cycloneDxDocument({ ...subject, digest: `sha256:${'2'.repeat(64)}` }, inventory, {
      created,
      toolVersion: '0.1.0',
    });
    assert.notEqual(other.serialNumber, bom.serialNumber);
  });

  it('lists the OS and every package, with purls and locations', () => {
    assert.equal(bom.components.length, 1 + packages.length);
    assert.deepEqual(bom.components[0], {
      type: 'operating-system',
      'bom-ref': 'os:debian@12',
      name: 'debian',
      version: '12',
    });
    for (const pkg of packages) {
      const component = bom.components.find((c) => c.purl === pkg.purl);
      assert.ok(component, pkg.purl);
      assert.equal(component.type, 'library');
      assert.equal(component.name, pkg.name);
      assert.equal(component.version, pkg.version);
      const locations = (component.properties ?? [])
        .filter((p) => p.name === CYCLONEDX_PROPERTIES.location)
        .map((p) => p.value);
      assert.deepEqual(locations, pkg.locations);
    }
    const libssl = bom.components.find((c) => c.name === 'libssl3');
    assert.deepEqual(
      libssl?.properties?.filter((p) => p.name.includes('source')),
      [
        { name: CYCLONEDX_PROPERTIES.sourceName, value: 'openssl' },
        { name: CYCLONEDX_PROPERTIES.sourceVersion, value: '3.0.11-1~deb12u2' },
      ],
    );
  });

  it('has unique bom-refs, and dependencies that refer to them', () => {
    const refs = [bom.metadata.component['bom-ref'], ...bom.components.map((c) => c['bom-ref'])];
    assert.equal(new Set(refs).size, refs.length);
    assert.equal(bom.dependencies.length, 1);
    assert.equal(bom.dependencies[0]!.ref, CYCLONEDX_IMAGE_REF);
    assert.deepEqual(
      [...bom.dependencies[0]!.dependsOn].sort(),
      bom.components.map((c) => c['bom-ref']).sort(),
    );
  });

  it('stays valid with repeated purls, no OS and an empty inventory', () => {
    const dup = cycloneDxDocument(
      subject,
      { os: null, packages: [packages[0]!, packages[0]!] },
      {
        created,
        toolVersion: '0.1.0',
      },
    );
    assert.ok(validate(dup), JSON.stringify(validate.errors));
    const refs = dup.components.map((c) => c['bom-ref']);
    assert.equal(new Set(refs).size, 2);
    const empty = cycloneDxDocument(subject, { os: null, packages: [] }, { created, toolVersion: '0.1.0' });
    assert.ok(validate(empty), JSON.stringify(validate.errors));
    assert.deepEqual(empty.components, []);
  });
});
