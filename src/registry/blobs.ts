/**
 * Blobs as a repository sees them: a blob is readable in a repository only when linked there (pushed or mounted
 * into it); its bytes are stored once by digest and shared.
 */
import type { Readable } from 'node:stream';
import type { EventContext } from '../events/event.ts';
import type { BlobLink } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import { BlobUnknownError, RangeInvalidError, UnsupportedError } from '../oci/errors.ts';
import { type ByteRange, ObjectNotFoundError, RangeNotSatisfiableError } from '../storage/driver.ts';
import { blobKey } from '../storage/paths.ts';
import { blobDeleted, SYSTEM_CONTEXT } from './events.ts';
import type { RegistryDeps } from './options.ts';

export interface OpenBlob {
  readonly size: number;
  readonly body: Readable;
}

export class BlobService {
  constructor(private readonly deps: RegistryDeps) {}

  /**
   * The blob's link in `repository`; throws BLOB_UNKNOWN when it is not visible there. With `checkStorage`, also
   * when its bytes are missing from storage (HEAD must not promise a blob a GET cannot serve: clients skip
   * uploading blobs a HEAD reports).
   */
  async stat(repository: string, digest: Digest, checkStorage = false): Promise<BlobLink> {
    const link = await this.deps.metadata.getBlobLink(repository, digest);
    if (!link) throw new BlobUnknownError(undefined, { detail: { digest } });
    if (checkStorage && link.size > 0 && !(await this.deps.storage.stat(blobKey(digest)))) {
      throw new BlobUnknownError(undefined, { detail: { digest } });
    }
    return link;
  }

  /**
   * Opens the blob (or `range` of it) for reading. Throws BLOB_UNKNOWN when not visible in the repository or when
   * its bytes are missing from storage, and a 416 RangeInvalidError for a range outside the blob.
   */
  async open(repository: string, digest: Digest, size: number, range?: ByteRange): Promise<OpenBlob> {
    try {
      // Blob keys are content addresses: whatever is stored at one always holds the same bytes.
      const body = await this.deps.storage.read(blobKey(digest), range, { immutable: true });
      return { size, body };
    } catch (e) {
      if (e instanceof ObjectNotFoundError) throw new BlobUnknownError(undefined, { detail: { digest } });
      if (e instanceof RangeNotSatisfiableError) {
        throw new RangeInvalidError('requested range not satisfiable', {
          headers: { 'Content-Range': `bytes */${size}` },
        });
      }
      throw e;
    }
  }

  /**
   * A presigned storage URL to redirect a GET of the blob to, or null when redirects are off or the driver has
   * none. The caller has checked that the blob is visible in the repository.
   */
  async redirectUrl(digest: Digest): Promise<string | null> {
    const seconds = this.deps.options.blobRedirectSeconds;
    const { storage } = this.deps;
    if (!seconds || !storage.presignedUrl) return null;
    return storage.presignedUrl(blobKey(digest), seconds);
  }

  /**
   * Records that the blob was pulled (a GET from its first byte), when some subscriber wants pull events. Best
   * effort and off the request's path: never throws, never delays the pull.
   */
  recordPull(repository: string, link: BlobLink, contextOf: () => EventContext): void {
    const sink = this.deps.pullEvents;
    if (!sink?.active) return;
    const context = contextOf();
    sink.record({
      type: 'blob.pulled',
      target: { repository, digest: link.digest, size: link.size },
      actor: context.actor,
      request: context.request,
    });
  }

  /** Unlinks the blob from the repository (bytes are reclaimed by garbage collection). */
  async delete(repository: string, digest: Digest, context: EventContext = SYSTEM_CONTEXT): Promise<void> {
    if (!this.deps.options.deletes) throw new UnsupportedError('deletes are disabled on this registry');
    const removed = await this.deps.metadata.unlinkBlob(
      repository,
      digest,
      blobDeleted(context, repository, digest),
    );
    if (!removed) throw new BlobUnknownError(undefined, { detail: { digest } });
  }
}
