/**
 * A client of another registry's distribution API (an upstream a pull-through cache reads from, a replication
 * peer): what the proxy and replication use, whatever the remote runs (Berth, CNCF Distribution, Docker Hub...).
 *
 * Every method talks to the first of the endpoint's URLs that answers; a network error, a timeout or a 5xx moves
 * to the next URL for requests that can be repeated (every read, and writes that have not sent a body yet).
 * Authentication follows the remote's challenge: the Docker token flow (Bearer: a token for the scopes the
 * operation needs, cached until it expires) or Basic; credentials go only to the realm the remote named in its
 * challenge, never to a redirect target.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';

/** Where a remote registry is and how to reach it. */
export interface RemoteEndpoint {
  /** Base URLs (`https://host[:port]`, no path), tried in order: the first is the primary, the rest fallbacks. */
  readonly urls: readonly string[];
  /** Credentials for the remote's Basic auth or its token service; null: anonymous. */
  readonly credentials?: { readonly username: string; readonly password: string } | null;
  /** PEM certificates to trust besides the system's (a private CA); null: the system's only. */
  readonly caBundle?: string | null;
  /** Skip TLS certificate verification (test setups only). */
  readonly insecure?: boolean;
  /** Connection and response-header timeout, and the longest silence while reading a body, in ms (default 30 s). */
  readonly timeoutMs?: number;
}

/** What a remote answered for a manifest HEAD. */
export interface RemoteManifestHead {
  /** From `Docker-Content-Digest`; null when the remote did not send one. */
  readonly digest: Digest | null;
  readonly mediaType: string;
  readonly size: number;
}

/** A manifest as fetched: its exact bytes. */
export interface RemoteManifest {
  /** The digest of `body` (computed; checked against the reference when it was a digest). */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly body: Buffer;
}

/** A blob being read from the remote. */
export interface RemoteBlob {
  readonly size: number;
  /**
   * The bytes. Errors (destroyed with a RemoteError) when the connection fails or ends before `size` bytes: a
   * reader never sees a short blob as a complete one. The caller verifies the digest.
   */
  readonly body: Readable;
}

export type RemoteErrorKind = 'network' | 'timeout' | 'http' | 'protocol';

/** The remote could not be reached, or answered with an error. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly kind: RemoteErrorKind,
    readonly details: {
      /** The HTTP status for kind `http`. */
      readonly status?: number;
      /** The first OCI error code of the body, when it had one. */
      readonly code?: string;
      /** Seconds from `Retry-After`, when sent (429, 503). */
      readonly retryAfter?: number;
      readonly cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'RemoteError';
  }

  /** Whether trying again later may help: network errors, timeouts, 429 and 5xx. */
  get transient(): boolean {
    if (this.kind === 'network' || this.kind === 'timeout') return true;
    const status = this.details.status ?? 0;
    return status === 429 || status >= 500;
  }
}

/** Options for each call. */
export interface CallOptions {
  /**
   * Aborts the request (and destroys a body being read); the call rejects, or the body errors, with the
   * signal's reason (an AbortError unless the caller gave another), not a RemoteError.
   */
  readonly signal?: AbortSignal;
}

/** Options of the listing calls. */
export interface ListOptions extends CallOptions {
  /** Entries asked per page (`n`); the remote's default page size when absent. */
  readonly pageSize?: number;
}

export interface RegistryClient {
  /** The endpoint's primary URL (for messages and logs). */
  readonly url: string;

  /** `GET /v2/`, authenticating if challenged; throws a RemoteError when the remote is unusable. */
  ping(options?: CallOptions): Promise<void>;

  /**
   * HEAD of a manifest by tag or digest with `accept` (default: every OCI and Docker manifest and index type).
   * Null when the remote answers 404; throws a RemoteError for other failures.
   */
  headManifest(
    repository: string,
    reference: string,
    accept?: readonly string[],
    options?: CallOptions,
  ): Promise<RemoteManifestHead | null>;

  /**
   * GET of a manifest by tag or digest: its exact bytes (at most `maxSize`, default 4 MiB; larger is a
   * RemoteError of kind `protocol`). By digest, bytes that do not hash to it are a `protocol` RemoteError. Null
   * on 404.
   */
  getManifest(
    repository: string,
    reference: string,
    accept?: readonly string[],
    options?: CallOptions & { readonly maxSize?: number },
  ): Promise<RemoteManifest | null>;

  /** The blob's size when the remote has it in `repository`, null on 404. */
  headBlob(repository: string, digest: Digest, options?: CallOptions): Promise<number | null>;

  /**
   * Starts reading the blob (following redirects, without credentials to other hosts). Null on 404. The body
   * must be consumed or destroyed.
   */
  getBlob(repository: string, digest: Digest, options?: CallOptions): Promise<RemoteBlob | null>;

  /**
   * Asks the remote to mount `digest` from `from` into `repository` (`POST ?mount=&from=`). True when mounted
   * (201); false when the remote started an upload instead (which is cancelled) or refused.
   */
  mountBlob(repository: string, digest: Digest, from: string, options?: CallOptions): Promise<boolean>;

  /**
   * Uploads a blob: `size` bytes from `body`, streamed (never buffered whole), committed under `digest`. The
   * remote verifies the digest. `body` is consumed or destroyed in every case (destroyed unread when the remote
   * answers the upload's POST with 201, having the blob already). A `body` that fails, or carries more or fewer
   * than `size` bytes, rejects with its own error (not a RemoteError) and the upload is cancelled.
   */
  putBlob(
    repository: string,
    digest: Digest,
    size: number,
    body: Readable,
    options?: CallOptions,
  ): Promise<void>;

  /** Pushes manifest bytes exactly as given under `reference` (a tag or the digest); resolves to the digest. */
  putManifest(
    repository: string,
    reference: string,
    mediaType: string,
    body: Buffer,
    options?: CallOptions,
  ): Promise<Digest>;

  /**
   * Deletes a manifest by digest, or a tag by name where the remote supports deleting tags. False on 404; a
   * RemoteError (status 405 or code UNSUPPORTED) when the remote does not allow it.
   */
  deleteManifest(repository: string, reference: string, options?: CallOptions): Promise<boolean>;

  /** Every tag of the repository, following `Link` pagination; empty when the repository is unknown. */
  listTags(repository: string, options?: ListOptions): AsyncIterable<string>;

  /**
   * The referrers of `digest` through the referrers API; null when the remote does not have that API (404 on the
   * endpoint, as Distribution 2.8 answers), so the caller may fall back to the tag scheme (`sha256-<hex>` tags).
   */
  listReferrers(repository: string, digest: Digest, options?: CallOptions): Promise<Descriptor[] | null>;

  /** Every repository of the remote's catalog, following pagination. */
  catalog(options?: ListOptions): AsyncIterable<string>;
}
