import type { S3ClientConfig } from '@aws-sdk/client-s3';

/**
 * The SDK's logger. Only warnings reach `target`: the SDK logs every failed request at error level, including
 * the expected ones (a HeadObject of an absent key, a ranged GET past the end), which the driver answers as
 * results or typed errors. Also dropped: the warning printed whenever a request with a stream body fails (such
 * requests are not retried), which the driver reports as the rejection it is.
 */
export function sdkLogger(target: Pick<Console, 'warn'>): NonNullable<S3ClientConfig['logger']> {
  const ignore = () => undefined;
  return {
    trace: ignore,
    debug: ignore,
    info: ignore,
    warn: (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('non-retryable streaming request')) return;
      target.warn(...args);
    },
    error: ignore,
  };
}
