/**
 * Repository names and references (tags or digests) as the distribution-spec defines them.
 * Name: path components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, 255 characters at most.
 * Tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
 */
import { type Digest, parseDigest } from './digest.ts';
import { ManifestInvalidError, ManifestUnknownError, NameInvalidError } from './errors.ts';

const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

/** True when `name` is a valid repository name. */
export function isValidRepositoryName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  for (const component of name.split('/')) {
    if (!COMPONENT_RE.test(component)) return false;
  }
  return true;
}

/** Throws NAME_INVALID unless `name` is a valid repository name. */
export function assertRepositoryName(name: string): void {
  if (!isValidRepositoryName(name)) {
    throw new NameInvalidError(`invalid repository name: ${JSON.stringify(name.slice(0, 300))}`, {
      detail: { name: name.slice(0, 300) },
    });
  }
}

/** True when `tag` is a valid tag. */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export type Reference =
  { readonly kind: 'tag'; readonly tag: string } | { readonly kind: 'digest'; readonly digest: Digest };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`: a digest when it has a digest's shape (then it
 * must be valid and supported, else DIGEST_INVALID), else a tag. The spec has no code for a malformed tag: on a
 * write it is MANIFEST_INVALID (400), on a read MANIFEST_UNKNOWN (404), since no such manifest can exist.
 */
export function parseReference(ref: string, forWrite: boolean): Reference {
  if (ref.includes(':')) return { kind: 'digest', digest: parseDigest(ref).digest };
  if (!isValidTag(ref)) {
    if (forWrite) throw new InvalidTagError(ref);
    throw new ManifestUnknownError(`invalid tag: ${JSON.stringify(ref.slice(0, 200))}`, {
      detail: { tag: ref.slice(0, 200) },
    });
  }
  return { kind: 'tag', tag: ref };
}

/** A malformed tag on a write. */
export class InvalidTagError extends ManifestInvalidError {
  constructor(tag: string) {
    super(`invalid tag: ${JSON.stringify(tag.slice(0, 200))}`, { detail: { tag: tag.slice(0, 200) } });
  }
}
