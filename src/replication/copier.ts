/**
 * Copies artifacts from one registry to another, whichever side is this registry (`local-client.ts`) and
 * whichever is remote: a tag or digest with everything it needs (an index's children before the index, config and
 * layers before a manifest) and its referrers after it (signatures, SBOMs, attestations, of it and of an index's
 * children: through the referrers API when the source has it, else the cosign tag scheme
 * `sha256-<hex>.sig|.att|.sbom`).
 *
 * Manifests are copied as their exact bytes, so digests are the same on both sides. Every step is idempotent (a
 * manifest or blob the destination has is skipped, HEAD first), which is what makes resuming an interrupted
 * execution safe: its tasks are simply run again.
 *
 * One Copier serves one execution: it remembers which destination repository got which blob, so that another
 * repository needing it is given it by a cross-repository mount instead of a second upload.
 */
import type { Digest } from '../oci/digest.ts';
import { parseManifest } from '../oci/manifest.ts';
import type { RegistryClient, RemoteManifest } from '../remote/registry-client.ts';
import { RemoteError } from '../remote/registry-client.ts';
import { REFERRER_TAG_SUFFIXES, referrerTag, suffixFor } from './filters.ts';
import { meteredStream, type TokenBucket } from './throttle.ts';

/** Referrers of referrers are followed this deep (a signature of an SBOM of an image is depth 2). */
const MAX_REFERRER_DEPTH = 3;

/** The source does not have what a task names. */
export class SourceMissingError extends Error {
  constructor(what: string) {
    super(`${what} does not exist at the source`);
    this.name = 'SourceMissingError';
  }
}

export interface CopierOptions {
  readonly source: RegistryClient;
  readonly destination: RegistryClient;
  /** Shared by every blob stream of the execution; null: unlimited. */
  readonly bucket: TokenBucket | null;
  readonly signal?: AbortSignal;
}

/** What one copy did. */
export interface CopyOutcome {
  readonly digest: Digest;
  /** Blob bytes uploaded (not those skipped or mounted). */
  readonly bytes: number;
}

export class Copier {
  private readonly src: RegistryClient;
  private readonly dst: RegistryClient;
  /** Destination repositories known to hold a blob (this execution). */
  private readonly blobHomes = new Map<Digest, Set<string>>();
  /** Whether the destination has the referrers API (asked once per execution). */
  private dstReferrersApi: boolean | undefined;

  constructor(private readonly options: CopierOptions) {
    this.src = options.source;
    this.dst = options.destination;
  }

  /**
   * Copies `reference` (a tag or digest) of `sourceRepository` to `destinationRepository`, under the same tag,
   * with its referrers. `onBytes` sees uploaded blob bytes as they flow.
   */
  async copy(
    sourceRepository: string,
    reference: string,
    destinationRepository: string,
    onBytes: (n: number) => void = () => undefined,
  ): Promise<CopyOutcome> {
    let bytes = 0;
    const count = (n: number): void => {
      bytes += n;
      onBytes(n);
    };
    let manifest = await this.src.getManifest(sourceRepository, reference, undefined, this.call());
    if (manifest === null) throw new SourceMissingError(`${sourceRepository}:${reference}`);
    await this.copyTree(sourceRepository, destinationRepository, manifest, count);
    if (!reference.includes(':')) {
      // The tag may have moved while its content was copied (another push): copy what it names now, so that an
      // older execution finishing late does not set the destination's tag back.
      for (let moves = 0; moves < 3; moves++) {
        const now = await this.src.headManifest(sourceRepository, reference, undefined, this.call());
        if (now === null || now.digest === null || now.digest === manifest.digest) break;
        const moved = await this.src.getManifest(sourceRepository, reference, undefined, this.call());
        if (moved === null) break;
        manifest = moved;
        await this.copyTree(sourceRepository, destinationRepository, manifest, count);
      }
      const head = await this.dst.headManifest(destinationRepository, reference, undefined, this.call());
      if (head?.digest !== manifest.digest) {
        await this.dst.putManifest(
          destinationRepository,
          reference,
          manifest.mediaType,
          manifest.body,
          this.call(),
        );
      }
    }
    await this.copyReferrers(sourceRepository, destinationRepository, manifest.digest, 0, count);
    // Per-platform signatures and attestations refer to an index's children.
    for (const child of parseManifest(manifest.body, manifest.mediaType).manifests) {
      await this.copyReferrers(sourceRepository, destinationRepository, child, 0, count);
    }
    return { digest: manifest.digest, bytes };
  }

  /** Copies a manifest by digest after what it references; nothing when the destination has it. */
  private async copyTree(
    srcRepo: string,
    dstRepo: string,
    manifest: RemoteManifest,
    count: (n: number) => void,
  ): Promise<void> {
    // A registry stores a manifest only once its references are there: having it means having them all.
    if ((await this.dst.headManifest(dstRepo, manifest.digest, undefined, this.call())) !== null) return;
    const parsed = parseManifest(manifest.body, manifest.mediaType);
    for (const child of parsed.manifests) {
      const m = await this.src.getManifest(srcRepo, child, undefined, this.call());
      if (m === null) throw new SourceMissingError(`${srcRepo}@${child}`);
      await this.copyTree(srcRepo, dstRepo, m, count);
    }
    for (const blob of new Set(parsed.blobs)) await this.copyBlob(srcRepo, dstRepo, blob, count);
    await this.dst.putManifest(dstRepo, manifest.digest, manifest.mediaType, manifest.body, this.call());
  }

  private async copyBlob(
    srcRepo: string,
    dstRepo: string,
    digest: Digest,
    count: (n: number) => void,
  ): Promise<void> {
    const homes = this.blobHomes.get(digest) ?? new Set<string>();
    this.blobHomes.set(digest, homes);
    if (homes.has(dstRepo)) return;
    if ((await this.dst.headBlob(dstRepo, digest, this.call())) !== null) {
      homes.add(dstRepo);
      return;
    }
    for (const from of homes) {
      if (await this.dst.mountBlob(dstRepo, digest, from, this.call())) {
        homes.add(dstRepo);
        return;
      }
    }
    const blob = await this.src.getBlob(srcRepo, digest, this.call());
    if (blob === null) throw new SourceMissingError(`blob ${digest} of ${srcRepo}`);
    const body = meteredStream(blob.body, this.options.bucket, count, this.options.signal);
    await this.dst.putBlob(dstRepo, digest, blob.size, body, this.call());
    homes.add(dstRepo);
  }

  /** Copies the referrers of `subject` (after it: a referrer's subject must be there first), depth first. */
  private async copyReferrers(
    srcRepo: string,
    dstRepo: string,
    subject: Digest,
    depth: number,
    count: (n: number) => void,
  ): Promise<void> {
    if (depth >= MAX_REFERRER_DEPTH) return;
    const referrers = await this.src.listReferrers(srcRepo, subject, this.call());
    if (referrers === null) {
      // A source without the referrers API (Distribution 2.8): the cosign tag scheme.
      for (const suffix of REFERRER_TAG_SUFFIXES) {
        const tag = referrerTag(subject, suffix);
        const m = await this.src.getManifest(srcRepo, tag, undefined, this.call());
        if (m === null) continue;
        await this.copyTree(srcRepo, dstRepo, m, count);
        await this.tag(dstRepo, tag, m);
        await this.copyReferrers(srcRepo, dstRepo, m.digest, depth + 1, count);
      }
      return;
    }
    for (const d of referrers) {
      const m = await this.src.getManifest(srcRepo, d.digest, undefined, this.call());
      if (m === null) continue; // deleted since the listing
      await this.copyTree(srcRepo, dstRepo, m, count);
      // A destination without the referrers API finds them only by the tag scheme.
      if (!(await this.destinationHasReferrersApi(dstRepo, subject))) {
        await this.tag(dstRepo, referrerTag(subject, suffixFor(d.artifactType)), m);
      }
      await this.copyReferrers(srcRepo, dstRepo, m.digest, depth + 1, count);
    }
  }

  private async tag(dstRepo: string, tag: string, m: RemoteManifest): Promise<void> {
    const head = await this.dst.headManifest(dstRepo, tag, undefined, this.call());
    if (head?.digest === m.digest) return;
    await this.dst.putManifest(dstRepo, tag, m.mediaType, m.body, this.call());
  }

  private async destinationHasReferrersApi(dstRepo: string, subject: Digest): Promise<boolean> {
    this.dstReferrersApi ??= (await this.dst.listReferrers(dstRepo, subject, this.call())) !== null;
    return this.dstReferrersApi;
  }

  /**
   * Deletes `reference` on the destination. A tag is untagged where the destination supports it; a destination
   * that refuses to delete tags (Distribution 2.8 deletes only by digest) has the tag's manifest deleted by digest
   * only when `stillTagged` says no other source tag points at it, since deleting by digest removes every tag on
   * the manifest. Resolves to what was done.
   */
  async delete(
    destinationRepository: string,
    reference: string,
    stillTagged: (digest: Digest) => Promise<boolean>,
  ): Promise<'deleted' | 'absent' | 'kept'> {
    try {
      return (await this.dst.deleteManifest(destinationRepository, reference, this.call()))
        ? 'deleted'
        : 'absent';
    } catch (e) {
      if (reference.includes(':') || !refusesTagDelete(e)) throw e;
    }
    const head = await this.dst.headManifest(destinationRepository, reference, undefined, this.call());
    if (head === null) return 'absent';
    const digest =
      head.digest ??
      (await this.dst.getManifest(destinationRepository, reference, undefined, this.call()))?.digest;
    if (digest === undefined) return 'absent';
    if (await stillTagged(digest)) return 'kept';
    return (await this.dst.deleteManifest(destinationRepository, digest, this.call())) ? 'deleted' : 'absent';
  }

  private call(): { signal?: AbortSignal } {
    return this.options.signal ? { signal: this.options.signal } : {};
  }
}

/** Whether a failed delete says the remote does not delete by tag (405 UNSUPPORTED, or 400 DIGEST_INVALID). */
function refusesTagDelete(e: unknown): boolean {
  if (!(e instanceof RemoteError) || e.kind !== 'http') return false;
  const status = e.details.status ?? 0;
  return status === 405 || status === 400 || e.details.code === 'UNSUPPORTED';
}
