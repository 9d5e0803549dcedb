/**
 * The RFC 3161 timestamp countersignature of a Notary Project signature (`io.cncf.notary.timestampSignature`): a
 * TimeStampToken, i.e. a CMS SignedData (RFC 5652) whose content is a TSTInfo. Its message imprint is the hash of
 * the envelope's signature value, so a valid token proves the signature existed at the token's `genTime`.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { ASN1Obj } from '@sigstore/core';
import {
  chainsTo,
  EKU_TIME_STAMPING,
  leafProblem,
  parseCertificates,
  validityProblem,
  type ChainCertificate,
} from './x509-chain.ts';

const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_TST_INFO = '1.2.840.113549.1.9.16.1.4';
const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
const HASHES: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithms of SignerInfo: `rsaEncryption` signs with the SignerInfo's digest algorithm. */
const SIGNATURE_HASHES: Record<string, string | null> = {
  '1.2.840.113549.1.1.1': null,
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/** A verified timestamp: when, and by which TSA certificate. */
export interface VerifiedTimestamp {
  /** `TSTInfo.genTime`. */
  readonly time: Date;
  /** genTime minus and plus the accuracy (RFC 3161 section 2.4.2). */
  readonly lowerLimit: Date;
  readonly upperLimit: Date;
  readonly signer: ChainCertificate;
}

/** The baseline time-stamp policy of RFC 3628 section 5.2, whose accuracy is one second when none is stated. */
const BASELINE_POLICY = '0.4.0.2023.1.1';

/** The accuracy of a TSTInfo in milliseconds: its `accuracy` field, else 1 s for the baseline policy, else 0. */
function accuracyMs(tstInfo: ASN1Obj): number {
  // TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, accuracy OPTIONAL, ... }
  const accuracy = tstInfo.subs[5];
  if (accuracy === undefined || !accuracy.tag.isUniversal() || accuracy.tag.number !== 0x10) {
    return tstInfo.subs[1]?.toOID() === BASELINE_POLICY ? 1000 : 0;
  }
  let ms = 0;
  for (const field of accuracy.subs) {
    // Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER OPTIONAL, micros [1] INTEGER OPTIONAL }
    const value = Number(field.value.length > 0 ? BigInt(`0x${field.value.toString('hex')}`) : 0n);
    if (field.tag.isContextSpecific(0)) ms += value;
    else if (field.tag.isContextSpecific(1)) ms += value / 1000;
    else ms += value * 1000;
  }
  return ms;
}

function at(obj: ASN1Obj | undefined, what: string): ASN1Obj {
  if (obj === undefined) throw new Error(`the timestamp token has no ${what}`);
  return obj;
}

/**
 * Verifies `token` as a timestamp over `signature`, signed by a TSA whose chain reaches one of `anchors` and is
 * valid at the timestamp's time. Returns the time, or throws an Error saying what is wrong.
 */
export function verifyTimestampToken(
  token: Buffer,
  signature: Buffer,
  anchors: readonly ChainCertificate[],
): VerifiedTimestamp {
  const contentInfo = ASN1Obj.parseBuffer(token as Buffer<ArrayBuffer>);
  if (at(contentInfo.subs[0], 'content type').toOID() !== OID_SIGNED_DATA) {
    throw new Error('the timestamp token is not a CMS SignedData');
  }
  const signedData = at(at(contentInfo.subs[1], 'content').subs[0], 'SignedData');
  const encap = at(signedData.subs[2], 'encapsulated content');
  if (at(encap.subs[0], 'encapsulated content type').toOID() !== OID_TST_INFO) {
    throw new Error('the timestamp token does not hold a TSTInfo');
  }
  const tstInfoOctets = at(at(encap.subs[1], 'TSTInfo').subs[0], 'TSTInfo');
  const tstInfoDer = tstInfoOctets.value;
  const tstInfo = ASN1Obj.parseBuffer(Buffer.from(tstInfoDer) as Buffer<ArrayBuffer>);

  // The message imprint must be the hash of the envelope's signature.
  const imprint = at(tstInfo.subs[2], 'message imprint');
  const imprintHash =
    HASHES[at(at(imprint.subs[0], 'imprint algorithm').subs[0], 'imprint algorithm').toOID()];
  if (imprintHash === undefined) throw new Error('the timestamp uses an unsupported hash algorithm');
  const expected = createHash(imprintHash).update(signature).digest();
  if (!expected.equals(at(imprint.subs[1], 'hashed message').value)) {
    throw new Error('the timestamp is not over this signature');
  }
  const time = at(tstInfo.subs[4], 'genTime').toDate();

  const certificatesObj = signedData.subs.find((s, i) => i > 2 && s.tag.isContextSpecific(0));
  const certificates = parseCertificates((certificatesObj?.subs ?? []).map((c) => c.toDER()));
  const signerInfos = at(signedData.subs[signedData.subs.length - 1], 'signer infos');
  const signerInfo = at(signerInfos.subs[0], 'signer info');
  const sid = at(signerInfo.subs[1], 'signer identifier');
  const signer = certificates.find(
    (c) =>
      sid.subs.length === 2 &&
      c.asn.issuer.equals(at(sid.subs[0], 'issuer').value) &&
      c.asn.serialNumber.equals(at(sid.subs[1], 'serial').value),
  );
  if (signer === undefined) throw new Error('the timestamp token does not include its signing certificate');

  const digestHash =
    HASHES[at(at(signerInfo.subs[2], 'digest algorithm').subs[0], 'digest algorithm').toOID()];
  if (digestHash === undefined) throw new Error('the timestamp uses an unsupported digest algorithm');
  const signedAttrs = signerInfo.subs.find((s) => s.tag.isContextSpecific(0));
  if (signedAttrs === undefined) throw new Error('the timestamp token has no signed attributes');
  const attr = (oid: string): Buffer | undefined =>
    signedAttrs.subs.find((a) => a.subs[0]?.toOID() === oid)?.subs[1]?.subs[0]?.value;
  const messageDigest = attr(OID_MESSAGE_DIGEST);
  if (
    messageDigest === undefined ||
    !createHash(digestHash).update(tstInfoDer).digest().equals(messageDigest)
  ) {
    throw new Error('the timestamp signature does not cover its TSTInfo');
  }
  if (attr(OID_CONTENT_TYPE) === undefined)
    throw new Error('the timestamp token has no content-type attribute');
  const sigAlgIndex = signerInfo.subs.indexOf(signedAttrs) + 1;
  const sigAlgOid = at(
    at(signerInfo.subs[sigAlgIndex], 'signature algorithm').subs[0],
    'signature algorithm',
  ).toOID();
  const sigHash = SIGNATURE_HASHES[sigAlgOid];
  if (sigHash === undefined) throw new Error('the timestamp uses an unsupported signature algorithm');
  // RFC 5652 section 5.4: the signature covers the DER of the signed attributes with the SET OF tag.
  const signedBytes = signedAttrs.toDER();
  signedBytes[0] = 0x31;
  const sigValue = at(signerInfo.subs[sigAlgIndex + 1], 'signature').value;
  if (!cryptoVerify(sigHash ?? digestHash, signedBytes, signer.cert.publicKey, sigValue)) {
    throw new Error('the timestamp signature does not verify');
  }

  const problem = leafProblem(signer, EKU_TIME_STAMPING, 'time stamping');
  if (problem !== null) throw new Error(problem.replace('signing certificate', 'timestamping certificate'));
  const chain = tsaChain(signer, [...certificates, ...anchors]);
  if (!chainsTo(chain, anchors))
    throw new Error('the timestamping certificate is not trusted by a tsa trust store');
  const invalid = validityProblem(chain, time);
  if (invalid !== null)
    throw new Error(`at the timestamp's time, ${invalid.replace('the signing', 'the timestamping')}`);
  const accuracy = accuracyMs(tstInfo);
  const lowerLimit = new Date(time.getTime() - accuracy);
  const upperLimit = new Date(time.getTime() + accuracy);
  return { time, lowerLimit, upperLimit, signer };
}

/** The chain from `leaf` up through `pool`, following issuer names and signatures, stopping at a self-signed one. */
function tsaChain(leaf: ChainCertificate, pool: readonly ChainCertificate[]): ChainCertificate[] {
  const chain = [leaf];
  for (let current = leaf; chain.length < 10;) {
    if (current.cert.issuer === current.cert.subject) break;
    const issuer = pool.find(
      (c) =>
        c.cert.subject === current.cert.issuer && !chain.includes(c) && current.cert.verify(c.cert.publicKey),
    );
    if (issuer === undefined) break;
    chain.push(issuer);
    current = issuer;
  }
  return chain;
}
