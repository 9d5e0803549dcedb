/**
 * Notation signature verification: real envelopes made by notation (test/fixtures/signing/notation/SOURCES.md)
 * and envelopes made here with throwaway certificates, for the cases the real data does not cover.
 */
import assert from 'node:assert/strict';
import { constants, createHash, KeyObject, sign, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { encode, Tag } from 'cbor2';
import { verifyNotationSignature } from '../../src/signing/notation.ts';
import type { NotationTrust, NotationTrustPolicy } from '../../src/signing/trust.ts';
import type { SignedSubject } from '../../src/signing/verdict.ts';
import type { Digest } from '../../src/oci/digest.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/signing/notation');
const fixture = (name: string): Buffer => readFileSync(path.join(FIXTURES, name));
const fixtureText = (name: string): string => fixture(name).toString('utf8');

const JWS = 'application/jose+json';
const COSE = 'application/cose';
const NOW = new Date('2025-06-01T00:00:00Z');
const PAYLOAD_CTY = 'application/vnd.cncf.notary.payload.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The subject a real envelope's payload names. */
function subjectOf(envelope: Buffer, repository = 'library/alpine'): SignedSubject {
  const jws = JSON.parse(envelope.toString('utf8')) as { payload: string };
  const { targetArtifact } = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as {
    targetArtifact: { digest: Digest; mediaType: string; size: number };
  };
  return { repository, ...targetArtifact };
}

function policy(overrides: Partial<NotationTrustPolicy> = {}): NotationTrustPolicy {
  return {
    name: 'images',
    registryScopes: ['*'],
    signatureVerification: { level: 'strict' },
    trustStores: ['ca:acme'],
    trustedIdentities: ['*'],
    ...overrides,
  };
}

function trustOf(
  stores: Array<{ type: 'ca' | 'signingAuthority' | 'tsa'; name: string; pems: string[] }>,
  policies: NotationTrustPolicy[],
): NotationTrust {
  return {
    trustStores: stores.map((s) => ({ type: s.type, name: s.name, certificates: s.pems })),
    trustPolicies: policies,
  };
}

describe('real notation envelopes', () => {
  const alpine2023 = fixtureText('alpine-2023.crt');
  const alpine2000 = fixtureText('alpine-2000.crt');
  const globalsign = fixtureText('globalsign-root-r6.crt');

  it('verifies a JWS envelope against a trust store holding its certificate', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.reason, null);
    assert.equal(verdict.verified, true);
    assert.equal(verdict.tool, 'notation');
    assert.equal(verdict.format, 'notation-jws');
    assert.equal(verdict.signer, 'C=US, ST=WA, L=Seattle, O=Notary, CN=alpine');
    const der = Buffer.from(alpine2023.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    assert.equal(verdict.fingerprint, `sha256:${createHash('sha256').update(der).digest('hex')}`);
    assert.equal(verdict.signedAt, '2024-06-18T09:08:35.000Z');
    assert.deepEqual(verdict.notes, ['revocation not checked (offline)']);
  });

  it('verifies a second JWS envelope (another certificate) and checks its media type and size', async () => {
    const envelope = fixture('jws-signature.sig');
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2000] }], [policy()]);
    const subject = subjectOf(envelope);
    assert.equal(subject.mediaType, MANIFEST);
    const verdict = await verifyNotationSignature(envelope, JWS, subject, trust, NOW);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    const other = await verifyNotationSignature(envelope, JWS, { ...subject, size: 482 }, trust, NOW);
    assert.equal(other.verified, false);
    assert.equal(other.reason, 'the signature is for size 481, not 482');
    const index = 'application/vnd.oci.image.index.v1+json';
    const wrongType = await verifyNotationSignature(
      envelope,
      JWS,
      { ...subject, mediaType: index },
      trust,
      NOW,
    );
    assert.equal(wrongType.reason, `the signature is for media type ${MANIFEST}, not ${index}`);
  });

  it('proves the signing time with the RFC 3161 timestamp after the certificate expired', async () => {
    const envelope = fixture('jws-with-timestamp.sig');
    const later = new Date('2040-01-01T00:00:00Z'); // the signing certificate expired in 2033
    const withTsa = trustOf(
      [
        { type: 'ca', name: 'acme', pems: [alpine2023] },
        { type: 'tsa', name: 'globalsign', pems: [globalsign] },
      ],
      [policy({ trustStores: ['ca:acme', 'tsa:globalsign'] })],
    );
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), withTsa, later);
    assert.equal(verdict.reason, null);
    assert.equal(verdict.verified, true);
    // The proven time (the TSA's genTime), not the self-claimed signing time 2024-06-18T06:29:33Z.
    assert.equal(verdict.signedAt, '2024-06-18T06:29:37.000Z');

    const withoutTsa = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const unproven = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), withoutTsa, later);
    assert.equal(unproven.verified, false);
    assert.equal(
      unproven.reason,
      'the signature has a timestamp countersignature, but trust policy images has no tsa trust store',
    );
    const permissive = trustOf(
      [{ type: 'ca', name: 'acme', pems: [alpine2023] }],
      [policy({ signatureVerification: { level: 'permissive' } })],
    );
    const logged = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), permissive, NOW);
    assert.equal(logged.verified, true);
    assert.equal(logged.signedAt, '2024-06-18T06:29:33.000Z'); // not proven: the self-claimed signing time
    assert.ok(logged.notes.some((n) => n.startsWith('authenticTimestamp check failed (logged only): ')));
  });

  it('fails a timestamp whose TSA is not in the tsa trust store', async () => {
    const envelope = fixture('jws-with-timestamp.sig');
    const trust = trustOf(
      [
        { type: 'ca', name: 'acme', pems: [alpine2023] },
        { type: 'tsa', name: 'other', pems: [alpine2000] },
      ],
      [policy({ trustStores: ['ca:acme', 'tsa:other'] })],
    );
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the timestamp countersignature does not verify: the timestamping certificate is not trusted by a tsa trust store',
    );
  });

  it('fails a timestamp taken over another signature', async () => {
    // The unprotected header is not signed: move the timestamp to an envelope it was not made for.
    const stamped = JSON.parse(fixtureText('jws-with-timestamp.sig')) as { header: Record<string, unknown> };
    const target = JSON.parse(fixtureText('jws-without-timestamp.sig')) as {
      header: Record<string, unknown>;
    };
    target.header['io.cncf.notary.timestampSignature'] = stamped.header['io.cncf.notary.timestampSignature'];
    const envelope = Buffer.from(JSON.stringify(target));
    const trust = trustOf(
      [
        { type: 'ca', name: 'acme', pems: [alpine2023] },
        { type: 'tsa', name: 'globalsign', pems: [globalsign] },
      ],
      [policy({ trustStores: ['ca:acme', 'tsa:globalsign'] })],
    );
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the timestamp countersignature does not verify: the timestamp is not over this signature',
    );
  });

  it('fails a trust store without the signing chain (untrusted root)', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2000] }], [policy()]);
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the signing certificate chain does not lead to a certificate of trust store ca:acme',
    );
    assert.equal(verdict.signer, 'C=US, ST=WA, L=Seattle, O=Notary, CN=alpine');
  });

  it('fails a tampered payload', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const jws = JSON.parse(envelope.toString('utf8')) as { payload: string };
    const payload = Buffer.from(jws.payload, 'base64url')
      .toString('utf8')
      .replace('"size":528', '"size":529');
    const tampered = Buffer.from(
      JSON.stringify({ ...jws, payload: Buffer.from(payload).toString('base64url') }),
      'utf8',
    );
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const verdict = await verifyNotationSignature(tampered, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      "the signature does not verify with the signing certificate's key: the envelope was altered",
    );
  });

  it('fails a subject the payload does not name', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const other = `sha256:${'ab'.repeat(32)}` as Digest;
    const verdict = await verifyNotationSignature(
      envelope,
      JWS,
      { repository: 'library/alpine', digest: other },
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      `the signature is for sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda, not ${other}`,
    );
  });

  it('matches trusted identities by the RDNs they list', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const stores = [{ type: 'ca' as const, name: 'acme', pems: [alpine2023] }];
    const run = (identities: string[]) =>
      verifyNotationSignature(
        envelope,
        JWS,
        subjectOf(envelope),
        trustOf(stores, [policy({ trustedIdentities: identities })]),
        NOW,
      );
    const match = await run(['x509.subject: C=US, ST=WA, O=Notary, CN=alpine']);
    assert.equal(match.verified, true, match.reason ?? '');
    const mismatch = await run(['x509.subject: C=US, ST=WA, O=Other', 'x509.subject: C=US, CN=beta']);
    assert.equal(mismatch.verified, false);
    assert.equal(
      mismatch.reason,
      'the signing certificate subject C=US, ST=WA, L=Seattle, O=Notary, CN=alpine is not a trusted identity of trust policy images',
    );
    const none = await run([]);
    assert.equal(none.verified, false);
  });

  it('selects the policy by repository, ignoring the registry host; specific scopes win over *', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const stores = [
      { type: 'ca' as const, name: 'acme', pems: [alpine2023] },
      { type: 'ca' as const, name: 'other', pems: [alpine2000] },
    ];
    const specific = policy({ name: 'alpine', registryScopes: ['registry.example:5000/library/alpine'] });
    const wildcard = policy({ name: 'everything', trustStores: ['ca:other'] });
    const trust = trustOf(stores, [wildcard, specific]);
    const hit = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(hit.verified, true, hit.reason ?? '');
    const fallback = await verifyNotationSignature(
      envelope,
      JWS,
      subjectOf(envelope, 'library/other'),
      trust,
      NOW,
    );
    assert.equal(
      fallback.reason,
      'the signing certificate chain does not lead to a certificate of trust store ca:other',
    );

    const none = trustOf(stores, [specific]);
    const miss = await verifyNotationSignature(envelope, JWS, subjectOf(envelope, 'team/app'), none, NOW);
    assert.equal(miss.verified, false);
    assert.equal(miss.reason, 'no Notation trust policy applies to repository team/app');
  });

  it('never trusts a signature under level audit or skip', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const stores = [{ type: 'ca' as const, name: 'acme', pems: [alpine2023] }];
    const audit = trustOf(stores, [policy({ signatureVerification: { level: 'audit' } })]);
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), audit, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'trust policy images is at level audit: the signature is authentic, but the level only records verification results',
    );
    assert.equal(verdict.signer, 'C=US, ST=WA, L=Seattle, O=Notary, CN=alpine');

    const untrusted = trustOf(
      [{ type: 'ca', name: 'acme', pems: [alpine2000] }],
      [policy({ signatureVerification: { level: 'audit' } })],
    );
    const logged = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), untrusted, NOW);
    assert.equal(
      logged.reason,
      'trust policy images is at level audit: the signing certificate chain does not lead to a certificate of trust store ca:acme',
    );
    assert.ok(logged.notes.includes('revocation not checked (offline)'));

    const skip = trustOf(stores, [policy({ signatureVerification: { level: 'skip' } })]);
    const skipped = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), skip, NOW);
    assert.equal(skipped.verified, false);
    assert.equal(skipped.reason, 'trust policy images is at level skip: signatures are not verified');
  });

  it('does not verify when an override only logs authenticity', async () => {
    const envelope = fixture('jws-without-timestamp.sig');
    const trust = trustOf(
      [{ type: 'ca', name: 'acme', pems: [alpine2000] }],
      [policy({ signatureVerification: { level: 'permissive', override: { authenticity: 'log' } } })],
    );
    const verdict = await verifyNotationSignature(envelope, JWS, subjectOf(envelope), trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'trust policy images does not enforce authenticity (log): the signing certificate chain does not lead to a certificate of trust store ca:acme',
    );
  });

  it('answers every truncation of an envelope with a verdict', async () => {
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const jws = fixture('jws-with-timestamp.sig');
    const root = await makeRoot('CN=Truncation Root, O=Acme, C=US');
    const leaf = await makeLeaf(root);
    const cose = makeCose({ leaf, chain: [leaf, root] });
    for (const [envelope, mediaType] of [
      [jws, JWS],
      [cose, COSE],
    ] as const) {
      for (let end = 0; end < envelope.length; end += 7) {
        const verdict = await verifyNotationSignature(
          envelope.subarray(0, end),
          mediaType,
          SUBJECT,
          trust,
          NOW,
        );
        assert.equal(verdict.verified, false);
        assert.ok(verdict.reason !== null && verdict.reason.length > 0);
      }
    }
  });

  it('refuses other media types and malformed envelopes', async () => {
    const trust = trustOf([{ type: 'ca', name: 'acme', pems: [alpine2023] }], [policy()]);
    const subject = subjectOf(fixture('jws-signature.sig'));
    const other = await verifyNotationSignature(Buffer.from('{}'), 'application/json', subject, trust, NOW);
    assert.equal(other.verified, false);
    assert.match(other.reason ?? '', /^unsupported Notation envelope media type "application\/json"/);
    const garbage = await verifyNotationSignature(Buffer.from('not json'), JWS, subject, trust, NOW);
    assert.equal(garbage.reason, 'malformed signature envelope: the envelope is not JSON');
    const notCose = await verifyNotationSignature(Buffer.from([0xa0]), COSE, subject, trust, NOW);
    assert.equal(notCose.format, 'notation-cose');
    assert.equal(
      notCose.reason,
      'malformed signature envelope: the envelope is not a tagged COSE_Sign1 message',
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Envelopes made here: a throwaway CA and code-signing leaves.

interface Issued {
  readonly cert: x509.X509Certificate;
  readonly der: Buffer;
  readonly pem: string;
  readonly key: KeyObject;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
};

function issued(cert: x509.X509Certificate, privateKey: webcrypto.CryptoKey): Issued {
  const der = Buffer.from(cert.rawData);
  return { cert, der, pem: cert.toString('pem'), key: KeyObject.from(privateKey) };
}

async function makeRoot(name: string): Promise<Issued & { keys: webcrypto.CryptoKeyPair }> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2040-01-01T00:00:00Z'),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  return { ...issued(cert, keys.privateKey), keys };
}

async function makeLeaf(
  root: Issued & { keys: webcrypto.CryptoKeyPair },
  options: { name?: string; rsa?: boolean; notBefore?: Date; notAfter?: Date; eku?: string | null } = {},
): Promise<Issued> {
  const keys = await webcrypto.subtle.generateKey(options.rsa === true ? RSA : EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: options.name ?? 'CN=signer, O=Acme, ST=WA, C=US',
    issuer: root.cert.subject,
    notBefore: options.notBefore ?? new Date('2024-01-01T00:00:00Z'),
    notAfter: options.notAfter ?? new Date('2030-01-01T00:00:00Z'),
    publicKey: keys.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(options.eku === null
        ? []
        : [new x509.ExtendedKeyUsageExtension([options.eku ?? x509.ExtendedKeyUsage.codeSigning])]),
    ],
  });
  return issued(cert, keys.privateKey);
}

const TARGET = {
  mediaType: MANIFEST,
  digest: `sha256:${'12'.repeat(32)}` as Digest,
  size: 1234,
};
const SUBJECT: SignedSubject = { repository: 'acme/app', ...TARGET };

interface EnvelopeOptions {
  readonly leaf: Issued;
  readonly chain: readonly Issued[];
  readonly target?: object;
  readonly attributes?: Record<string, unknown>;
  readonly critical?: string[];
  readonly scheme?: 'notary.x509' | 'notary.x509.signingAuthority';
  /** The `alg` header, when it should not be the one the key calls for. */
  readonly alg?: string;
}

function rawSign(leaf: Issued, data: Buffer): { alg: 'ES256' | 'PS256'; signature: Buffer } {
  if (leaf.key.asymmetricKeyType === 'rsa') {
    const signature = sign('sha256', data, {
      key: leaf.key,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 32,
    });
    return { alg: 'PS256', signature };
  }
  return { alg: 'ES256', signature: sign('sha256', data, { key: leaf.key, dsaEncoding: 'ieee-p1363' }) };
}

function makeJws(o: EnvelopeOptions): Buffer {
  const scheme = o.scheme ?? 'notary.x509';
  const timeName =
    scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime';
  const critical = o.critical ?? [
    'io.cncf.notary.signingScheme',
    ...(scheme === 'notary.x509' ? [] : [timeName]),
    ...Object.keys(o.attributes ?? {}),
  ];
  const header = {
    alg: o.alg ?? (o.leaf.key.asymmetricKeyType === 'rsa' ? 'PS256' : 'ES256'),
    crit: critical,
    cty: PAYLOAD_CTY,
    'io.cncf.notary.signingScheme': scheme,
    [timeName]: '2025-01-02T03:04:05Z',
    ...o.attributes,
  };
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString('base64url');
  const payloadB64 = Buffer.from(JSON.stringify({ targetArtifact: o.target ?? TARGET })).toString(
    'base64url',
  );
  const { signature } = rawSign(o.leaf, Buffer.from(`${protectedB64}.${payloadB64}`));
  return Buffer.from(
    JSON.stringify({
      payload: payloadB64,
      protected: protectedB64,
      header: { x5c: o.chain.map((c) => c.der.toString('base64')), 'io.cncf.notary.signingAgent': 'test' },
      signature: signature.toString('base64url'),
    }),
  );
}

function makeCose(o: EnvelopeOptions & { tamper?: boolean }): Buffer {
  const rsa = o.leaf.key.asymmetricKeyType === 'rsa';
  const scheme = o.scheme ?? 'notary.x509';
  const timeName =
    scheme === 'notary.x509' ? 'io.cncf.notary.signingTime' : 'io.cncf.notary.authenticSigningTime';
  const header = new Map<unknown, unknown>([
    [1, rsa ? -37 : -7],
    [2, o.critical ?? ['io.cncf.notary.signingScheme', ...(scheme === 'notary.x509' ? [] : [timeName])]],
    [3, PAYLOAD_CTY],
    ['io.cncf.notary.signingScheme', scheme],
    [timeName, new Tag(1, 1735787045)],
    ...Object.entries(o.attributes ?? {}),
  ]);
  const protectedBytes = encode(header);
  const payload = Buffer.from(JSON.stringify({ targetArtifact: o.target ?? TARGET }));
  const toSign = Buffer.from(
    encode(['Signature1', protectedBytes, new Uint8Array(0), new Uint8Array(payload)]),
  );
  const { signature } = rawSign(o.leaf, toSign);
  const unprotected = new Map<unknown, unknown>([
    [33, o.chain.map((c) => new Uint8Array(c.der))],
    ['io.cncf.notary.signingAgent', 'test'],
  ]);
  const sent = o.tamper === true ? Buffer.from(payload.toString().replace('1234', '1235')) : payload;
  // A Buffer would not encode as a plain byte string.
  const message = [protectedBytes, unprotected, new Uint8Array(sent), new Uint8Array(signature)];
  return Buffer.from(encode(new Tag(18, message)));
}

describe('generated envelopes', () => {
  let root: Issued & { keys: webcrypto.CryptoKeyPair };
  let otherRoot: Issued & { keys: webcrypto.CryptoKeyPair };
  let leaf: Issued;
  let rsaLeaf: Issued;
  let trust: NotationTrust;

  before(async () => {
    root = await makeRoot('CN=Test Root, O=Acme, C=US');
    otherRoot = await makeRoot('CN=Other Root, O=Elsewhere, C=US');
    leaf = await makeLeaf(root);
    rsaLeaf = await makeLeaf(root, { rsa: true });
    trust = trustOf([{ type: 'ca', name: 'acme', pems: [root.pem] }], [policy()]);
  });

  it('verifies COSE envelopes (ES256 and PS256) and JWS ES256 with a CA chain', async () => {
    for (const [envelope, mediaType] of [
      [makeCose({ leaf, chain: [leaf, root] }), COSE],
      [makeCose({ leaf: rsaLeaf, chain: [rsaLeaf, root] }), COSE],
      [makeJws({ leaf, chain: [leaf, root] }), JWS],
    ] as const) {
      const verdict = await verifyNotationSignature(envelope, mediaType, SUBJECT, trust, NOW);
      assert.equal(verdict.reason, null);
      assert.equal(verdict.verified, true);
      assert.equal(verdict.format, mediaType === COSE ? 'notation-cose' : 'notation-jws');
      // The subject's attributes in the order the certificate has them.
      assert.equal(verdict.signer, 'CN=signer, O=Acme, ST=WA, C=US');
      assert.equal(verdict.signedAt, '2025-01-02T03:04:05.000Z');
    }
  });

  it('fails a tampered COSE payload', async () => {
    const verdict = await verifyNotationSignature(
      makeCose({ leaf, chain: [leaf, root], tamper: true }),
      COSE,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      "the signature does not verify with the signing certificate's key: the envelope was altered",
    );
  });

  it('fails a chain from an untrusted root', async () => {
    const stranger = await makeLeaf(otherRoot);
    const verdict = await verifyNotationSignature(
      makeCose({ leaf: stranger, chain: [stranger, otherRoot] }),
      COSE,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the signing certificate chain does not lead to a certificate of trust store ca:acme',
    );
  });

  it('fails a payload naming another digest', async () => {
    const target = { ...TARGET, digest: `sha256:${'34'.repeat(32)}` };
    for (const [envelope, mediaType] of [
      [makeJws({ leaf, chain: [leaf, root], target }), JWS],
      [makeCose({ leaf, chain: [leaf, root], target }), COSE],
    ] as const) {
      const verdict = await verifyNotationSignature(envelope, mediaType, SUBJECT, trust, NOW);
      assert.equal(verdict.verified, false);
      assert.equal(verdict.reason, `the signature is for ${target.digest}, not ${TARGET.digest}`);
    }
  });

  it('fails an expired signature under strict and logs it under permissive', async () => {
    const jws = makeJws({
      leaf,
      chain: [leaf, root],
      attributes: { 'io.cncf.notary.expiry': '2025-03-01T00:00:00Z' },
    });
    const cose = makeCose({
      leaf,
      chain: [leaf, root],
      critical: ['io.cncf.notary.signingScheme', 'io.cncf.notary.expiry'],
      attributes: { 'io.cncf.notary.expiry': new Tag(1, Date.parse('2025-03-01T00:00:00Z') / 1000) },
    });
    for (const [envelope, mediaType] of [
      [jws, JWS],
      [cose, COSE],
    ] as const) {
      const strict = await verifyNotationSignature(envelope, mediaType, SUBJECT, trust, NOW);
      assert.equal(strict.verified, false);
      assert.equal(strict.reason, 'the signature expired at 2025-03-01T00:00:00.000Z');
      const before = await verifyNotationSignature(
        envelope,
        mediaType,
        SUBJECT,
        trust,
        new Date('2025-02-01'),
      );
      assert.equal(before.verified, true, before.reason ?? '');
    }
    const permissive = trustOf(
      [{ type: 'ca', name: 'acme', pems: [root.pem] }],
      [policy({ signatureVerification: { level: 'permissive' } })],
    );
    const logged = await verifyNotationSignature(jws, JWS, SUBJECT, permissive, NOW);
    assert.equal(logged.verified, true);
    assert.ok(
      logged.notes.includes(
        'expiry check failed (logged only): the signature expired at 2025-03-01T00:00:00.000Z',
      ),
    );
  });

  it('fails an expired signing certificate', async () => {
    const old = await makeLeaf(root, {
      notBefore: new Date('2021-01-01T00:00:00Z'),
      notAfter: new Date('2022-01-01T00:00:00Z'),
    });
    const verdict = await verifyNotationSignature(
      makeJws({ leaf: old, chain: [old, root] }),
      JWS,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the signing certificate expired at 2022-01-01T00:00:00.000Z');
  });

  it('fails an identity not in trustedIdentities', async () => {
    const strict = trustOf(
      [{ type: 'ca', name: 'acme', pems: [root.pem] }],
      [policy({ trustedIdentities: ['x509.subject: C=US, ST=WA, O=Acme, CN=release'] })],
    );
    const verdict = await verifyNotationSignature(
      makeCose({ leaf, chain: [leaf, root] }),
      COSE,
      SUBJECT,
      strict,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the signing certificate subject CN=signer, O=Acme, ST=WA, C=US is not a trusted identity of trust policy images',
    );
  });

  it('fails an unknown critical header', async () => {
    const jws = makeJws({ leaf, chain: [leaf, root], attributes: { 'com.example.rule': 'x' } });
    const cose = makeCose({
      leaf,
      chain: [leaf, root],
      critical: ['io.cncf.notary.signingScheme', 'com.example.rule'],
      attributes: { 'com.example.rule': 'x' },
    });
    for (const [envelope, mediaType] of [
      [jws, JWS],
      [cose, COSE],
    ] as const) {
      const verdict = await verifyNotationSignature(envelope, mediaType, SUBJECT, trust, NOW);
      assert.equal(verdict.verified, false);
      assert.equal(verdict.reason, 'the signature has unsupported critical attributes: com.example.rule');
    }
    // An extended attribute that is not critical is ignored.
    const nonCritical = makeJws({
      leaf,
      chain: [leaf, root],
      critical: ['io.cncf.notary.signingScheme'],
      attributes: { 'com.example.rule': 'x' },
    });
    assert.equal((await verifyNotationSignature(nonCritical, JWS, SUBJECT, trust, NOW)).verified, true);
  });

  it('checks the signing scheme against the trust store type', async () => {
    const envelope = makeJws({ leaf, chain: [leaf, root], scheme: 'notary.x509.signingAuthority' });
    const authority = trustOf(
      [{ type: 'signingAuthority', name: 'acme', pems: [root.pem] }],
      [policy({ trustStores: ['signingAuthority:acme'] })],
    );
    const verdict = await verifyNotationSignature(envelope, JWS, SUBJECT, authority, NOW);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    const caOnly = await verifyNotationSignature(envelope, JWS, SUBJECT, trust, NOW);
    assert.equal(caOnly.verified, false);
    assert.equal(
      caOnly.reason,
      'trust policy images has no signingAuthority trust store for the notary.x509.signingAuthority signing scheme',
    );
  });

  it('fails a chain that is out of order or lacks its root', async () => {
    const noRoot = await verifyNotationSignature(makeJws({ leaf, chain: [leaf] }), JWS, SUBJECT, trust, NOW);
    assert.equal(noRoot.verified, false);
    assert.equal(
      noRoot.reason,
      'invalid certificate chain: the certificate chain does not end with a self-signed root certificate',
    );
    const reversed = await verifyNotationSignature(
      makeJws({ leaf, chain: [leaf, otherRoot] }),
      JWS,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(
      reversed.reason,
      'invalid certificate chain: certificate 0 of the chain is not issued by certificate 1',
    );
  });
  it('logs an expired signing certificate under permissive', async () => {
    const old = await makeLeaf(root, {
      notBefore: new Date('2021-01-01T00:00:00Z'),
      notAfter: new Date('2022-01-01T00:00:00Z'),
    });
    const permissive = trustOf(
      [{ type: 'ca', name: 'acme', pems: [root.pem] }],
      [policy({ signatureVerification: { level: 'permissive' } })],
    );
    const verdict = await verifyNotationSignature(
      makeJws({ leaf: old, chain: [old, root] }),
      JWS,
      SUBJECT,
      permissive,
      NOW,
    );
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.deepEqual(verdict.notes, [
      'revocation not checked (offline)',
      'authenticTimestamp check failed (logged only): the signing certificate expired at 2022-01-01T00:00:00.000Z',
    ]);
  });

  it('fails a leaf without the code-signing extended key usage', async () => {
    const bare = await makeLeaf(root, { eku: null });
    const missing = await verifyNotationSignature(
      makeJws({ leaf: bare, chain: [bare, root] }),
      JWS,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(
      missing.reason,
      "invalid certificate chain: the signing certificate's extended key usage does not include code signing",
    );
    const server = await makeLeaf(root, { eku: x509.ExtendedKeyUsage.serverAuth });
    const verdict = await verifyNotationSignature(
      makeJws({ leaf: server, chain: [server, root] }),
      JWS,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      "invalid certificate chain: the signing certificate's extended key usage does not include code signing",
    );
  });

  it('fails an alg header the signing key does not call for', async () => {
    const verdict = await verifyNotationSignature(
      makeJws({ leaf, chain: [leaf, root], alg: 'ES384' }),
      JWS,
      SUBJECT,
      trust,
      NOW,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      "the signature algorithm ES384 does not match the signing certificate's key (ES256)",
    );
  });

  it('fails a signature that requires a verification plugin', async () => {
    const envelope = makeJws({
      leaf,
      chain: [leaf, root],
      attributes: { 'io.cncf.notary.verificationPlugin': 'com.example.plugin' },
    });
    const verdict = await verifyNotationSignature(envelope, JWS, SUBJECT, trust, NOW);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the signature requires verification plugin com.example.plugin, which Berth does not run',
    );
  });
});
