/**
 * Manifests: push (validated, stored as exact bytes, referenced content checked), pull by tag or digest,
 * delete by digest (manifest and its tags) or by tag (untag).
 */
import type { EventContext } from '../events/event.ts';
import type { ManifestRecord } from '../metadata/store.ts';
import { type Digest, digestOf, parseDigest } from '../oci/digest.ts';
import {
  DigestInvalidError,
  ManifestBlobUnknownError,
  ManifestUnknownError,
  PayloadTooLargeError,
  UnsupportedError,
} from '../oci/errors.ts';
import { parseManifest } from '../oci/manifest.ts';
import { InvalidTagError, isValidTag, type Reference } from '../oci/reference.ts';
import { manifestDeleted, manifestPushed, SYSTEM_CONTEXT, tagDeleted } from './events.ts';
import type { RegistryDeps } from './options.ts';
import { ImmutableTagError } from './tag-immutability.ts';
import { refusingOverQuota, withQuotaWarning } from './quota.ts';

export interface PutManifestRequest {
  readonly repository: string;
  readonly reference: Reference;
  /** The exact body bytes. */
  readonly body: Buffer;
  /** Content-Type without parameters, when sent. */
  readonly contentType: string | undefined;
  /** Extra tags (`?tag=` on the request). */
  readonly tags?: readonly string[];
  /**
   * Called for each tag that already points at another manifest, before anything is written; throws to refuse
   * moving it (a caller without the right to overwrite tags).
   */
  readonly beforeTagMove?: (tag: string, current: Digest) => Promise<void>;
  /** Who pushes, for the events (default: the system). */
  readonly context?: EventContext;
  /**
   * Accept the manifest although content it references is missing (the pull-through cache's writes; for clients,
   * `registry.sparseManifests` decides).
   */
  readonly sparse?: boolean;
}

export interface PutManifestResponse {
  readonly digest: Digest;
  readonly subject: Digest | null;
  readonly tags: readonly string[];
}

export class ManifestService {
  constructor(private readonly deps: RegistryDeps) {}

  /** Validates and stores a manifest; see the spec's "Pushing Manifests". */
  async put(request: PutManifestRequest): Promise<PutManifestResponse> {
    const { repository, reference, body } = request;
    if (body.length > this.deps.options.maxManifestSize) {
      throw new PayloadTooLargeError(`manifest is larger than ${this.deps.options.maxManifestSize} bytes`);
    }
    const algorithm = reference.kind === 'digest' ? parseDigest(reference.digest).algorithm : 'sha256';
    const digest = digestOf(body, algorithm);
    if (reference.kind === 'digest' && reference.digest !== digest) {
      throw new DigestInvalidError('manifest digest does not match the reference', {
        detail: { expected: reference.digest, actual: digest },
      });
    }
    const parsed = parseManifest(body, request.contentType);
    const tags = new Set<string>(request.tags ?? []);
    if (reference.kind === 'tag') tags.add(reference.tag);
    for (const tag of tags) if (!isValidTag(tag)) throw new InvalidTagError(tag);
    await this.checkTagMoves(request, tags, digest);
    const tagList = [...tags];
    await this.deps.signatures?.admit(repository, digest, body, parsed.mediaType, tagList);

    const events = manifestPushed(request.context ?? SYSTEM_CONTEXT, {
      repository,
      digest,
      mediaType: parsed.mediaType,
      size: body.length,
      tags: tagList,
    });
    const context = request.context ?? SYSTEM_CONTEXT;
    const threshold = this.deps.options.quotaWarningThreshold;
    const result = await refusingOverQuota(this.deps, context, repository, () =>
      this.deps.metadata.putManifest(
        {
          repository,
          digest,
          mediaType: parsed.mediaType,
          payload: body,
          subject: parsed.subject,
          artifactType: parsed.artifactType,
          annotations: parsed.annotations,
          blobs: parsed.blobs,
          manifests: parsed.manifests,
          tags: tagList,
          sparse: request.sparse ?? this.deps.options.sparseManifests ?? false,
        },
        withQuotaWarning(events, context, repository, threshold),
      ),
    );
    if (!result.ok) {
      // As distribution does, a missing child manifest of an index is MANIFEST_BLOB_UNKNOWN as well.
      const missing = [...result.missingBlobs, ...result.missingManifests];
      throw new ManifestBlobUnknownError(`manifest references unknown content ${missing[0]}`, {
        detail: { digests: missing },
      });
    }
    await this.deps.signatures?.recordPushed(repository, digest, body, parsed.mediaType, tagList);
    return { digest, subject: parsed.subject, tags: tagList };
  }

  /**
   * Refuses to move an immutable tag (creating it, or pushing the digest it points at again, is fine), then asks
   * `beforeTagMove` about every other tag that would move.
   *
   * Why a check before the write, not in its transaction: a tag that exists is only moved by a push, and every
   * push runs this check first, so an immutable tag that exists never moves. What this leaves open is the first
   * creation: two pushes creating the same immutable tag at the same moment with different digests both pass,
   * and the later write wins (likewise a tag created while `delete` removes its manifest). Once the tag exists
   * it stays.
   */
  private async checkTagMoves(request: PutManifestRequest, tags: Iterable<string>, digest: Digest) {
    const { immutableTags, metadata } = this.deps;
    for (const tag of tags) {
      // The rules are cached: most pushes in a namespace without rules cost no query here.
      const immutable = immutableTags ? await immutableTags.isImmutable(request.repository, tag) : false;
      if (!immutable && !request.beforeTagMove) continue;
      const current = await metadata.getManifestByTag(request.repository, tag);
      if (!current || current.digest === digest) continue;
      if (immutable) throw new ImmutableTagError(request.repository, tag);
      await request.beforeTagMove?.(tag, current.digest);
    }
  }

  /** The manifest by tag or digest; MANIFEST_UNKNOWN when absent. */
  async get(repository: string, reference: Reference): Promise<ManifestRecord> {
    const { metadata } = this.deps;
    const record =
      reference.kind === 'tag'
        ? await metadata.getManifestByTag(repository, reference.tag)
        : await metadata.getManifest(repository, reference.digest);
    if (!record) {
      throw new ManifestUnknownError(undefined, {
        detail: reference.kind === 'tag' ? { tag: reference.tag } : { digest: reference.digest },
      });
    }
    return record;
  }

  /**
   * Deletes by digest (the manifest and every tag on it) or by tag (the tag only). DENIED when an immutable tag
   * would go: the tag itself, or one pointing at the digest.
   */
  async delete(
    repository: string,
    reference: Reference,
    context: EventContext = SYSTEM_CONTEXT,
  ): Promise<void> {
    if (!this.deps.options.deletes) throw new UnsupportedError('deletes are disabled on this registry');
    const { metadata, immutableTags } = this.deps;
    if (immutableTags) {
      if (reference.kind === 'tag') {
        // A tag that does not exist is MANIFEST_UNKNOWN below, as without the rule.
        if (
          (await immutableTags.isImmutable(repository, reference.tag)) &&
          (await metadata.getManifestByTag(repository, reference.tag))
        ) {
          throw new ImmutableTagError(repository, reference.tag);
        }
      } else {
        const [tag] = await immutableTags.immutableTagsOn(repository, reference.digest);
        if (tag !== undefined) throw new ImmutableTagError(repository, tag);
      }
    }
    const removed =
      reference.kind === 'tag'
        ? await metadata.deleteTag(repository, reference.tag, tagDeleted(context, repository, reference.tag))
        : await metadata.deleteManifest(
            repository,
            reference.digest,
            manifestDeleted(context, repository, reference.digest),
          );
    if (!removed) throw new ManifestUnknownError();
  }

  /**
   * Records that `record` was pulled (a GET, not a HEAD): counted in the pull statistics, and an event when some
   * subscriber wants pull events. Best effort and off the request's path: never throws, never delays the pull.
   */
  recordPull(record: ManifestRecord, reference: Reference, contextOf: () => EventContext): void {
    this.deps.pullStats?.record(
      record.repository,
      record.digest,
      reference.kind === 'tag' ? reference.tag : null,
    );
    const sink = this.deps.pullEvents;
    if (!sink?.active) return;
    const context = contextOf();
    sink.record({
      type: 'manifest.pulled',
      target: {
        repository: record.repository,
        digest: record.digest,
        mediaType: record.mediaType,
        size: record.size,
        ...(reference.kind === 'tag' ? { tag: reference.tag } : {}),
      },
      actor: context.actor,
      request: context.request,
    });
  }
}
