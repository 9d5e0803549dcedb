/**
 * What a policy selects and where it puts it: repository and tag globs (`auth/glob.ts` syntax: `*` within a path
 * component, `**` across), the destination name rewrite, and the tags of the cosign tag scheme
 * (`sha256-<hex>.sig|.att|.sbom`), which travel with their subject rather than as tags of their own.
 */
import { globMatch } from '../auth/glob.ts';
import type { Digest } from '../oci/digest.ts';
import type { ReplicationPolicyRecord, Rewrite } from '../metadata/replication-store.ts';

/** Suffixes of the cosign tag scheme, in the order they are looked up. */
export const REFERRER_TAG_SUFFIXES = ['sig', 'att', 'sbom'] as const;

const REFERRER_TAG = /^sha(256|512)-[0-9a-f]{64,128}\.(sig|att|sbom)$/;

/** Whether `tag` names a signature, attestation or SBOM in the cosign tag scheme. */
export function isReferrerTag(tag: string): boolean {
  return REFERRER_TAG.test(tag);
}

/** The cosign scheme tag of a referrer of `subject` with `suffix`. */
export function referrerTag(subject: Digest, suffix: string): string {
  return `${subject.replace(':', '-')}.${suffix}`;
}

/** The cosign scheme suffix for an artifact type: SBOMs `.sbom`, attestations `.att`, everything else `.sig`. */
export function suffixFor(artifactType: string | undefined): string {
  const t = (artifactType ?? '').toLowerCase();
  if (t.includes('sbom') || t.includes('spdx') || t.includes('cyclonedx')) return 'sbom';
  if (t.includes('attestation') || t.includes('in-toto') || t.includes('intoto') || t.includes('dsse'))
    return 'att';
  return 'sig';
}

type Filters = Pick<ReplicationPolicyRecord, 'repositories' | 'excludeRepositories' | 'tags' | 'excludeTags'>;

/** Whether the policy copies repository `name` (of the source). */
export function repositoryMatches(policy: Filters, name: string): boolean {
  if (policy.repositories.length > 0 && !policy.repositories.some((g) => globMatch(g, name))) return false;
  return !policy.excludeRepositories.some((g) => globMatch(g, name));
}

/** Whether the policy copies `tag` (cosign scheme tags never match: they go with their subject). */
export function tagMatches(policy: Filters, tag: string): boolean {
  if (isReferrerTag(tag)) return false;
  if (policy.tags.length > 0 && !policy.tags.some((g) => globMatch(g, tag))) return false;
  return !policy.excludeTags.some((g) => globMatch(g, tag));
}

/** The destination name of source repository `name`. */
export function rewriteName(rewrite: Rewrite, name: string): string {
  let out = name;
  const strip = rewrite.stripPrefix.replace(/\/+$/, '');
  if (strip !== '') {
    if (out === strip) out = '';
    else if (out.startsWith(`${strip}/`)) out = out.slice(strip.length + 1);
  }
  const add = rewrite.addPrefix.replace(/\/+$/, '');
  if (add !== '') out = out === '' ? add : `${add}/${out}`;
  return out === '' ? name : out;
}
