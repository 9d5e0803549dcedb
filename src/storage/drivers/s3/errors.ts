/** How the S3 driver reads the SDK's errors, and the one error of its own its modules pass between them. */

/** Thrown by `S3Bucket.getObjectRange`: the range ends past the object's end. */
export class OutOfRange extends Error {
  constructor(readonly size: number) {
    super(`range past the end (size ${size})`);
  }
}

/** An absent object or multipart upload (not an absent bucket, which is a configuration error). */
export function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || httpStatus(err) === 404;
}

/** A range the server refuses (416): it starts past the object's end. */
export function isInvalidRange(err: unknown): boolean {
  return errorName(err) === 'InvalidRange' || httpStatus(err) === 416;
}

/** An operation the server does not implement (s3rver: UploadPartCopy, AbortMultipartUpload). */
export function isUnsupported(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || httpStatus(err) === 501;
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = err.$metadata as { httpStatusCode?: number } | undefined;
  return meta?.httpStatusCode;
}
