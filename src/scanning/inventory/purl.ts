/**
 * Package URLs (https://github.com/package-url/purl-spec): `pkg:<type>/<namespace>/<name>@<version>?<qualifiers>`.
 */

/** Percent-encodes a purl component; ':' stays as is, as the spec allows it unencoded everywhere. */
function encode(component: string): string {
  return encodeURIComponent(component).replace(/%3A/gi, ':');
}

/**
 * A purl from its parts. Namespace segments are encoded one by one; qualifiers with empty values are dropped
 * and the rest sorted by key, as the spec's canonical form requires.
 */
export function purl(
  type: string,
  namespace: string | null,
  name: string,
  version: string | null,
  qualifiers: Record<string, string | null | undefined> = {},
): string {
  let out = `pkg:${type}/`;
  if (namespace) out += `${namespace.split('/').map(encode).join('/')}/`;
  out += encode(name);
  if (version) out += `@${encode(version)}`;
  const pairs = Object.entries(qualifiers)
    .filter((pair): pair is [string, string] => typeof pair[1] === 'string' && pair[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${encode(value)}`);
  if (pairs.length > 0) out += `?${pairs.join('&')}`;
  return out;
}

/** The `distro` qualifier for an OS: `debian-12`, `alpine-3.19.1`; the codename or bare id without a version. */
export function distroQualifier(
  os: { id: string; versionId: string | null; versionCodename: string | null } | null,
): string | null {
  if (!os) return null;
  const version = os.versionId ?? os.versionCodename;
  return version ? `${os.id}-${version}` : os.id;
}
