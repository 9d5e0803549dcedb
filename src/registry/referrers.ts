/** The referrers API: manifests whose `subject` is a given digest, as an OCI image index. */
import type { Digest } from '../oci/digest.ts';
import type { RegistryDeps } from './options.ts';
import { MediaType } from '../oci/media-types.ts';

export interface ReferrersIndex {
  readonly schemaVersion: 2;
  readonly mediaType: string;
  readonly manifests: ReadonlyArray<Record<string, unknown>>;
}

export class ReferrersService {
  constructor(private readonly deps: RegistryDeps) {}

  /**
   * The referrers of `subject` in `repository`, optionally only those of `artifactType`. Always an index (empty
   * when there are none, also for an unknown subject or repository), never an error.
   */
  async list(repository: string, subject: Digest, artifactType?: string): Promise<ReferrersIndex> {
    const records = await this.deps.metadata.listReferrers(
      repository,
      subject,
      artifactType !== undefined ? { artifactType } : {},
    );
    return {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: records.map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType !== null ? { artifactType: r.artifactType } : {}),
        ...(r.annotations !== null ? { annotations: r.annotations } : {}),
      })),
    };
  }
}
