/**
 * The admission check the registry asks before a tag moves or goes away: is this tag immutable? The rules live
 * elsewhere (`lifecycle/immutable-tags.ts`, injected as `RegistryDeps.immutableTags`); this module holds the port
 * and the one error every refusal raises, so that clients print the same sentence whichever way they tried
 * (`tag v1 of team/app is immutable`, 403 DENIED).
 */
import type { Digest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';

export interface TagImmutability {
  /**
   * True when a rule of the repository's namespace makes `tag` of `repository` immutable, whether or not the tag
   * exists. Cached for a short time: a rule added on another instance applies here within that time.
   */
  isImmutable(repository: string, tag: string): Promise<boolean>;

  /** The immutable tags of `repository` that point at the manifest `digest`, in byte-wise order; empty if none. */
  immutableTagsOn(repository: string, digest: Digest): Promise<string[]>;

  /** The first (byte-wise) immutable tag of `repository`, or null when none of its tags is immutable. */
  firstImmutableTag(repository: string): Promise<string | null>;
}

/** A change refused because it would move or remove an immutable tag: 403 DENIED. */
export class ImmutableTagError extends RegistryError {
  constructor(
    readonly repository: string,
    readonly tag: string,
  ) {
    super('DENIED', `tag ${tag} of ${repository} is immutable`, { detail: { repository, tag } });
  }
}
