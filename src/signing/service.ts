/**
 * Signatures: verifying the signatures pushed into a namespace against its trust configuration, storing the
 * verdicts, and deciding whether a pull of an image may go ahead (`checkPull`).
 *
 * Why verdicts are computed lazily as well as eagerly: a verdict holds for one trust revision. Signatures are
 * verified when pushed and again by a job when the namespace's trust changes, but a pull may arrive before that
 * job reached its subject, or concern a signature pushed while the process that received it died. So the pull
 * path re-verifies whatever signature of its subject has no verdict at the current revision before deciding, and
 * never trusts a verdict of an older one. Verification is deterministic for a given signature, trust and time,
 * so two instances computing the same verdict at once store the same rows.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { JobQueue } from '../jobs/job.ts';
import { silentLogger, type Logger } from '../logger.ts';
import type { ManifestRecord, MetadataStore } from '../metadata/store.ts';
import { namespaceOf } from '../metadata/usage-accounting.ts';
import type { NewVerdict, SignatureStore, StoredVerdict, TrustRecord } from '../metadata/signature-store.ts';
import type { Digest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import {
  PullRefusedError,
  pullWarning,
  type PullDecision,
  type PullPolicy,
} from '../registry/pull-policy.ts';
import { blobKey } from '../storage/paths.ts';
import type { StorageDriver } from '../storage/driver.ts';
import { classifyManifest, indexChildren, type ArtifactClass } from './artifacts.ts';
import {
  NO_TRUST,
  parseSignatureTrust,
  type CosignTrust,
  type NotationTrust,
  type SignatureTrust,
} from './trust.ts';
import { unverified, type SignatureVerdict, type SignedSubject } from './verdict.ts';

/** The verifiers, one per envelope (see `verifiers.ts`); pure functions that never throw for a bad signature. */
export interface SignatureVerifiers {
  /** A cosign simple-signing layer: its payload bytes and its annotations. */
  cosign(
    signature: { payload: Buffer; annotations: Readonly<Record<string, string>> },
    subject: SignedSubject,
    trust: CosignTrust,
    now: Date,
  ): Promise<SignatureVerdict>;
  /** A sigstore bundle (JSON bytes). */
  sigstoreBundle(
    bundle: Buffer,
    subject: SignedSubject,
    trust: CosignTrust,
    now: Date,
  ): Promise<SignatureVerdict>;
  /** A Notation envelope (JWS or COSE bytes) of media type `mediaType`. */
  notation(
    envelope: Buffer,
    mediaType: string,
    subject: SignedSubject,
    trust: NotationTrust,
    now: Date,
  ): Promise<SignatureVerdict>;
}

/** 412 for a pull of an image without a verified signature, in a namespace that enforces signatures. */
export class SignatureRequiredError extends PullRefusedError {
  constructor(repository: string, digest: Digest) {
    super(`image ${repository}@${digest} is not signed by a trusted signer`, 'unsigned image', {
      repository,
      digest,
    });
  }
}

/** 403 for a signature pushed under `admission` that does not verify. */
export class SignatureRejectedError extends RegistryError {
  constructor(repository: string, reason: string) {
    super('DENIED', `signature refused in ${repository}: ${reason}`, { detail: { repository, reason } });
    this.name = 'SignatureRejectedError';
  }
}

/** The namespace's configuration and its revision. */
export interface NamespaceTrust {
  readonly namespace: string;
  readonly trust: SignatureTrust;
  readonly revision: number;
}

export interface SignatureServiceDeps {
  readonly store: SignatureStore;
  readonly metadata: MetadataStore;
  readonly storage: StorageDriver;
  readonly verifiers: SignatureVerifiers;
  /** Where trust changes enqueue their recomputation (absent: only the lazy path recomputes). */
  readonly jobs?: JobQueue;
  readonly logger?: Logger;
  /** The clock. Default `Date.now`. */
  readonly now?: () => number;
  /** How long a namespace's trust is cached (ms); changes made elsewhere show after at most this. Default 2 s. */
  readonly cacheTtlMs?: number;
}

/** The job queue of trust-change recomputations; payload `{ namespace, revision }`. */
export const RECOMPUTE_QUEUE = 'signatures.recompute';

/** A signature layer larger than this is not read (no signature format comes near it). */
const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;
const RECOMPUTE_PAGE = 100;
const SIGNED_TTL_MS = 2_000;
const UNSIGNED_TTL_MS = 1_000;
const SIGNED_CACHE_SIZE = 10_000;

interface LayerShape {
  readonly mediaType?: unknown;
  readonly digest?: unknown;
  readonly size?: unknown;
  readonly annotations?: unknown;
}

export class SignatureService implements PullPolicy {
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly cacheTtlMs: number;
  private readonly cache = new Map<string, { value: NamespaceTrust; until: number }>();
  private readonly signedCache = new Map<string, { signed: boolean; until: number }>();

  constructor(private readonly deps: SignatureServiceDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.now = deps.now ?? Date.now;
    this.cacheTtlMs = deps.cacheTtlMs ?? 2000;
  }

  /** The namespace's trust configuration (the default, `mode: off`, revision 0, when never configured). */
  async trustOf(namespace: string): Promise<NamespaceTrust> {
    const cached = this.cache.get(namespace);
    if (cached !== undefined && cached.until > this.now()) return cached.value;
    const record = await this.deps.store.getTrust(namespace);
    let trust = NO_TRUST;
    if (record !== null) {
      try {
        trust = parseSignatureTrust(record.document);
      } catch (e) {
        // Stored documents were checked when written; one that no longer parses (a schema change) trusts nothing
        // and enforces what it said, or `enforce` when unreadable.
        this.logger.error({ namespace, err: e }, 'stored signature trust does not parse');
        trust = { ...NO_TRUST, mode: 'enforce' };
      }
    }
    const value = { namespace, trust, revision: record?.revision ?? 0 };
    this.cache.set(namespace, { value, until: this.now() + this.cacheTtlMs });
    return value;
  }

  /** The namespace's stored configuration with who changed it and when; null when never configured. */
  storedTrust(namespace: string): Promise<TrustRecord | null> {
    return this.deps.store.getTrust(namespace);
  }

  /**
   * Replaces the namespace's trust configuration (checked: throws SignatureTrustError naming the first problem)
   * and enqueues the recomputation of every verdict in the namespace.
   */
  async setTrust(namespace: string, document: unknown, updatedBy: string | null): Promise<NamespaceTrust> {
    const trust = parseSignatureTrust(document);
    const record = await this.deps.store.putTrust(namespace, trust, updatedBy);
    const value = { namespace, trust, revision: record.revision };
    this.cache.set(namespace, { value, until: this.now() + this.cacheTtlMs });
    await this.deps.jobs?.enqueue(
      RECOMPUTE_QUEUE,
      { namespace, revision: record.revision },
      { dedupeKey: `${namespace}@${record.revision}` },
    );
    return value;
  }

  /**
   * Verifies every signature in a signature manifest (`record`, with `tags` pointing at it) against `trust`,
   * without storing anything. Returns null when the manifest is not a signature or names no subject.
   */
  async verifyManifest(
    record: Pick<ManifestRecord, 'repository' | 'digest' | 'mediaType' | 'payload'>,
    tags: readonly string[],
    trust: SignatureTrust,
  ): Promise<NewVerdict[] | null> {
    const cls = classifyManifest(record.payload, record.mediaType, tags);
    if (cls.kind !== 'signature' || cls.subject === null) return null;
    const subject = await this.subjectOf(record.repository, cls.subject);
    const layers = layersOf(record.payload);
    const now = new Date(this.now());
    const out: NewVerdict[] = [];
    for (const [index, layer] of layers.entries()) {
      const verdict = await this.verifyLayer(record.repository, cls, layer, subject, trust, now);
      if (verdict !== null) out.push({ subject: cls.subject, layer: index, verdict });
    }
    if (out.length === 0) {
      const format =
        cls.format === 'notation'
          ? 'notation-jws'
          : cls.format === 'cosign'
            ? 'cosign-simple-signing'
            : cls.format;
      const tool = cls.format === 'notation' ? 'notation' : 'cosign';
      out.push({
        subject: cls.subject,
        layer: 0,
        verdict: unverified(tool, format, 'the signature manifest holds no signature'),
      });
    }
    return out;
  }

  /**
   * Called before a manifest is stored: when it is a signature and the namespace refuses signatures that do not
   * verify (`admission`), verifies it and throws SignatureRejectedError unless one of its signatures verifies.
   */
  async admit(
    repository: string,
    digest: Digest,
    payload: Buffer,
    mediaType: string,
    tags: readonly string[],
  ): Promise<void> {
    const { trust } = await this.trustOf(namespaceOf(repository));
    if (!trust.admission) return;
    const cls = classifyManifest(payload, mediaType, tags);
    if (cls.kind !== 'signature') return;
    const verdicts = await this.verifyManifest({ repository, digest, mediaType, payload }, tags, trust);
    if (verdicts === null)
      throw new SignatureRejectedError(repository, 'the signature names no signed manifest');
    if (!verdicts.some((v) => v.verdict.verified)) {
      throw new SignatureRejectedError(repository, verdicts[0]?.verdict.reason ?? 'it does not verify');
    }
  }

  /**
   * Called after a manifest was stored: when it is a signature, verifies and stores its verdicts. Best effort
   * (the pull path recomputes what is missing): never throws.
   */
  async recordPushed(
    repository: string,
    digest: Digest,
    payload: Buffer,
    mediaType: string,
    tags: readonly string[],
  ): Promise<void> {
    try {
      const cls = classifyManifest(payload, mediaType, tags);
      if (cls.kind !== 'signature') return;
      await this.refresh(repository, digest, { payload, mediaType, tags });
      // A pull refused a moment ago may pass now, on this instance at once.
      if (cls.subject !== null) {
        for (const key of this.signedCache.keys()) {
          if (key.endsWith(`|${repository}@${cls.subject}`)) this.signedCache.delete(key);
        }
      }
    } catch (e) {
      this.logger.warn({ repository, digest, err: e }, 'signature verification after push failed');
    }
  }

  /**
   * The current verdicts about `subject` in `repository`: those of every signature manifest naming it (as a
   * referrer, or under cosign's `sha256-<hex>.sig` tag), recomputed when missing or of an older trust revision.
   */
  async verdictsFor(repository: string, subject: Digest): Promise<StoredVerdict[]> {
    const { revision } = await this.trustOf(namespaceOf(repository));
    const signatures = await this.signatureManifestsOf(repository, subject);
    const out: StoredVerdict[] = [];
    for (const { digest, tags } of signatures) {
      let verdicts = (await this.deps.store.verdictsOf(repository, digest)).filter(
        (v) => v.subject === subject,
      );
      if (verdicts.length === 0 || verdicts.some((v) => v.trustRevision !== revision)) {
        await this.refresh(repository, digest, { tags });
        verdicts = (await this.deps.store.verdictsOf(repository, digest)).filter(
          (v) => v.subject === subject,
        );
      }
      out.push(...verdicts);
    }
    return out;
  }

  /**
   * True when `digest` in `repository` has a verified signature under the namespace's current trust. Answers are
   * cached briefly per trust revision (a signed answer SIGNED_TTL_MS, an unsigned one UNSIGNED_TTL_MS), so the
   * pulls of one image's layers and platforms cost one lookup; a new trust revision is a new key. A signature
   * deleted (or a trust changed) on another instance counts here for at most that long.
   */
  async isSigned(repository: string, digest: Digest): Promise<boolean> {
    const { revision } = await this.trustOf(namespaceOf(repository));
    const key = `${revision}|${repository}@${digest}`;
    const cached = this.signedCache.get(key);
    if (cached !== undefined && cached.until > this.now()) return cached.signed;
    const signed = (await this.verdictsFor(repository, digest)).some((v) => v.verified);
    if (this.signedCache.size >= SIGNED_CACHE_SIZE) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.signedCache.keys().next().value;
      if (oldest !== undefined) this.signedCache.delete(oldest);
    }
    this.signedCache.delete(key);
    this.signedCache.set(key, { signed, until: this.now() + (signed ? SIGNED_TTL_MS : UNSIGNED_TTL_MS) });
    return signed;
  }

  /**
   * Decides a GET or HEAD of `manifest`: passes what is not an image (or is a signature, attestation or SBOM),
   * anything when the namespace's mode is `off`, a principal `bypass` says may push, and a signed image. An
   * image manifest also passes when an index of the repository listing it is signed; an index when it is signed
   * or one of its children is (each child is checked when requested). Otherwise: `warn` mode gives a warning,
   * `enforce` throws SignatureRequiredError (412).
   */
  async checkPull(manifest: ManifestRecord, bypass: () => Promise<boolean>): Promise<PullDecision> {
    const { trust } = await this.trustOf(namespaceOf(manifest.repository));
    if (trust.mode === 'off') return { outcome: 'pass', reason: 'off' };
    const cls = classifyManifest(manifest.payload, manifest.mediaType);
    if (cls.kind === 'signature' || cls.kind === 'attestation' || cls.kind === 'sbom') {
      return { outcome: 'pass', reason: 'artifact' };
    }
    if (cls.kind !== 'image') return { outcome: 'pass', reason: 'not-image' };
    if (await bypass()) return { outcome: 'pass', reason: 'bypass' };
    if (await this.signedImage(manifest, cls.isIndex)) return { outcome: 'pass', reason: 'signed' };
    if (trust.mode === 'enforce') throw new SignatureRequiredError(manifest.repository, manifest.digest);
    return pullWarning(`image ${manifest.repository}@${manifest.digest} is not signed by a trusted signer`);
  }

  /**
   * Recomputes the verdicts of every signature in the namespace under its current trust (the job of
   * RECOMPUTE_QUEUE). Returns how many signature manifests it verified.
   */
  async recomputeNamespace(namespace: string, signal?: AbortSignal): Promise<number> {
    this.cache.delete(namespace);
    let after: { repository: string; digest: Digest } | undefined;
    let count = 0;
    for (;;) {
      const page = await this.deps.store.signatureManifests(namespace, {
        limit: RECOMPUTE_PAGE,
        ...(after ? { after } : {}),
      });
      for (const item of page) {
        signal?.throwIfAborted();
        await this.refresh(item.repository, item.digest, {});
        count++;
      }
      if (page.length < RECOMPUTE_PAGE) return count;
      after = page[page.length - 1];
    }
  }

  /** Registers the recomputation job's handler on `runner`. */
  register(runner: {
    register<P>(
      queue: string,
      handler: (payload: P, context: { signal: AbortSignal }) => Promise<void>,
    ): void;
  }): void {
    runner.register<{ namespace: string }>(RECOMPUTE_QUEUE, async (payload, context) => {
      const count = await this.recomputeNamespace(payload.namespace, context.signal);
      this.logger.info({ namespace: payload.namespace, signatures: count }, 'signature verdicts recomputed');
    });
  }

  // --- internals -----------------------------------------------------------------------------------------

  private async signedImage(manifest: ManifestRecord, isIndex: boolean): Promise<boolean> {
    const { repository, digest } = manifest;
    if (await this.isSigned(repository, digest)) return true;
    if (isIndex) {
      for (const child of indexChildren(manifest.payload)) {
        if (await this.isSigned(repository, child)) return true;
      }
      return false;
    }
    for (const parent of await this.deps.store.parentIndexes(repository, digest)) {
      if (await this.isSigned(repository, parent)) return true;
    }
    return false;
  }

  /** Re-verifies one signature manifest under the namespace's current trust and stores its verdicts. */
  private async refresh(
    repository: string,
    digest: Digest,
    known: { payload?: Buffer; mediaType?: string; tags?: readonly string[] },
  ): Promise<void> {
    const { trust, revision } = await this.trustOf(namespaceOf(repository));
    let payload = known.payload;
    let mediaType = known.mediaType;
    if (payload === undefined || mediaType === undefined) {
      const record = await this.deps.metadata.getManifest(repository, digest);
      if (record === null) return;
      payload = record.payload;
      mediaType = record.mediaType;
    }
    let tags = known.tags ?? [];
    if (known.tags === undefined) {
      const cls = classifyManifest(payload, mediaType);
      // A cosign tag-scheme signature names its subject only by its `sha256-<hex>.sig` tag.
      if (cls.kind === 'signature' && cls.subject === null) {
        tags = await this.deps.store.signatureTags(repository, digest);
      }
    }
    const verdicts = await this.verifyManifest({ repository, digest, mediaType, payload }, tags, trust);
    if (verdicts === null) return;
    await this.deps.store.replaceVerdicts(repository, digest, verdicts, revision);
  }

  /** The signature manifests about `subject`: its signature referrers and its cosign `.sig` tag. */
  private async signatureManifestsOf(
    repository: string,
    subject: Digest,
  ): Promise<{ digest: Digest; tags: readonly string[] }[]> {
    const out: { digest: Digest; tags: readonly string[] }[] = [];
    for (const referrer of await this.deps.metadata.listReferrers(repository, subject)) {
      const record = await this.deps.metadata.getManifest(repository, referrer.digest);
      if (record === null) continue;
      if (classifyManifest(record.payload, record.mediaType).kind === 'signature') {
        out.push({ digest: referrer.digest, tags: [] });
      }
    }
    const [algorithm, hex] = subject.split(':');
    const tag = `${algorithm}-${hex}.sig`;
    const tagged = await this.deps.metadata.getManifestByTag(repository, tag);
    if (tagged !== null && !out.some((o) => o.digest === tagged.digest)) {
      out.push({ digest: tagged.digest, tags: [tag] });
    }
    return out;
  }

  private async subjectOf(repository: string, digest: Digest): Promise<SignedSubject> {
    const record = await this.deps.metadata.getManifest(repository, digest);
    return record === null
      ? { repository, digest }
      : { repository, digest, mediaType: record.mediaType, size: record.size };
  }

  /** The verdict of one layer of a signature manifest; null for layers that hold no signature. */
  private async verifyLayer(
    repository: string,
    cls: Extract<ArtifactClass, { kind: 'signature' }>,
    layer: LayerShape,
    subject: SignedSubject,
    trust: SignatureTrust,
    now: Date,
  ): Promise<SignatureVerdict | null> {
    const mediaType = typeof layer.mediaType === 'string' ? layer.mediaType : '';
    const tool = cls.format === 'notation' ? 'notation' : 'cosign';
    const format =
      cls.format === 'notation'
        ? mediaType === 'application/cose'
          ? 'notation-cose'
          : 'notation-jws'
        : cls.format === 'cosign'
          ? 'cosign-simple-signing'
          : 'sigstore-bundle';
    if (cls.format === 'cosign' && mediaType !== 'application/vnd.dev.cosign.simplesigning.v1+json')
      return null;
    const bytes = await this.readLayer(layer);
    if (typeof bytes === 'string') return unverified(tool, format, bytes);
    const { verifiers } = this.deps;
    try {
      if (cls.format === 'cosign') {
        const annotations = stringRecord(layer.annotations);
        return await verifiers.cosign({ payload: bytes, annotations }, subject, trust.cosign, now);
      }
      if (cls.format === 'sigstore-bundle')
        return await verifiers.sigstoreBundle(bytes, subject, trust.cosign, now);
      return await verifiers.notation(bytes, mediaType, subject, trust.notation, now);
    } catch (e) {
      // The verifiers promise verdicts, not exceptions; one that throws is a bug, recorded as a failed check.
      this.logger.error({ repository, err: e }, 'signature verifier threw');
      return unverified(tool, format, `verification failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The layer's bytes, checked against its digest; or a reason they cannot be had. */
  private async readLayer(layer: LayerShape): Promise<Buffer | string> {
    const digest = typeof layer.digest === 'string' ? layer.digest : '';
    const size = typeof layer.size === 'number' ? layer.size : -1;
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return 'the signature layer has no sha256 digest';
    if (size < 0 || size > MAX_SIGNATURE_BYTES) return `the signature layer's size ${size} is out of bounds`;
    let body: Readable;
    try {
      body = await this.deps.storage.read(blobKey(digest));
    } catch {
      return `the signature layer ${digest} is not in storage`;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > size) {
        body.destroy();
        return `the signature layer ${digest} is larger than its descriptor says`;
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) {
      return `the signature layer ${digest} does not match its digest`;
    }
    return bytes;
  }
}

function layersOf(payload: Buffer): LayerShape[] {
  try {
    const body = JSON.parse(payload.toString('utf8')) as { layers?: unknown };
    return Array.isArray(body.layers) ? (body.layers as LayerShape[]) : [];
  } catch {
    return [];
  }
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}
