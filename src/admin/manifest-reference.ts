/** Resolving the manifest an admin request names by repository and reference (a tag or a digest). */
import type { ManifestRecord, MetadataStore } from '../metadata/store.ts';
import { RegistryError } from '../oci/errors.ts';
import { isValidRepositoryName, parseReference, type Reference } from '../oci/reference.ts';
import type { Actor, AdminService } from './admin-service.ts';
import { invalid, notFound } from './errors.ts';

/** A tag or a digest; anything else is `invalid` naming `reference`. */
export function referenceOf(reference: string): Reference {
  try {
    return parseReference(reference, true);
  } catch (e) {
    if (e instanceof RegistryError) {
      throw invalid(`${JSON.stringify(reference.slice(0, 300))} is neither a tag nor a digest`, 'reference');
    }
    throw e;
  }
}

/**
 * The manifest `reference` of `repository`, for an actor that may pull the repository (`forbidden` otherwise,
 * saying `what` was refused); `invalid` for a bad name or reference, `not-found` when it resolves to nothing.
 */
export async function resolveManifest(
  admin: Pick<AdminService, 'requireRepositoryAction'>,
  metadata: Pick<MetadataStore, 'getManifest' | 'getManifestByTag'>,
  actor: Actor,
  repository: string,
  reference: string,
  what: string,
): Promise<ManifestRecord> {
  if (!isValidRepositoryName(repository)) {
    throw invalid(`${JSON.stringify(repository.slice(0, 300))} is not a repository name`, 'repository');
  }
  const ref = referenceOf(reference);
  await admin.requireRepositoryAction(actor, repository, 'pull', what);
  const record =
    ref.kind === 'tag'
      ? await metadata.getManifestByTag(repository, ref.tag)
      : await metadata.getManifest(repository, ref.digest);
  if (record === null) throw notFound(`manifest ${reference} is not known in ${repository}`);
  return record;
}
