/**
 * Image signatures as things to manage: a namespace's trust configuration (show, set, remove), recomputing its
 * verdicts, and listing the verdicts about one manifest. The trust configuration is for system administrators and
 * the namespace's admins (`admin-service.ts` decides who they are); the verdicts for anyone who may pull the
 * repository. Changes and recomputations are audited (`signatures.trust.set`, `signatures.trust.remove`,
 * `signatures.recompute`), as are refused ones; reads are not. The audit detail counts what is trusted and never
 * holds key or certificate texts. Used by the admin API (`http/admin/signatures.ts`) and the CLI
 * (`berth signatures`, as the system).
 */
import type { AuditLog } from '../auth/audit.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { StoredVerdict } from '../metadata/signature-store.ts';
import type { Digest } from '../oci/digest.ts';
import { namespaceOf } from '../metadata/usage-accounting.ts';
import type { SignatureService } from '../signing/service.ts';
import { NO_TRUST, parseSignatureTrust, SignatureTrustError, type SignatureTrust } from '../signing/trust.ts';
import type { SignatureFormat, SignatureTool } from '../signing/verdict.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { recordAction } from './audit-action.ts';
import { invalid } from './errors.ts';
import { resolveManifest } from './manifest-reference.ts';
import { checkNamespaceName } from './validation.ts';

/** A namespace's trust configuration as the API and the CLI show it. */
export interface SignatureTrustView {
  readonly namespace: string;
  /** The configuration with its defaults filled in (`mode: off`, nothing trusted, when never configured). */
  readonly trust: SignatureTrust;
  /** Grows by one on every change; 0 for a namespace never configured. */
  readonly revision: number;
  readonly updatedBy: string | null;
  readonly updatedAt: Date | null;
}

/** One verdict about a manifest: which signature, what verifying it against the namespace's trust concluded. */
export interface SignatureVerdictView {
  /** The signature manifest (cosign `.sig` manifest, sigstore bundle or Notation signature referrer). */
  readonly signatureDigest: Digest;
  /** Which signature within that manifest (its layer index). */
  readonly layer: number;
  readonly tool: SignatureTool;
  readonly format: SignatureFormat;
  readonly verified: boolean;
  readonly signer: string | null;
  readonly fingerprint: string | null;
  readonly reason: string | null;
  readonly notes: readonly string[];
  readonly signedAt: string | null;
  /** The trust revision the verdict was computed under (always the current one here). */
  readonly trustRevision: number;
  readonly checkedAt: Date;
}

/** The signatures of one manifest. */
export interface SignatureVerdictsView {
  readonly repository: string;
  /** The manifest the reference resolved to. */
  readonly digest: Digest;
  /** The namespace's enforcement mode. */
  readonly mode: SignatureTrust['mode'];
  /**
   * True when one of the manifest's own signatures verifies. (A pull may also pass through the index rule: an
   * image listed by a signed index, an index one of whose children is signed.)
   */
  readonly signed: boolean;
  readonly verdicts: readonly SignatureVerdictView[];
}

/** What a recomputation did. */
export interface SignatureRecomputeView {
  readonly namespace: string;
  /** Signature manifests verified again. */
  readonly signatures: number;
}

type SignatureServicePort = Pick<
  SignatureService,
  'trustOf' | 'storedTrust' | 'setTrust' | 'verdictsFor' | 'recomputeNamespace'
>;

/** What the audit log says about a configuration: its settings and how much it trusts, never the PEM texts. */
function trustSummary(trust: SignatureTrust): Record<string, unknown> {
  return {
    mode: trust.mode,
    admission: trust.admission,
    cosignKeys: trust.cosign.keys.length,
    cosignKeyless: trust.cosign.keyless.length,
    notationTrustStores: trust.notation.trustStores.length,
    notationTrustPolicies: trust.notation.trustPolicies.length,
  };
}

function verdictView(v: StoredVerdict): SignatureVerdictView {
  return {
    signatureDigest: v.signatureDigest,
    layer: v.layer,
    tool: v.tool,
    format: v.format,
    verified: v.verified,
    signer: v.signer,
    fingerprint: v.fingerprint,
    reason: v.reason,
    notes: v.notes,
    signedAt: v.signedAt,
    trustRevision: v.trustRevision,
    checkedAt: v.checkedAt,
  };
}

export class SignatureAdmin {
  constructor(
    private readonly admin: AdminService,
    private readonly audit: AuditLog,
    private readonly signatures: SignatureServicePort,
    private readonly metadata: Pick<MetadataStore, 'getManifest' | 'getManifestByTag'>,
  ) {}

  /** The namespace's trust configuration (the default, revision 0, when never configured). */
  async getTrust(actor: Actor, namespace: string): Promise<SignatureTrustView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(actor, ns, 'reading the signature trust of namespace');
    const record = await this.signatures.storedTrust(ns);
    if (record === null) {
      return { namespace: ns, trust: NO_TRUST, revision: 0, updatedBy: null, updatedAt: null };
    }
    let trust: SignatureTrust;
    try {
      trust = parseSignatureTrust(record.document);
    } catch {
      // What the pull check applies to a stored document that no longer parses (see SignatureService.trustOf).
      trust = (await this.signatures.trustOf(ns)).trust;
    }
    return {
      namespace: ns,
      trust,
      revision: record.revision,
      updatedBy: record.updatedBy,
      updatedAt: record.updatedAt,
    };
  }

  /**
   * Replaces the namespace's trust configuration (checked; an invalid one names the offending field) and starts
   * the recomputation of its verdicts.
   */
  async setTrust(actor: Actor, namespace: string, document: unknown): Promise<SignatureTrustView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'changing the signature trust of namespace',
      'signatures.trust.set',
    );
    let stored;
    try {
      stored = await this.signatures.setTrust(ns, document, actor.principal?.name ?? null);
    } catch (e) {
      if (e instanceof SignatureTrustError) throw invalid(e.message, e.field);
      throw e;
    }
    await recordAction(this.audit, actor, 'signatures.trust.set', ns, {
      ...trustSummary(stored.trust),
      revision: stored.revision,
    });
    return this.getTrust(actor, ns);
  }

  /** Puts the namespace back to the default: mode `off`, nothing trusted (a new revision). */
  async removeTrust(actor: Actor, namespace: string): Promise<SignatureTrustView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'removing the signature trust of namespace',
      'signatures.trust.remove',
    );
    const stored = await this.signatures.setTrust(ns, {}, actor.principal?.name ?? null);
    await recordAction(this.audit, actor, 'signatures.trust.remove', ns, { revision: stored.revision });
    return this.getTrust(actor, ns);
  }

  /**
   * The verdicts about the manifest `reference` (a tag or a digest) of `repository`, recomputed when stale; for
   * anyone who may pull the repository. Not-found when the reference resolves to nothing.
   */
  async verdicts(actor: Actor, repository: string, reference: string): Promise<SignatureVerdictsView> {
    const record = await resolveManifest(
      this.admin,
      this.metadata,
      actor,
      repository,
      reference,
      'reading the signatures of',
    );
    const { trust } = await this.signatures.trustOf(namespaceOf(repository));
    const verdicts = (await this.signatures.verdictsFor(repository, record.digest)).map(verdictView);
    return {
      repository,
      digest: record.digest,
      mode: trust.mode,
      signed: verdicts.some((v) => v.verified),
      verdicts,
    };
  }

  /** Verifies every signature of the namespace again under its current trust, now. */
  async recompute(actor: Actor, namespace: string): Promise<SignatureRecomputeView> {
    const ns = checkNamespaceName(namespace, 'namespace');
    await this.admin.requireNamespaceAdmin(
      actor,
      ns,
      'recomputing the signature verdicts of namespace',
      'signatures.recompute',
    );
    const count = await this.signatures.recomputeNamespace(ns);
    await recordAction(this.audit, actor, 'signatures.recompute', ns, { signatures: count });
    return { namespace: ns, signatures: count };
  }
}
