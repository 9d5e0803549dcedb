/**
 * The offline checks of a sigstore signed entity (a bundle, or a cosign classic signature converted to one), built
 * from @sigstore/verify's pieces so that the configured trust and the caller's clock decide:
 *
 * - trust material from a `KeylessTrust` (a `trusted_root.json` document or PEM lists);
 * - transparency log entries (inclusion promise = SignedEntryTimestamp, or inclusion proof with a signed
 *   checkpoint) and the entry body matching the signature;
 * - RFC 3161 timestamps;
 * - the certificate chain to a Fulcio root at every proven time (or at `now` when no time is proven and the
 *   configuration allows it), CT log SCTs when CT log keys are configured, the signature, the identity.
 *
 * Why not `Verifier.verify` as is: it checks certificates only at proven times (it cannot fall back to `now` when
 * `requireSignedTime` is false) and it fails a certificate with an SCT when no CT log key is configured, which the
 * PEM-list configuration (`fulcioRoots` only) cannot avoid.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { Bundle, TransparencyLogEntry } from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import { toSignedEntity, type SignedEntity } from '@sigstore/verify';
import { verifySCTs } from '@sigstore/verify/dist/key/sct.js';
import { getTSATimestamp } from '@sigstore/verify/dist/timestamp/index.js';
import { verifyTLogBody, verifyTLogInclusion } from '@sigstore/verify/dist/tlog/index.js';
import type { CertAuthority, TLogAuthority } from '@sigstore/verify/dist/trust/index.js';
import { anyIdentityMatches } from './identity.ts';
import { pemBlocks, sha256Fingerprint } from './pem.ts';
import type { CosignTrust, KeylessTrust } from './trust.ts';

const BEGINNING_OF_TIME = new Date(0);
const END_OF_TIME = new Date(8_640_000_000_000_000);
const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

/** The trust material of one keyless configuration. */
export interface KeylessMaterial {
  readonly certificateAuthorities: CertAuthority[];
  readonly timestampAuthorities: CertAuthority[];
  readonly tlogs: TLogAuthority[];
  readonly ctlogs: TLogAuthority[];
}

/** The outcome of the keyless checks: the signer's identity and proven time, or why it failed. */
export type KeylessOutcome =
  | {
      readonly ok: true;
      readonly signer: string | null;
      readonly fingerprint: string;
      readonly signedAt: string | null;
      readonly notes: string[];
    }
  | {
      readonly ok: false;
      readonly reason: string;
      readonly fingerprint: string | null;
      readonly notes: string[];
    };

/**
 * The trust material of `keyless`: its trusted root's authorities, plus the PEM lists (`fulcioRoots` as one
 * certificate authority, each `rekorKeys` entry as a log whose ID is the SHA-256 of its SPKI DER, as Rekor's log
 * IDs are, each `timestampAuthorities` entry as one chain). Throws for a malformed trusted root or PEM.
 */
export function keylessMaterial(keyless: KeylessTrust): KeylessMaterial {
  const root = keyless.trustedRoot === undefined ? undefined : trustedRootMaterial(keyless.trustedRoot);
  const fulcio = (keyless.fulcioRoots ?? []).flatMap((p) => pemBlocks(p, 'CERTIFICATE'));
  const rekor = (keyless.rekorKeys ?? []).flatMap((p) => pemBlocks(p, 'PUBLIC KEY'));
  return {
    certificateAuthorities: [
      ...(root?.certificateAuthorities ?? []),
      ...(fulcio.length > 0 ? [certAuthority(fulcio)] : []),
    ],
    timestampAuthorities: [
      ...(root?.timestampAuthorities ?? []),
      ...(keyless.timestampAuthorities ?? []).map((p) => certAuthority(pemBlocks(p, 'CERTIFICATE'))),
    ],
    tlogs: [...(root?.tlogs ?? []), ...rekor.map((der) => spkiLog(der))],
    ctlogs: root?.ctlogs ?? [],
  };
}

/** The Rekor logs of every keyless configuration: key-based signatures' log entries are checked against them. */
export function allRekorLogs(trust: CosignTrust): TLogAuthority[] {
  const logs: TLogAuthority[] = [];
  for (const keyless of trust.keyless) {
    try {
      logs.push(...keylessMaterial(keyless).tlogs);
    } catch {
      // A malformed configuration contributes nothing; its own keyless check reports the problem.
    }
  }
  return logs;
}

/**
 * Checks the transparency log entries and RFC 3161 timestamps of `entity` and returns the proven times (integrated
 * times of entries with a verified inclusion promise, verified timestamp times). Throws with a user-facing message
 * for an entry or timestamp that does not verify. Entries are skipped, with a note, when no Rekor key is known.
 */
export function checkTimes(
  entity: SignedEntity,
  tlogs: TLogAuthority[],
  timestampAuthorities: CertAuthority[],
  notes: string[],
): Date[] {
  const times: Date[] = [];
  if (entity.tlogEntries.length > 0 && tlogs.length === 0) {
    notes.push('transparency log entry not checked: no Rekor key configured');
  } else {
    for (const entry of entity.tlogEntries) {
      try {
        verifyTLogInclusion(entry, tlogs);
        verifyTLogBody(entry, entity.signature);
      } catch (err) {
        throw new Error(`the transparency log entry does not verify: ${describe(err)}`);
      }
      const time = promisedTime(entry);
      if (time !== null) times.push(time);
    }
  }
  for (const ts of entity.timestamps) {
    if (ts.$case !== 'timestamp-authority') continue;
    if (timestampAuthorities.length === 0) {
      notes.push('RFC 3161 timestamp not checked: no timestamp authority configured');
      continue;
    }
    try {
      times.push(getTSATimestamp(ts.timestamp, entity.signature.signature, timestampAuthorities).timestamp);
    } catch (err) {
      throw new Error(`the RFC 3161 timestamp does not verify: ${describe(err)}`);
    }
  }
  return times;
}

/**
 * Runs every offline check of a certificate-signed `bundle` against one keyless configuration; `artifact` is the
 * signed bytes for a message signature. Never throws.
 */
export function checkKeyless(
  bundle: Bundle,
  artifact: Buffer | undefined,
  keyless: KeylessTrust,
  now: Date,
): KeylessOutcome {
  const notes: string[] = [];
  let fingerprint: string | null = null;
  try {
    const entity = toSignedEntity(bundle, artifact);
    if (entity.key.$case !== 'certificate') {
      return { ok: false, reason: 'the signature carries no certificate', fingerprint, notes };
    }
    const leaf = entity.key.certificate;
    const content = bundle.verificationMaterial.content;
    const intermediates =
      content.$case === 'x509CertificateChain'
        ? content.x509CertificateChain.certificates
            .slice(1)
            .map((c) => X509Certificate.parse(Buffer.from(c.rawBytes)))
        : [];
    fingerprint = sha256Fingerprint(leaf.root.toDER());
    const material = keylessMaterial(keyless);
    let times: Date[];
    try {
      times = checkTimes(entity, material.tlogs, material.timestampAuthorities, notes);
    } catch (err) {
      return { ok: false, reason: describe(err), fingerprint, notes };
    }
    const proven = times.length > 0;
    if (!proven) {
      if (keyless.requireSignedTime) {
        return {
          ok: false,
          reason:
            'no verified signing time (transparency log entry or RFC 3161 timestamp), which this trust ' +
            `configuration (${keyless.name}) requires`,
          fingerprint,
          notes,
        };
      }
      notes.push('signing time not proven: the certificate was checked at the verification time');
      times = [now];
    }
    let path: X509Certificate[] = [];
    for (const time of times) {
      const chained = certificatePath(leaf, intermediates, material.certificateAuthorities, time);
      if (typeof chained === 'string') {
        const when = proven ? `at the signing time ${time.toISOString()}` : `now (${time.toISOString()})`;
        return { ok: false, reason: chained.replace('%WHEN%', when), fingerprint, notes };
      }
      path = chained;
    }
    const issuer = path[1];
    if (material.ctlogs.length > 0 && issuer !== undefined) {
      try {
        if (verifySCTs(leaf, issuer, material.ctlogs).length === 0) {
          return {
            ok: false,
            reason: 'the certificate has no signed certificate timestamp (SCT)',
            fingerprint,
            notes,
          };
        }
      } catch (err) {
        return {
          ok: false,
          reason: `the certificate's SCT does not verify: ${describe(err)}`,
          fingerprint,
          notes,
        };
      }
    } else {
      notes.push('certificate transparency (SCT) not checked: no CT log key configured');
    }
    if (
      !entity.signature.verifySignature(createPublicKey({ key: leaf.publicKey, format: 'der', type: 'spki' }))
    ) {
      return {
        ok: false,
        reason: "the signature does not verify with the certificate's key",
        fingerprint,
        notes,
      };
    }
    const identity = { subject: leaf.subjectAltName, issuer: fulcioIssuer(leaf) };
    if (!anyIdentityMatches(keyless.identities, identity)) {
      return {
        ok: false,
        reason:
          `the certificate identity ${identity.subject ?? '(no SAN)'} issued by ${identity.issuer ?? '(no issuer)'} ` +
          `matches no identity accepted by ${keyless.name}`,
        fingerprint,
        notes,
      };
    }
    notes.push('certificate revocation not checked (offline)');
    const earliest = proven ? new Date(Math.min(...times.map((t) => t.getTime()))) : null;
    return {
      ok: true,
      signer: identity.subject ?? null,
      fingerprint,
      signedAt: earliest?.toISOString() ?? null,
      notes,
    };
  } catch (err) {
    return { ok: false, reason: `the signature cannot be checked: ${describe(err)}`, fingerprint, notes };
  }
}

/** The OIDC issuer in a Fulcio certificate: extension .8 (a DER UTF8String), else the older .1 (raw bytes). */
export function fulcioIssuer(cert: X509Certificate): string | undefined {
  const v2 = cert.extension(OID_FULCIO_ISSUER_V2);
  if (v2 !== undefined) return v2.valueObj.subs[0]?.value.toString('utf8');
  return cert.extension(OID_FULCIO_ISSUER_V1)?.value.toString('utf8');
}

/** An error's message with its cause's, for reasons. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}

/**
 * The path from `leaf` up to a certificate of a certificate authority valid at `time`, through the signature's own
 * (untrusted) intermediates if needed, or why there is none (with `%WHEN%` for the time). Every certificate of a
 * trusted root's `certChain` is trust material, so the path may end at an intermediate: trusted roots list chains
 * that stop there (GitHub's does), and sigstore-go accepts them. Issuers must be CAs within their path length;
 * every certificate must be valid at `time`.
 */
function certificatePath(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  authorities: CertAuthority[],
  time: Date,
): X509Certificate[] | string {
  let sawExpired = false;
  for (const ca of authorities) {
    if (time < ca.validFor.start || time > ca.validFor.end) continue;
    const trusted = (c: X509Certificate): boolean => ca.certChain.some((t) => t.equals(c));
    const path = [leaf];
    for (let current = leaf; path.length <= 10;) {
      // Above a trusted certificate only trusted ones may follow.
      const candidates = trusted(current) ? ca.certChain : [...ca.certChain, ...intermediates];
      const issuer = candidates.find(
        (c) => !c.equals(current) && c.subject.equals(current.issuer) && verifies(current, c),
      );
      if (issuer === undefined || !issuer.isCA) break;
      path.push(issuer);
      current = issuer;
      if (issuer.subject.equals(issuer.issuer)) break;
    }
    while (path.length > 1 && !trusted(path[path.length - 1] as X509Certificate)) path.pop();
    if (path.length < 2) continue;
    const withinLength = path.every((cert, i) => {
      const limit = cert.extBasicConstraints?.pathLenConstraint;
      return i === 0 || limit === undefined || limit >= i - 1;
    });
    if (!withinLength) continue;
    if (!path.every((cert) => cert.validForDate(time))) {
      sawExpired = true;
      continue;
    }
    return path;
  }
  return sawExpired
    ? 'the certificate is not valid %WHEN%: it (or its chain) expired or is not yet valid'
    : 'the certificate does not chain to a trusted Fulcio root';
}

function verifies(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer);
  } catch {
    return false;
  }
}

function promisedTime(entry: TransparencyLogEntry): Date | null {
  if (entry.inclusionPromise === undefined) return null;
  const seconds = Number(entry.integratedTime);
  return seconds > 0 ? new Date(seconds * 1000) : null;
}

function certAuthority(ders: Buffer[], start = BEGINNING_OF_TIME, end = END_OF_TIME): CertAuthority {
  return { certChain: ders.map((der) => X509Certificate.parse(Buffer.from(der))), validFor: { start, end } };
}

function spkiLog(der: Buffer): TLogAuthority {
  return {
    logID: createHash('sha256').update(der).digest(),
    baseURL: '',
    publicKey: createPublicKey({ key: der, format: 'der', type: 'spki' }),
    validFor: { start: BEGINNING_OF_TIME, end: END_OF_TIME },
  };
}

interface RootJson {
  certificateAuthorities?: { certChain?: { certificates?: { rawBytes?: string }[] }; validFor?: Validity }[];
  timestampAuthorities?: { certChain?: { certificates?: { rawBytes?: string }[] }; validFor?: Validity }[];
  tlogs?: LogJson[];
  ctlogs?: LogJson[];
}
interface Validity {
  start?: string;
  end?: string;
}
interface LogJson {
  baseUrl?: string;
  publicKey?: { rawBytes?: string; keyDetails?: string; validFor?: Validity };
  logId?: { keyId?: string };
  checkpointKeyId?: { keyId?: string };
}

/** A sigstore `trusted_root.json` (the protobuf-specs JSON form) as trust material. */
function trustedRootMaterial(document: Record<string, unknown>): KeylessMaterial {
  const root = document as RootJson;
  const cas = (list: RootJson['certificateAuthorities']): CertAuthority[] =>
    (list ?? []).map((ca) =>
      certAuthority(
        (ca.certChain?.certificates ?? []).map((c) => Buffer.from(c.rawBytes ?? '', 'base64')),
        date(ca.validFor?.start, BEGINNING_OF_TIME),
        date(ca.validFor?.end, END_OF_TIME),
      ),
    );
  const logs = (list: LogJson[] | undefined): TLogAuthority[] =>
    (list ?? []).map((log) => ({
      logID: Buffer.from(log.checkpointKeyId?.keyId ?? log.logId?.keyId ?? '', 'base64'),
      baseURL: log.baseUrl ?? '',
      publicKey: logKey(log),
      validFor: {
        start: date(log.publicKey?.validFor?.start, BEGINNING_OF_TIME),
        end: date(log.publicKey?.validFor?.end, END_OF_TIME),
      },
    }));
  return {
    certificateAuthorities: cas(root.certificateAuthorities),
    timestampAuthorities: cas(root.timestampAuthorities),
    tlogs: logs(root.tlogs),
    ctlogs: logs(root.ctlogs),
  };
}

function logKey(log: LogJson): KeyObject {
  const der = Buffer.from(log.publicKey?.rawBytes ?? '', 'base64');
  // PKCS1_* key details carry a bare RSAPublicKey rather than an SPKI structure.
  const pkcs1 = (log.publicKey?.keyDetails ?? '').startsWith('PKCS1_');
  return createPublicKey({ key: der, format: 'der', type: pkcs1 ? 'pkcs1' : 'spki' });
}

function date(text: string | undefined, fallback: Date): Date {
  if (text === undefined) return fallback;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? fallback : d;
}
