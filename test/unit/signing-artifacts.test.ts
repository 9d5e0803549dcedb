/**
 * Recognising signatures, attestations and SBOMs in the shapes clients push them (cosign's tag scheme and OCI 1.1
 * referrers, sigstore bundles, Notation), and telling images from other artifacts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  classifyManifest,
  cosignTagSubject,
  indexChildren,
  isSupplyChainArtifact,
} from '../../src/signing/artifacts.ts';

const SUBJECT = `sha256:${'ab'.repeat(32)}`;
const OTHER = `sha256:${'cd'.repeat(32)}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function bytes(body: unknown): Buffer {
  return Buffer.from(JSON.stringify(body));
}

function manifest(config: string, layers: string[], extra: Record<string, unknown> = {}): Buffer {
  return bytes({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: config, digest: OTHER, size: 2 },
    layers: layers.map((mediaType) => ({ mediaType, digest: OTHER, size: 10 })),
    ...extra,
  });
}

describe('classifyManifest', () => {
  it("reads cosign's tag scheme: .sig is a signature, .att an attestation, .sbom an SBOM, of the tag's digest", () => {
    const hex = SUBJECT.slice(7);
    const sig = manifest('application/vnd.oci.image.config.v1+json', [
      'application/vnd.dev.cosign.simplesigning.v1+json',
    ]);
    assert.deepEqual(classifyManifest(sig, OCI_MANIFEST, [`sha256-${hex}.sig`]), {
      kind: 'signature',
      format: 'cosign',
      subject: SUBJECT,
    });
    // Without the tag, the layer still says it is a cosign signature, but nothing names what it signs.
    assert.deepEqual(classifyManifest(sig, OCI_MANIFEST), {
      kind: 'signature',
      format: 'cosign',
      subject: null,
    });
    const att = manifest('application/vnd.oci.image.config.v1+json', [
      'application/vnd.dsse.envelope.v1+json',
    ]);
    assert.deepEqual(classifyManifest(att, OCI_MANIFEST, [`sha256-${hex}.att`]), {
      kind: 'attestation',
      subject: SUBJECT,
    });
    const sbom = manifest('application/vnd.oci.image.config.v1+json', ['text/spdx+json']);
    assert.deepEqual(classifyManifest(sbom, OCI_MANIFEST, [`sha256-${hex}.sbom`]), {
      kind: 'sbom',
      subject: SUBJECT,
    });
  });

  it('reads OCI 1.1 referrers by artifactType or config media type, with the subject field', () => {
    const subject = { mediaType: OCI_MANIFEST, digest: SUBJECT, size: 100 };
    const cases: [Buffer, unknown][] = [
      [
        manifest('application/vnd.oci.empty.v1+json', ['application/vnd.dev.cosign.simplesigning.v1+json'], {
          artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
          subject,
        }),
        { kind: 'signature', format: 'cosign', subject: SUBJECT },
      ],
      [
        manifest('application/vnd.oci.empty.v1+json', ['application/vnd.dev.sigstore.bundle.v0.3+json'], {
          artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
          subject,
        }),
        { kind: 'signature', format: 'sigstore-bundle', subject: SUBJECT },
      ],
      [
        manifest('application/vnd.oci.empty.v1+json', ['application/jose+json'], {
          artifactType: 'application/vnd.cncf.notary.signature',
          subject,
        }),
        { kind: 'signature', format: 'notation', subject: SUBJECT },
      ],
      [
        // Notation before OCI 1.1 clients: the config media type says it.
        manifest('application/vnd.cncf.notary.signature', ['application/cose'], { subject }),
        { kind: 'signature', format: 'notation', subject: SUBJECT },
      ],
      [
        manifest('application/vnd.oci.empty.v1+json', ['application/vnd.in-toto+json'], {
          artifactType: 'application/vnd.in-toto+json',
          subject,
        }),
        { kind: 'attestation', subject: SUBJECT },
      ],
      [
        manifest('application/vnd.oci.empty.v1+json', ['application/spdx+json'], {
          artifactType: 'application/spdx+json',
          subject,
        }),
        { kind: 'sbom', subject: SUBJECT },
      ],
    ];
    for (const [payload, expected] of cases) {
      const got = classifyManifest(payload, OCI_MANIFEST);
      assert.deepEqual(got, expected);
      assert.equal(isSupplyChainArtifact(got), true);
    }
  });

  it('a runnable image stays an image whatever artifactType or subject it declares', () => {
    const subject = { mediaType: OCI_MANIFEST, digest: SUBJECT, size: 100 };
    const layers = ['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar'];
    for (const extra of [
      { subject },
      { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject },
      { artifactType: 'application/vnd.cncf.notary.signature' },
      { artifactType: 'application/vnd.in-toto+json', subject },
    ]) {
      assert.deepEqual(
        classifyManifest(manifest('application/vnd.oci.image.config.v1+json', layers, extra), OCI_MANIFEST),
        { kind: 'image', isIndex: false },
        JSON.stringify(extra),
      );
    }
    const docker = manifest(
      'application/vnd.docker.container.image.v1+json',
      ['application/vnd.docker.image.rootfs.diff.tar.gzip'],
      { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', subject },
    );
    assert.deepEqual(classifyManifest(docker, 'application/vnd.docker.distribution.manifest.v2+json'), {
      kind: 'image',
      isIndex: false,
    });
    // A signature layer among filesystem layers does not make it a signature: clients would still unpack those.
    assert.equal(
      classifyManifest(
        manifest('application/vnd.oci.image.config.v1+json', [
          'application/vnd.oci.image.layer.v1.tar+gzip',
          'application/vnd.dev.cosign.simplesigning.v1+json',
        ]),
        OCI_MANIFEST,
      ).kind,
      'image',
    );
    // Nor does an unusual config media type: the layers are what runs.
    assert.equal(
      classifyManifest(manifest('application/octet-stream', layers, { subject }), OCI_MANIFEST).kind,
      'image',
    );
  });

  it('tells images and indexes from other artifacts and unreadable bytes', () => {
    assert.deepEqual(
      classifyManifest(manifest('application/vnd.oci.image.config.v1+json', ['x/y']), OCI_MANIFEST),
      { kind: 'image', isIndex: false },
    );
    assert.deepEqual(
      classifyManifest(
        manifest('application/vnd.docker.container.image.v1+json', ['x/y'], {
          mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        }),
        'application/vnd.docker.distribution.manifest.v2+json',
      ),
      { kind: 'image', isIndex: false },
    );
    const index = bytes({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: OCI_MANIFEST, digest: SUBJECT, size: 1 },
        { mediaType: OCI_MANIFEST, digest: OTHER, size: 1 },
        { mediaType: OCI_MANIFEST, digest: 'not a digest', size: 1 },
      ],
    });
    assert.deepEqual(classifyManifest(index, 'application/vnd.oci.image.index.v1+json'), {
      kind: 'image',
      isIndex: true,
    });
    assert.deepEqual(indexChildren(index), [SUBJECT, OTHER]);
    assert.deepEqual(
      classifyManifest(manifest('application/vnd.cncf.helm.config.v1+json', ['x/y']), OCI_MANIFEST),
      { kind: 'other' },
    );
    assert.deepEqual(classifyManifest(Buffer.from('not json'), OCI_MANIFEST), { kind: 'other' });
    assert.deepEqual(classifyManifest(Buffer.from('[1]'), OCI_MANIFEST), { kind: 'other' });
    assert.deepEqual(indexChildren(Buffer.from('{')), []);
  });
});

describe('cosignTagSubject', () => {
  it('parses sha256-<hex>.sig|.att|.sbom and nothing else', () => {
    const hex = SUBJECT.slice(7);
    assert.deepEqual(cosignTagSubject(`sha256-${hex}.sig`), { subject: SUBJECT, kind: 'signature' });
    assert.deepEqual(cosignTagSubject(`sha256-${hex}.att`), { subject: SUBJECT, kind: 'attestation' });
    assert.deepEqual(cosignTagSubject(`sha256-${hex}.sbom`), { subject: SUBJECT, kind: 'sbom' });
    assert.equal(cosignTagSubject(`sha256-${hex}.sig2`), null);
    assert.equal(cosignTagSubject(`sha256-${hex.slice(2)}.sig`), null);
    assert.equal(cosignTagSubject('latest'), null);
  });
});
