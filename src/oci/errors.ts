/**
 * The OCI distribution-spec error catalogue: every error a handler can raise, with its code and HTTP status
 * in one place. Handlers throw these; only the HTTP error handler turns them into the JSON envelope
 * `{"errors":[{"code","message","detail"}]}`.
 */

export type ErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'INSUFFICIENT_STORAGE'
  | 'UNAVAILABLE'
  | 'UNKNOWN';

/** code -> [HTTP status, default message]; the one table that maps spec codes to the wire. */
export const ERROR_CATALOGUE: Record<ErrorCode, readonly [number, string]> = {
  BLOB_UNKNOWN: [404, 'blob unknown to registry'],
  BLOB_UPLOAD_INVALID: [400, 'blob upload invalid'],
  BLOB_UPLOAD_UNKNOWN: [404, 'blob upload unknown to registry'],
  DIGEST_INVALID: [400, 'provided digest did not match uploaded content'],
  MANIFEST_BLOB_UNKNOWN: [400, 'manifest references a manifest or blob unknown to registry'],
  MANIFEST_INVALID: [400, 'manifest invalid'],
  MANIFEST_UNKNOWN: [404, 'manifest unknown to registry'],
  NAME_INVALID: [400, 'invalid repository name'],
  NAME_UNKNOWN: [404, 'repository name not known to registry'],
  SIZE_INVALID: [400, 'provided length did not match content length'],
  UNAUTHORIZED: [401, 'authentication required'],
  DENIED: [403, 'requested access to the resource is denied'],
  UNSUPPORTED: [405, 'the operation is unsupported'],
  TOOMANYREQUESTS: [429, 'too many requests'],
  RANGE_INVALID: [416, 'invalid content range'],
  PAGINATION_NUMBER_INVALID: [400, 'invalid number of results requested'],
  // Not a distribution-spec code (the spec has none for this): 507 Insufficient Storage (RFC 4918) tells
  // clients the request may succeed once space is freed, and they print the message.
  INSUFFICIENT_STORAGE: [507, "the registry's storage is full"],
  // Not a distribution-spec code either; Distribution answers it for an unreachable upstream of its proxy.
  UNAVAILABLE: [503, 'service unavailable'],
  UNKNOWN: [500, 'unknown error'],
};

/** Base of every error that reaches a client as a spec error envelope. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. `Retry-After`, `Range`, `Content-Range`). */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { detail?: unknown; status?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    const [status, fallback] = ERROR_CATALOGUE[code];
    super(message ?? fallback, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status ?? status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

type Opts = { detail?: unknown; headers?: Record<string, string>; cause?: unknown };

export class BlobUnknownError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('BLOB_UNKNOWN', message, o);
  }
}
export class BlobUploadInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('BLOB_UPLOAD_INVALID', message, o);
  }
}
export class BlobUploadUnknownError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('BLOB_UPLOAD_UNKNOWN', message, o);
  }
}
export class DigestInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('DIGEST_INVALID', message, o);
  }
}
export class ManifestBlobUnknownError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('MANIFEST_BLOB_UNKNOWN', message, o);
  }
}
export class ManifestInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('MANIFEST_INVALID', message, o);
  }
}
export class ManifestUnknownError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('MANIFEST_UNKNOWN', message, o);
  }
}
export class NameInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('NAME_INVALID', message, o);
  }
}
export class NameUnknownError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('NAME_UNKNOWN', message, o);
  }
}
export class SizeInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('SIZE_INVALID', message, o);
  }
}
export class UnsupportedError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('UNSUPPORTED', message, o);
  }
}
/** 416 for an unsatisfiable Range or an out-of-order Content-Range. */
export class RangeInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('RANGE_INVALID', message, o);
  }
}
export class PaginationNumberInvalidError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('PAGINATION_NUMBER_INVALID', message, o);
  }
}
/** The registry's storage is full (or, for new uploads, nearly full): 507; retrying later may succeed. */
export class InsufficientStorageError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('INSUFFICIENT_STORAGE', message, o);
  }
}
/** The request cannot be served right now; retrying after `Retry-After` will succeed: 429 TOOMANYREQUESTS. */
export class TooManyRequestsError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('TOOMANYREQUESTS', message, o);
  }
}
/** Content the registry would fetch from an upstream cannot be had now (503; retry later). */
export class UnavailableError extends RegistryError {
  constructor(message?: string, o: Opts = {}) {
    super('UNAVAILABLE', message, o);
  }
}
/** A body larger than a limit: the spec's code is SIZE_INVALID, the status 413. */
export class PayloadTooLargeError extends RegistryError {
  constructor(message: string, o: Opts = {}) {
    super('SIZE_INVALID', message, { ...o, status: 413 });
  }
}
