/**
 * Cosign signature verification (signing/cosign.ts: classic simple-signing layers; signing/sigstore-bundle.ts:
 * sigstore bundles as cosign 3 pushes them). Real bundles from sigstore's public test data (see
 * test/fixtures/signing/cosign/SOURCES.md) must verify with their own trust material; throwaway keys, CAs and a
 * throwaway Rekor (test/helpers/sigstore-forge.ts) make the classic signatures and every negative case.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Digest } from '../../src/oci/digest.ts';
import {
  ANNOTATION_BUNDLE,
  ANNOTATION_CERTIFICATE,
  ANNOTATION_CHAIN,
  ANNOTATION_SIGNATURE,
  verifyCosignSignature,
  type CosignSimpleSignature,
} from '../../src/signing/cosign.ts';
import { COSIGN_SIGN_PREDICATE_TYPE, verifySigstoreBundle } from '../../src/signing/sigstore-bundle.ts';
import { identityMatches } from '../../src/signing/identity.ts';
import type { CosignTrust, KeylessTrust } from '../../src/signing/trust.ts';
import type { SignedSubject } from '../../src/signing/verdict.ts';
import { FakeRekor, issue, simpleSigningPayload, type Issued } from '../helpers/sigstore-forge.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'signing', 'cosign');
const fixture = (...parts: string[]): Buffer => readFileSync(path.join(FIXTURES, ...parts));

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const DIGEST = `sha256:${sha256('the manifest')}` as Digest;
const OTHER_DIGEST = `sha256:${sha256('another manifest')}` as Digest;
const SUBJECT: SignedSubject = { repository: 'team/app', digest: DIGEST };
const REFERENCE = 'registry.example/team/app';
const ISSUER = 'https://accounts.example.com';
const spkiFingerprint = (key: KeyObject): string =>
  `sha256:${sha256(key.export({ format: 'der', type: 'spki' }))}`;
const pemOf = (key: KeyObject): string => key.export({ format: 'pem', type: 'spki' }).toString();

function trustOf(partial: Partial<CosignTrust>): CosignTrust {
  return { keys: partial.keys ?? [], keyless: partial.keyless ?? [] };
}

function keyless(partial: Partial<KeylessTrust> & Pick<KeylessTrust, 'name'>): KeylessTrust {
  return {
    identities: [{ subject: 'dev@example.com', issuer: ISSUER }],
    requireSignedTime: true,
    ...partial,
  };
}

describe('identity matchers', () => {
  const identity = {
    subject: 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1',
    issuer: ISSUER,
  };
  it('match exact values and (unanchored) regular expressions, every given field', () => {
    assert.equal(identityMatches({ subject: identity.subject, issuer: ISSUER }, identity), true);
    assert.equal(
      identityMatches({ subjectRegExp: '^https://github\\.com/acme/', issuer: ISSUER }, identity),
      true,
    );
    assert.equal(
      identityMatches({ subjectRegExp: 'release\\.yml', issuerRegExp: 'accounts' }, identity),
      true,
    );
    assert.equal(
      identityMatches({ subjectRegExp: '^https://github\\.com/other/', issuer: ISSUER }, identity),
      false,
    );
    assert.equal(
      identityMatches({ subject: identity.subject, issuer: 'https://other.example' }, identity),
      false,
    );
  });
  it('match nothing for a pattern that does not compile, or a certificate without the field', () => {
    assert.equal(identityMatches({ subjectRegExp: '(', issuer: ISSUER }, identity), false);
    assert.equal(
      identityMatches({ subjectRegExp: '.*', issuer: ISSUER }, { subject: undefined, issuer: ISSUER }),
      false,
    );
  });
});

describe('cosign classic signatures, key-based', () => {
  const payload = simpleSigningPayload(REFERENCE, DIGEST);
  const layer = (
    bytes: Buffer,
    signature: Buffer,
    extra: Record<string, string> = {},
  ): CosignSimpleSignature => ({
    payload: bytes,
    annotations: { [ANNOTATION_SIGNATURE]: signature.toString('base64'), ...extra },
  });
  const now = new Date('2026-06-01T00:00:00Z');

  const cases: {
    label: string;
    pair: () => { publicKey: KeyObject; privateKey: KeyObject };
    hash: string | null;
  }[] = [
    {
      label: 'ECDSA P-256 (SHA-256)',
      pair: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
      hash: 'sha256',
    },
    {
      label: 'ECDSA P-384 (SHA-384)',
      pair: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
      hash: 'sha384',
    },
    {
      label: 'ECDSA P-384 (SHA-256)',
      pair: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
      hash: 'sha256',
    },
    { label: 'Ed25519', pair: () => generateKeyPairSync('ed25519'), hash: null },
    {
      label: 'RSA PKCS#1 v1.5 (SHA-256)',
      pair: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
      hash: 'sha256',
    },
  ];
  for (const c of cases) {
    it(`verifies a ${c.label} signature with the configured key`, async () => {
      const { publicKey, privateKey } = c.pair();
      const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const trust = trustOf({
        keys: [
          { name: 'unrelated', publicKey: pemOf(other.publicKey) },
          { name: 'release', publicKey: pemOf(publicKey) },
        ],
      });
      const verdict = await verifyCosignSignature(
        layer(payload, sign(c.hash, payload, privateKey)),
        SUBJECT,
        trust,
        now,
      );
      assert.equal(verdict.verified, true, verdict.reason ?? '');
      assert.equal(verdict.tool, 'cosign');
      assert.equal(verdict.format, 'cosign-simple-signing');
      assert.equal(verdict.signer, 'release');
      assert.equal(verdict.fingerprint, spkiFingerprint(publicKey));
      assert.equal(verdict.reason, null);
      assert.equal(verdict.signedAt, null);
    });
  }

  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signature = sign('sha256', payload, signer.privateKey);
  const trust = trustOf({ keys: [{ name: 'release', publicKey: pemOf(signer.publicKey) }] });

  it('refuses a signature made by another key', async () => {
    const wrong = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verdict = await verifyCosignSignature(
      layer(payload, sign('sha256', payload, wrong.privateKey)),
      SUBJECT,
      trust,
      now,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the signature does not verify with any configured key (release)');
    assert.equal(verdict.signer, null);
  });

  it('refuses a tampered payload', async () => {
    const tampered = Buffer.from(payload.toString('utf8').replace(REFERENCE, 'registry.example/team/evil'));
    const verdict = await verifyCosignSignature(layer(tampered, signature), SUBJECT, trust, now);
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the signature does not verify with any configured key (release)');
  });

  it('refuses an authentic payload that names another digest', async () => {
    const elsewhere = simpleSigningPayload(REFERENCE, OTHER_DIGEST);
    const verdict = await verifyCosignSignature(
      layer(elsewhere, sign('sha256', elsewhere, signer.privateKey)),
      SUBJECT,
      trust,
      now,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, `the payload names another digest (${OTHER_DIGEST}), not ${DIGEST}`);
    assert.equal(verdict.signer, 'release');
  });

  it('refuses a layer without a signature, and a trust without keys', async () => {
    const bare = await verifyCosignSignature({ payload, annotations: {} }, SUBJECT, trust, now);
    assert.equal(bare.reason, 'the layer has no dev.cosignproject.cosign/signature annotation');
    const none = await verifyCosignSignature(layer(payload, signature), SUBJECT, trustOf({}), now);
    assert.equal(none.verified, false);
    assert.equal(none.reason, 'no cosign public key is configured and the signature carries no certificate');
  });

  it('proves the signing time from the Rekor bundle, and refuses a bad SignedEntryTimestamp', async () => {
    const rekor = new FakeRekor();
    const integrated = Date.parse('2026-05-01T12:00:00Z') / 1000;
    const annotation = rekor.bundleAnnotation(payload, signature, pemOf(signer.publicKey), integrated);
    const withRekor = trustOf({
      keys: trust.keys,
      keyless: [keyless({ name: 'corp', fulcioRoots: [CA.pem], rekorKeys: [rekor.publicKeyPem] })],
    });
    const good = await verifyCosignSignature(
      layer(payload, signature, { [ANNOTATION_BUNDLE]: annotation }),
      SUBJECT,
      withRekor,
      now,
    );
    assert.equal(good.verified, true, good.reason ?? '');
    assert.equal(good.signedAt, '2026-05-01T12:00:00.000Z');

    const bad = await verifyCosignSignature(
      layer(payload, signature, { [ANNOTATION_BUNDLE]: corruptSet(annotation) }),
      SUBJECT,
      withRekor,
      now,
    );
    assert.equal(bad.verified, false);
    assert.equal(
      bad.reason,
      'the transparency log entry does not verify: inclusion promise could not be verified',
    );

    const unknownLog = await verifyCosignSignature(
      layer(payload, signature, { [ANNOTATION_BUNDLE]: annotation }),
      SUBJECT,
      trust,
      now,
    );
    const malformed = await verifyCosignSignature(
      layer(payload, signature, { [ANNOTATION_BUNDLE]: '{not json' }),
      SUBJECT,
      withRekor,
      now,
    );
    assert.equal(malformed.verified, false);
    assert.match(malformed.reason ?? '', /^the signature's annotations are malformed: /);

    assert.equal(unknownLog.verified, true);
    assert.deepEqual(unknownLog.notes, ['transparency log entry not checked: no Rekor key configured']);
    assert.equal(unknownLog.signedAt, null);
  });
});

const CA = issue({
  subjectName: 'throwaway fulcio root',
  ca: true,
  notBefore: new Date('2024-01-01T00:00:00Z'),
  notAfter: new Date('2034-01-01T00:00:00Z'),
});
const VALID_FROM = new Date('2025-01-01T00:00:00Z');
const VALID_TO = new Date('2025-01-01T00:10:00Z');
const INTEGRATED = Date.parse('2025-01-01T00:01:00Z') / 1000;

function leafFrom(ca: Issued, san = 'dev@example.com', oidcIssuer = ISSUER): Issued {
  return issue({
    subjectName: '',
    issuer: ca,
    issuerName: 'throwaway fulcio root',
    san,
    oidcIssuer,
    notBefore: VALID_FROM,
    notAfter: VALID_TO,
    serial: 4711,
  });
}

/** Flips a byte inside the SignedEntryTimestamp of a cosign bundle annotation. */
function corruptSet(annotation: string): string {
  const parsed = JSON.parse(annotation) as { SignedEntryTimestamp: string };
  const set = Buffer.from(parsed.SignedEntryTimestamp, 'base64');
  set[set.length - 3] = (set[set.length - 3] ?? 0) ^ 0x01;
  return JSON.stringify({ ...parsed, SignedEntryTimestamp: set.toString('base64') });
}

describe('cosign classic signatures, keyless', () => {
  const rekor = new FakeRekor();
  const leaf = leafFrom(CA);
  const payload = simpleSigningPayload(REFERENCE, DIGEST);
  const signature = sign('sha256', payload, leaf.key);
  const layer = (extra: Record<string, string> = {}, bytes = payload, sig = signature, cert = leaf) => ({
    payload: bytes,
    annotations: {
      [ANNOTATION_SIGNATURE]: sig.toString('base64'),
      [ANNOTATION_CERTIFICATE]: cert.pem,
      [ANNOTATION_BUNDLE]: rekor.bundleAnnotation(bytes, sig, cert.pem, INTEGRATED),
      ...extra,
    },
  });
  const corp = (partial: Partial<KeylessTrust> = {}): CosignTrust =>
    trustOf({
      keyless: [
        keyless({ name: 'corp', fulcioRoots: [CA.pem], rekorKeys: [rekor.publicKeyPem], ...partial }),
      ],
    });
  // Long after the ten-minute certificate expired: only the Rekor entry's time makes it count.
  const later = new Date('2026-06-01T00:00:00Z');

  it('verifies the chain, the signature, the identity and the signed time offline', async () => {
    const verdict = await verifyCosignSignature(layer(), SUBJECT, corp(), later);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.equal(verdict.signer, 'dev@example.com');
    assert.equal(verdict.fingerprint, `sha256:${sha256(leaf.der)}`);
    assert.equal(verdict.signedAt, '2025-01-01T00:01:00.000Z');
    assert.deepEqual(verdict.notes, [
      'certificate transparency (SCT) not checked: no CT log key configured',
      'certificate revocation not checked (offline)',
    ]);
  });

  it('accepts identities given as regular expressions', async () => {
    const trust = corp({
      identities: [{ subjectRegExp: '^[a-z]+@example\\.com$', issuerRegExp: '^https://accounts\\.' }],
    });
    const verdict = await verifyCosignSignature(layer(), SUBJECT, trust, later);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
  });

  it('refuses another identity (SAN)', async () => {
    const trust = corp({ identities: [{ subject: 'release@example.com', issuer: ISSUER }] });
    const verdict = await verifyCosignSignature(layer(), SUBJECT, trust, later);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      `the certificate identity dev@example.com issued by ${ISSUER} matches no identity accepted by corp`,
    );
    assert.equal(verdict.fingerprint, `sha256:${sha256(leaf.der)}`);
  });

  it('refuses another OIDC issuer', async () => {
    const trust = corp({
      identities: [{ subject: 'dev@example.com', issuer: 'https://token.actions.githubusercontent.com' }],
    });
    const verdict = await verifyCosignSignature(layer(), SUBJECT, trust, later);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      `the certificate identity dev@example.com issued by ${ISSUER} matches no identity accepted by corp`,
    );
  });

  it('refuses a certificate that does not chain to the configured root', async () => {
    const rogueCa = issue({
      subjectName: 'throwaway fulcio root',
      ca: true,
      notBefore: new Date('2024-01-01T00:00:00Z'),
      notAfter: new Date('2034-01-01T00:00:00Z'),
    });
    const rogue = leafFrom(rogueCa);
    const sig = sign('sha256', payload, rogue.key);
    const verdict = await verifyCosignSignature(layer({}, payload, sig, rogue), SUBJECT, corp(), later);
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the certificate does not chain to a trusted Fulcio root');
  });

  it('uses the chain annotation for intermediates only, never as a trust anchor', async () => {
    const intermediate = issue({
      subjectName: 'throwaway fulcio intermediate',
      issuer: CA,
      issuerName: 'throwaway fulcio root',
      ca: true,
      notBefore: new Date('2024-01-01T00:00:00Z'),
      notAfter: new Date('2034-01-01T00:00:00Z'),
      serial: 2,
    });
    const below = issue({
      subjectName: '',
      issuer: intermediate,
      issuerName: 'throwaway fulcio intermediate',
      san: 'dev@example.com',
      oidcIssuer: ISSUER,
      notBefore: VALID_FROM,
      notAfter: VALID_TO,
    });
    const sig = sign('sha256', payload, below.key);
    const signed = layer({ [ANNOTATION_CHAIN]: intermediate.pem + CA.pem }, payload, sig, below);
    const verdict = await verifyCosignSignature(signed, SUBJECT, corp(), later);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.equal(verdict.signer, 'dev@example.com');

    const selfRooted = issue({
      subjectName: 'throwaway fulcio root',
      ca: true,
      notBefore: new Date('2024-01-01T00:00:00Z'),
      notAfter: new Date('2034-01-01T00:00:00Z'),
    });
    const rogue = leafFrom(selfRooted);
    const rogueSig = sign('sha256', payload, rogue.key);
    const claimed = layer({ [ANNOTATION_CHAIN]: selfRooted.pem }, payload, rogueSig, rogue);
    const refused = await verifyCosignSignature(claimed, SUBJECT, corp(), later);
    assert.equal(refused.verified, false);
    assert.equal(refused.reason, 'the certificate does not chain to a trusted Fulcio root');
  });

  it('refuses a certificate that had expired when the entry was logged', async () => {
    const lateEntry = rekor.bundleAnnotation(
      payload,
      signature,
      leaf.pem,
      Date.parse('2025-01-01T01:00:00Z') / 1000,
    );
    const verdict = await verifyCosignSignature(
      layer({ [ANNOTATION_BUNDLE]: lateEntry }),
      SUBJECT,
      corp(),
      later,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the certificate is not valid at the signing time 2025-01-01T01:00:00.000Z: it (or its chain) expired or is not yet valid',
    );
  });

  it('refuses an expired certificate without a signed time, and requires one unless configured otherwise', async () => {
    const unlogged = {
      payload,
      annotations: {
        [ANNOTATION_SIGNATURE]: signature.toString('base64'),
        [ANNOTATION_CERTIFICATE]: leaf.pem,
      },
    };
    const required = await verifyCosignSignature(unlogged, SUBJECT, corp(), later);
    assert.equal(required.verified, false);
    assert.equal(
      required.reason,
      'no verified signing time (transparency log entry or RFC 3161 timestamp), which this trust configuration (corp) requires',
    );
    const expired = await verifyCosignSignature(unlogged, SUBJECT, corp({ requireSignedTime: false }), later);
    assert.equal(expired.verified, false);
    assert.equal(
      expired.reason,
      'the certificate is not valid now (2026-06-01T00:00:00.000Z): it (or its chain) expired or is not yet valid',
    );
    const fresh = await verifyCosignSignature(
      unlogged,
      SUBJECT,
      corp({ requireSignedTime: false }),
      new Date('2025-01-01T00:05:00Z'),
    );
    assert.equal(fresh.verified, true, fresh.reason ?? '');
    assert.equal(fresh.signedAt, null);
    assert.ok(
      fresh.notes.includes('signing time not proven: the certificate was checked at the verification time'),
    );
  });

  it('refuses a bad SignedEntryTimestamp', async () => {
    const bad = corruptSet(rekor.bundleAnnotation(payload, signature, leaf.pem, INTEGRATED));
    const verdict = await verifyCosignSignature(layer({ [ANNOTATION_BUNDLE]: bad }), SUBJECT, corp(), later);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the transparency log entry does not verify: inclusion promise could not be verified',
    );
  });

  it('refuses a Rekor entry signed by an unknown log', async () => {
    const elsewhere = new FakeRekor().bundleAnnotation(payload, signature, leaf.pem, INTEGRATED);
    const verdict = await verifyCosignSignature(
      layer({ [ANNOTATION_BUNDLE]: elsewhere }),
      SUBJECT,
      corp(),
      later,
    );
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the transparency log entry does not verify: inclusion promise could not be verified',
    );
  });

  it('refuses a tampered payload, and an authentic one naming another digest', async () => {
    const tampered = Buffer.from(payload.toString('utf8').replace('team/app', 'team/evil'));
    const forged = await verifyCosignSignature(
      {
        payload: tampered,
        annotations: { ...layer().annotations },
      },
      SUBJECT,
      corp(),
      later,
    );
    assert.equal(forged.verified, false);
    // The Rekor entry records the original payload's hash, so the tampering shows there first.
    assert.equal(forged.reason, 'the transparency log entry does not verify: digest mismatch');

    const elsewhere = simpleSigningPayload(REFERENCE, OTHER_DIGEST);
    const verdict = await verifyCosignSignature(
      layer({}, elsewhere, sign('sha256', elsewhere, leaf.key)),
      SUBJECT,
      corp(),
      later,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, `the payload names another digest (${OTHER_DIGEST}), not ${DIGEST}`);
    assert.equal(verdict.signer, 'dev@example.com');
  });

  it('refuses a keyless signature when only keys are configured', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verdict = await verifyCosignSignature(
      layer(),
      SUBJECT,
      trustOf({ keys: [{ name: 'release', publicKey: pemOf(publicKey) }] }),
      later,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the signature does not verify with any configured key (release)');
  });
});

describe('sigstore bundles', () => {
  const conformance = (name: string): Buffer => fixture('conformance-intoto-key', name);
  const staging = (name: string): Buffer => fixture('sigstore-go-github-staging', name);
  const conformanceSubject: SignedSubject = {
    repository: 'team/app',
    digest: 'sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf' as Digest,
  };
  const stagingSubject: SignedSubject = {
    repository: 'team/app',
    digest:
      'sha512:76176ffa33808b54602c7c35de5c6e9a4deb96066dba6533f50ac234f4f1f4c6b3527515dc17c06fbe2860030f410eee69ea20079bd3a2c6f3dcf3b329b10751' as Digest,
  };
  const stagingTrust = (partial: Partial<KeylessTrust> = {}): CosignTrust =>
    trustOf({
      keyless: [
        keyless({
          name: 'github-staging',
          trustedRoot: JSON.parse(staging('trusted-root-github-staging.json').toString('utf8')) as Record<
            string,
            unknown
          >,
          identities: [{ subject: 'cody@soyland.com', issuer: 'https://github.com/login/oauth' }],
          ...partial,
        }),
      ],
    });
  const now = new Date('2026-06-01T00:00:00Z');

  it('verifies the conformance key-based in-toto bundle with its key and its log (inclusion proof)', async () => {
    const trust = trustOf({
      keys: [{ name: 'conformance', publicKey: conformance('key.pub').toString('utf8') }],
      keyless: [
        keyless({
          name: 'conformance-log',
          trustedRoot: JSON.parse(conformance('trusted_root.json').toString('utf8')) as Record<
            string,
            unknown
          >,
        }),
      ],
    });
    const verdict = await verifySigstoreBundle(
      conformance('bundle.sigstore.json'),
      conformanceSubject,
      trust,
      now,
    );
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.equal(verdict.format, 'sigstore-bundle');
    assert.equal(verdict.signer, 'conformance');
    assert.equal(
      verdict.fingerprint,
      `sha256:${sha256(Buffer.from(conformance('key.pub').toString().split('\n').slice(1, 3).join(''), 'base64'))}`,
    );
    assert.deepEqual(verdict.notes, [
      'an attestation of predicate type https://example.com/test, not a cosign image signature',
    ]);

    const otherDigest = await verifySigstoreBundle(conformance('bundle.sigstore.json'), SUBJECT, trust, now);
    assert.equal(otherDigest.verified, false);
    assert.equal(
      otherDigest.reason,
      `the statement names another digest (${conformanceSubject.digest}), not ${DIGEST}`,
    );

    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const wrongKey = await verifySigstoreBundle(
      conformance('bundle.sigstore.json'),
      conformanceSubject,
      trustOf({ keys: [{ name: 'other', publicKey: pemOf(publicKey) }] }),
      now,
    );
    assert.equal(wrongKey.verified, false);
    assert.equal(wrongKey.reason, 'the signature does not verify with any configured key (other)');
  });

  it('refuses the conformance bundle with a tampered statement', async () => {
    const bundle = JSON.parse(conformance('bundle.sigstore.json').toString('utf8')) as {
      dsseEnvelope: { payload: string };
    };
    const statement = Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8');
    bundle.dsseEnvelope.payload = Buffer.from(statement.replace('a.txt', 'b.txt')).toString('base64');
    const verdict = await verifySigstoreBundle(
      Buffer.from(JSON.stringify(bundle)),
      conformanceSubject,
      trustOf({ keys: [{ name: 'conformance', publicKey: conformance('key.pub').toString('utf8') }] }),
      now,
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the signature does not verify with any configured key (conformance)');
  });

  it("verifies sigstore-go's GitHub staging bundle (Fulcio certificate, RFC 3161 timestamp) with its trusted root", async () => {
    const verdict = await verifySigstoreBundle(
      staging('bundle-github-staging.json'),
      stagingSubject,
      stagingTrust(),
      now,
    );
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.equal(verdict.signer, 'cody@soyland.com');
    assert.equal(verdict.signedAt, '2023-05-16T19:58:49.000Z');
    assert.match(verdict.fingerprint ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.ok(verdict.notes.includes('certificate revocation not checked (offline)'));
  });

  it('refuses the staging bundle for another identity or issuer', async () => {
    const san = await verifySigstoreBundle(
      staging('bundle-github-staging.json'),
      stagingSubject,
      stagingTrust({
        identities: [{ subject: 'someone@soyland.com', issuer: 'https://github.com/login/oauth' }],
      }),
      now,
    );
    assert.equal(san.verified, false);
    assert.equal(
      san.reason,
      'the certificate identity cody@soyland.com issued by https://github.com/login/oauth matches no identity accepted by github-staging',
    );
    const issuer = await verifySigstoreBundle(
      staging('bundle-github-staging.json'),
      stagingSubject,
      stagingTrust({
        identities: [{ subject: 'cody@soyland.com', issuerRegExp: '^https://accounts\\.google\\.com$' }],
      }),
      now,
    );
    assert.equal(issuer.verified, false);
    assert.match(issuer.reason ?? '', /matches no identity accepted by github-staging$/);
  });

  it('refuses the staging bundle without its timestamp: no signed time, or an expired certificate now', async () => {
    const bundle = JSON.parse(staging('bundle-github-staging.json').toString('utf8')) as {
      verificationMaterial: { timestampVerificationData: { rfc3161Timestamps: unknown[] } };
    };
    bundle.verificationMaterial.timestampVerificationData.rfc3161Timestamps = [];
    const bytes = Buffer.from(JSON.stringify(bundle));
    const required = await verifySigstoreBundle(bytes, stagingSubject, stagingTrust(), now);
    assert.equal(required.verified, false);
    assert.equal(
      required.reason,
      'no verified signing time (transparency log entry or RFC 3161 timestamp), which this trust configuration (github-staging) requires',
    );
    const expired = await verifySigstoreBundle(
      bytes,
      stagingSubject,
      stagingTrust({ requireSignedTime: false }),
      now,
    );
    assert.equal(expired.verified, false);
    assert.equal(
      expired.reason,
      'the certificate is not valid now (2026-06-01T00:00:00.000Z): it (or its chain) expired or is not yet valid',
    );
  });

  it('refuses the staging bundle under a root it does not chain to', async () => {
    const verdict = await verifySigstoreBundle(
      staging('bundle-github-staging.json'),
      stagingSubject,
      trustOf({
        keyless: [
          keyless({
            name: 'corp',
            fulcioRoots: [CA.pem],
            timestampAuthorities: [],
            identities: [{ subject: 'cody@soyland.com', issuer: 'https://github.com/login/oauth' }],
            requireSignedTime: false,
          }),
        ],
      }),
      new Date('2023-05-16T20:00:00Z'),
    );
    assert.equal(verdict.verified, false);
    assert.equal(verdict.reason, 'the certificate does not chain to a trusted Fulcio root');
    assert.ok(verdict.notes.includes('RFC 3161 timestamp not checked: no timestamp authority configured'));
  });

  it('verifies a bundle of what cosign 3 signs for an image (in-toto statement, cosign/sign/v1) and refuses a bad SET', async () => {
    const rekor = new FakeRekor();
    const leaf = leafFrom(CA);
    const statement = Buffer.from(
      JSON.stringify({
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ name: REFERENCE, digest: { sha256: DIGEST.slice('sha256:'.length) } }],
        predicateType: COSIGN_SIGN_PREDICATE_TYPE,
        predicate: {},
      }),
    );
    const payloadType = 'application/vnd.in-toto+json';
    const pae = Buffer.concat([
      Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${statement.length} `),
      statement,
    ]);
    const signature = sign('sha256', pae, leaf.key);
    const entry = JSON.parse(rekor.dsseAnnotation(statement, signature, leaf.pem, INTEGRATED)) as {
      SignedEntryTimestamp: string;
      Payload: { body: string; integratedTime: number; logIndex: number; logID: string };
    };
    const bundleOf = (set: string) =>
      Buffer.from(
        JSON.stringify({
          // v0.1, whose log entries may carry only an inclusion promise (v0.3 requires an inclusion proof, which
          // the conformance fixture covers).
          mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
          verificationMaterial: {
            x509CertificateChain: { certificates: [{ rawBytes: leaf.der.toString('base64') }] },
            tlogEntries: [
              {
                logIndex: String(entry.Payload.logIndex),
                logId: { keyId: Buffer.from(entry.Payload.logID, 'hex').toString('base64') },
                kindVersion: { kind: 'dsse', version: '0.0.1' },
                integratedTime: String(entry.Payload.integratedTime),
                inclusionPromise: { signedEntryTimestamp: set },
                canonicalizedBody: entry.Payload.body,
              },
            ],
            timestampVerificationData: { rfc3161Timestamps: [] },
          },
          dsseEnvelope: {
            payload: statement.toString('base64'),
            payloadType,
            signatures: [{ sig: signature.toString('base64'), keyid: '' }],
          },
        }),
      );
    const trust = trustOf({
      keyless: [keyless({ name: 'corp', fulcioRoots: [CA.pem], rekorKeys: [rekor.publicKeyPem] })],
    });
    const verdict = await verifySigstoreBundle(bundleOf(entry.SignedEntryTimestamp), SUBJECT, trust, now);
    assert.equal(verdict.verified, true, verdict.reason ?? '');
    assert.equal(verdict.signer, 'dev@example.com');
    assert.equal(verdict.signedAt, '2025-01-01T00:01:00.000Z');
    assert.ok(!verdict.notes.some((n) => n.startsWith('an attestation')));

    const badSet = JSON.parse(corruptSet(JSON.stringify(entry))) as { SignedEntryTimestamp: string };
    const bad = await verifySigstoreBundle(bundleOf(badSet.SignedEntryTimestamp), SUBJECT, trust, now);
    assert.equal(bad.verified, false);
    assert.equal(
      bad.reason,
      'the transparency log entry does not verify: inclusion promise could not be verified',
    );

    const other = await verifySigstoreBundle(
      bundleOf(entry.SignedEntryTimestamp),
      { ...SUBJECT, digest: OTHER_DIGEST },
      trust,
      now,
    );
    assert.equal(other.verified, false);
    assert.equal(other.reason, `the statement names another digest (${DIGEST}), not ${OTHER_DIGEST}`);
  });

  it('refuses what is not a bundle, and message-signature bundles', async () => {
    const junk = await verifySigstoreBundle(Buffer.from('{"mediaType":"nope"}'), SUBJECT, trustOf({}), now);
    assert.equal(junk.verified, false);
    assert.match(junk.reason ?? '', /^not a sigstore bundle: /);
    const message = Buffer.from(
      JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: {
          publicKey: { hint: 'k' },
          tlogEntries: [],
          timestampVerificationData: { rfc3161Timestamps: [] },
        },
        messageSignature: {
          messageDigest: {
            algorithm: 'SHA2_256',
            digest: Buffer.from(DIGEST.slice(7), 'hex').toString('base64'),
          },
          signature: Buffer.from('sig').toString('base64'),
        },
      }),
    );
    const verdict = await verifySigstoreBundle(message, SUBJECT, trustOf({}), now);
    assert.equal(verdict.verified, false);
    assert.equal(
      verdict.reason,
      'the bundle holds a message signature over bytes that are not available here; only DSSE (in-toto statement) bundles, as cosign writes for images, can be verified',
    );
  });
});
