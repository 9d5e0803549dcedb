import type { NewDomainEvent } from '../events/event.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { Digest } from '../oci/digest.ts';
import type { StorageDriver } from '../storage/driver.ts';
import type { SignatureService } from '../signing/service.ts';
import type { PullPolicy } from './pull-policy.ts';
import type { TagImmutability } from './tag-immutability.ts';

/** What the registry services are built from (see `container.ts`). */
export interface RegistryDeps {
  readonly storage: StorageDriver;
  readonly metadata: MetadataStore;
  readonly options: RegistryOptions;
  /** Where pull events go (best effort, see `pull-events.ts`); absent: pulls are not recorded. */
  readonly pullEvents?: PullEventSink;
  /** Which tags may not move or be deleted (see `tag-immutability.ts`); absent: every tag is mutable. */
  readonly immutableTags?: TagImmutability;
  /** Where pull statistics go (see `lifecycle/pull-stats.ts`); absent: pulls are not counted. */
  readonly pullStats?: PullStatsSink;
  /**
   * Signature verification (see `signing/service.ts`): pushed signatures are admitted and verified through it,
   * pulls of images checked against it; absent: no signature checks.
   */
  readonly signatures?: SignatureService;
  /**
   * Checks applied to every pull of a manifest, in order (see `pull-policy.ts`): the signature policy, the
   * vulnerability policy. Absent: none.
   */
  readonly pullPolicies?: readonly PullPolicy[];
}

/** Counts pulls in memory, for a later batched write. */
export interface PullStatsSink {
  /** Counts one pull of `digest` in `repository` (by `tag`, or null by digest); returns at once, never throws. */
  record(repository: string, digest: Digest, tag: string | null): void;
}

/** Takes pull events off the request path. */
export interface PullEventSink {
  /** Whether some subscriber wants pull events now (cheap: a cached answer). */
  readonly active: boolean;
  /** Records the event; returns at once, never throws. */
  record(event: NewDomainEvent): void;
}

export interface RegistryOptions {
  /** When false, every delete answers UNSUPPORTED. */
  readonly deletes: boolean;
  /** Largest manifest body accepted, in bytes. */
  readonly maxManifestSize: number;
  /** Upload sessions idle longer than this (ms) are purged. */
  readonly uploadPurgeAfter: number;
  /**
   * New uploads are refused while the storage reports less free space than this, in bytes (only drivers with
   * `freeSpace()`); 0 or absent: never.
   */
  readonly minFreeSpace?: number;
  /** A push taking a namespace's usage from below to at least this fraction of its quota stores `quota.warning`. */
  readonly quotaWarningThreshold?: number;
  /**
   * Accept manifests whose referenced blobs or child manifests are missing from the repository (sparse
   * manifests, as the distribution-spec's conformance tests push); false: MANIFEST_BLOB_UNKNOWN.
   */
  readonly sparseManifests?: boolean;
  /** When set, blob GETs are redirected to presigned storage URLs valid this long (s), if the driver has them. */
  readonly blobRedirectSeconds?: number | null;
}
