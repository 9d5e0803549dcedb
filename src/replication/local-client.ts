/**
 * This registry seen through the RegistryClient contract, so that replication copies between any two sides with
 * one algorithm (`copier.ts`): push replication reads from it, pull replication writes to it. Reads and writes go
 * through the registry's use cases (`registry/`), so pushed content is validated, counted against quotas and
 * reported as events exactly as a client's push would be; writes are made as the system actor `replication`,
 * which the replication subscriber ignores (no replication loops).
 */
import type { Readable } from 'node:stream';
import type { EventContext } from '../events/event.ts';
import type { Digest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { parseReference } from '../oci/reference.ts';
import type { Registry } from '../registry/registry.ts';
import type {
  RegistryClient,
  RemoteBlob,
  RemoteManifest,
  RemoteManifestHead,
} from '../remote/registry-client.ts';

/** Who writes what replication copies in: events of this actor do not trigger replication again. */
export const REPLICATION_CONTEXT: EventContext = {
  actor: { name: 'replication', kind: 'system' },
  request: null,
};

const PAGE = 500;

export class LocalRegistryClient implements RegistryClient {
  readonly url = 'local';

  constructor(private readonly registry: Registry) {}

  ping(): Promise<void> {
    return Promise.resolve();
  }

  async headManifest(repository: string, reference: string): Promise<RemoteManifestHead | null> {
    const m = await this.getManifest(repository, reference);
    return m === null ? null : { digest: m.digest, mediaType: m.mediaType, size: m.body.length };
  }

  async getManifest(repository: string, reference: string): Promise<RemoteManifest | null> {
    try {
      const record = await this.registry.manifests.get(repository, parseReference(reference, false));
      return { digest: record.digest, mediaType: record.mediaType, body: record.payload };
    } catch (e) {
      if (isUnknown(e)) return null;
      throw e;
    }
  }

  async headBlob(repository: string, digest: Digest): Promise<number | null> {
    try {
      return (await this.registry.blobs.stat(repository, digest, true)).size;
    } catch (e) {
      if (isUnknown(e)) return null;
      throw e;
    }
  }

  async getBlob(repository: string, digest: Digest): Promise<RemoteBlob | null> {
    try {
      const link = await this.registry.blobs.stat(repository, digest);
      return await this.registry.blobs.open(repository, digest, link.size);
    } catch (e) {
      if (isUnknown(e)) return null;
      throw e;
    }
  }

  async mountBlob(repository: string, digest: Digest, from: string): Promise<boolean> {
    return (await this.registry.uploads.mount(repository, digest, from, REPLICATION_CONTEXT)) !== null;
  }

  /** Links the blob from anywhere in this registry when it is stored already; else stores the bytes. */
  async putBlob(repository: string, digest: Digest, size: number, body: Readable): Promise<void> {
    if ((await this.registry.uploads.mount(repository, digest, undefined, REPLICATION_CONTEXT)) !== null) {
      body.destroy();
      return;
    }
    await this.registry.uploads.uploadWhole(
      repository,
      digest,
      { stream: body, length: size },
      REPLICATION_CONTEXT,
    );
  }

  async putManifest(repository: string, reference: string, mediaType: string, body: Buffer): Promise<Digest> {
    const r = await this.registry.manifests.put({
      repository,
      reference: parseReference(reference, true),
      body,
      contentType: mediaType,
      context: REPLICATION_CONTEXT,
    });
    return r.digest;
  }

  async deleteManifest(repository: string, reference: string): Promise<boolean> {
    try {
      await this.registry.manifests.delete(repository, parseReference(reference, false), REPLICATION_CONTEXT);
      return true;
    } catch (e) {
      if (isUnknown(e)) return false;
      throw e;
    }
  }

  async *listTags(repository: string): AsyncIterable<string> {
    let last: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.registry.tags.list(repository, PAGE, last);
      } catch (e) {
        if (isUnknown(e)) return;
        throw e;
      }
      yield* page.items;
      if (!page.hasMore || page.items.length === 0) return;
      last = page.items[page.items.length - 1];
    }
  }

  async listReferrers(repository: string, digest: Digest): Promise<Descriptor[]> {
    const index = await this.registry.referrers.list(repository, digest);
    return index.manifests as unknown as Descriptor[];
  }

  async *catalog(): AsyncIterable<string> {
    let last: string | undefined;
    for (;;) {
      const page = await this.registry.catalog.list(PAGE, last);
      yield* page.items;
      if (!page.hasMore || page.items.length === 0) return;
      last = page.items[page.items.length - 1];
    }
  }
}

function isUnknown(e: unknown): boolean {
  return (
    e instanceof RegistryError &&
    (e.code === 'MANIFEST_UNKNOWN' || e.code === 'BLOB_UNKNOWN' || e.code === 'NAME_UNKNOWN')
  );
}
