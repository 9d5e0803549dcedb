/**
 * An upstream registry of the pull-through cache: where it is, how to reach it, which of its repositories are
 * cached under which local namespace, and how long a cached tag is trusted. Upstreams come from the
 * configuration file (`proxy.upstreams`) or the admin API (stored in `upstreams`); both are described by the
 * same settings.
 *
 * Names: the upstream's repository `library/alpine` is cached as `<namespace>/library/alpine`. A `dockerhub`
 * upstream reads a one-component name as Docker Hub does: `alpine` is `library/alpine`.
 */
import { z } from 'zod';
import { duration, formatDuration } from '../config/duration.ts';
import { globMatch } from '../auth/glob.ts';
import { isValidRepositoryName } from '../oci/reference.ts';

/** Docker Hub's names for itself, which `?ns=` and client configurations use. */
export const DOCKER_HUB_HOSTS = ['docker.io', 'index.docker.io', 'registry-1.docker.io'] as const;

const upstreamUrl = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && (u.pathname === '/' || u.pathname === '');
    } catch {
      return false;
    }
  }, 'expected an http(s) URL without a path, e.g. https://registry-1.docker.io')
  .transform((v) => new URL(v).origin);

const glob = z.string().min(1).max(256);

/** A namespace: lowercase path components, as repository names have. */
export const namespaceSchema = z
  .string()
  .min(1)
  .max(128)
  .refine(isValidRepositoryName, 'expected a namespace such as `hub` or `cache/quay` (lowercase components)');

/** Everything about an upstream but its name, namespace and credentials. */
export const upstreamSettingsSchema = z
  .object({
    /** `dockerhub` reads `alpine` as `library/alpine`. */
    kind: z.enum(['registry', 'dockerhub']).default('registry'),
    /** The primary URL, then fallbacks tried in order when it fails. */
    urls: z.array(upstreamUrl).min(1).max(10),
    /** Host names `?ns=` may name for this upstream; the URLs' hosts (and Docker Hub's names) are added. */
    hosts: z.array(z.string().min(1).max(255)).max(20).default([]),
    /**
     * Serve repository names outside every upstream's namespace from this upstream (dockerd `registry-mirrors`):
     * at most one upstream may be the mirror. Names that exist as local repositories stay local.
     */
    mirror: z.boolean().default(false),
    /** Upstream repository names cached (globs over the upstream's name, e.g. `library/*`). */
    include: z.array(glob).min(1).max(100).default(['**']),
    exclude: z.array(glob).max(100).default([]),
    /** How long a cached tag is served without asking the upstream again, in ms. */
    recheckInterval: duration.prefault('5m'),
    /** When the upstream fails (5xx, 429, timeout, network), serve what is cached with a `Warning` header. */
    serveStale: z.boolean().default(true),
    /** Most requests to the upstream at once from one instance (the rest wait). */
    maxConcurrentFetches: z.number().int().min(1).max(1000).default(16),
    /** Tags neither pulled nor refreshed for this many days are untagged by retention; null: kept. */
    evictAfterDays: z.number().int().min(1).max(36_500).nullable().default(null),
    /** PEM certificates to trust for the upstream (a private CA). */
    caBundle: z.string().max(1_000_000).nullable().default(null),
    /** Skip TLS certificate verification (test setups only). */
    insecure: z.boolean().default(false),
    /** Connection, response and body-silence timeout, in ms. */
    timeout: duration.refine((ms) => ms >= 100, 'must be 100ms or more').prefault('30s'),
  })
  .strict();

export type UpstreamSettings = z.output<typeof upstreamSettingsSchema>;

/** The settings as a document `upstreamSettingsSchema` parses back to the same settings (stored, shown). */
export function settingsDocument(settings: UpstreamSettings): Record<string, unknown> {
  return {
    ...settings,
    recheckInterval: formatDuration(settings.recheckInterval),
    timeout: formatDuration(settings.timeout),
  };
}

/** An upstream in the configuration file: its settings, name, namespace and credentials. */
export const configUpstreamSchema = upstreamSettingsSchema
  .extend({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'expected a name of lowercase letters, digits, `.`, `_`, `-`'),
    namespace: namespaceSchema,
    username: z.string().min(1).nullable().default(null),
    password: z.string().min(1).nullable().default(null),
  })
  .strict();

export interface UpstreamCredentials {
  readonly username: string;
  readonly password: string;
}

/** An upstream as the cache uses it. */
export interface Upstream {
  readonly name: string;
  /** The local namespace it is cached under. */
  readonly namespace: string;
  readonly settings: UpstreamSettings;
  readonly credentials: UpstreamCredentials | null;
  /** Where it is defined: the configuration file (read-only through the API) or the API. */
  readonly source: 'config' | 'api';
}

/** The upstream's repository for `rest`, a name below its namespace (or a mirror request's name). */
export function upstreamRepository(upstream: Upstream, rest: string): string {
  if (upstream.settings.kind === 'dockerhub' && !rest.includes('/')) return `library/${rest}`;
  return rest;
}

/** Whether the upstream's include and exclude globs admit its repository `remote`. */
export function upstreamAdmits(upstream: Upstream, remote: string): boolean {
  const { include, exclude } = upstream.settings;
  return include.some((g) => globMatch(g, remote)) && !exclude.some((g) => globMatch(g, remote));
}

/** The hosts `?ns=` may name for the upstream, lowercase. */
export function upstreamHosts(upstream: Upstream): Set<string> {
  const hosts = new Set(upstream.settings.hosts.map((h) => h.toLowerCase()));
  for (const url of upstream.settings.urls) hosts.add(new URL(url).host.toLowerCase());
  if (upstream.settings.kind === 'dockerhub') for (const h of DOCKER_HUB_HOSTS) hosts.add(h);
  return hosts;
}
