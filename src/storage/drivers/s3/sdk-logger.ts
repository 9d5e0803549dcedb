import type { S3ClientConfig } from '@aws-sdk/client-s3';

import type { Logger } from '../../../logger.ts';

/** The logger shape the AWS SDK takes: methods called with any arguments, strings, errors and objects. */
export type SdkLogger = NonNullable<S3ClientConfig['logger']>;

/**
 * The AWS SDK's logger (of the client and of its HTTP handler), writing to `logger` in its `(fields, message)`
 * shape, each line with `source: 'aws-sdk'`.
 *
 * Levels. SDK warnings (sockets at capacity, a response it could not parse...) are warnings. Everything else is
 * debug: the SDK logs every request, at info when it succeeds and at error when it fails, expected failures
 * included (a HeadObject of an absent key, a ranged GET past the end), which the driver answers as results or
 * typed errors and its callers log as they see fit. So is the warning the SDK writes whenever a request with a
 * stream body fails (such requests are not retried): the driver reports that failure as the rejection it is.
 * There is no `trace`, so the SDK does not even build those lines.
 *
 * Contents. The SDK's strings, joined, are the message; of its objects only named fields are kept (command, key,
 * HTTP status, an error's name and message), never the objects themselves: a request's input and output hold
 * bodies (streams), an error from the server may hold the string it signed. The client's configuration, and so
 * its credentials, never reaches a line. URLs lose their query string, where a presigned URL carries its
 * credential and signature, and `Credential=`/`Signature=` values are masked wherever they appear.
 */
export function sdkLogger(logger: Logger): SdkLogger {
  const debug = (...content: unknown[]) => write(logger, 'debug', content);
  return {
    debug,
    info: debug,
    warn: (...content: unknown[]) => {
      const streamingNote =
        typeof content[0] === 'string' && content[0].includes('non-retryable streaming request');
      write(logger, streamingNote ? 'debug' : 'warn', content);
    },
    error: debug,
  };
}

function write(logger: Logger, level: 'debug' | 'warn', content: readonly unknown[]): void {
  const fields: Record<string, unknown> = { source: 'aws-sdk' };
  const words: string[] = [];
  for (const item of content) {
    if (item instanceof Error) fields.err = errorFields(item);
    else if (typeof item === 'object' && item !== null) Object.assign(fields, requestFields(item));
    else if (item !== undefined) words.push(redact(String(item)));
  }
  const message = words.length > 0 ? words.join(' ') : requestMessage(fields);
  logger[level](fields, message);
}

/** The message of a line without text: the request it tells of. */
function requestMessage(fields: Record<string, unknown>): string {
  if (typeof fields.command !== 'string') return 'AWS SDK';
  return `${fields.command} ${'err' in fields ? 'failed' : 'succeeded'}`;
}

/** What the SDK's line about one request (`{clientName, commandName, input, output, error, metadata}`) tells. */
function requestFields(entry: object): Record<string, unknown> {
  const { commandName, input, error, metadata } = entry as {
    commandName?: unknown;
    input?: { Key?: unknown };
    error?: unknown;
    metadata?: { httpStatusCode?: unknown };
  };
  const fields: Record<string, unknown> = {};
  if (typeof commandName === 'string') fields.command = commandName;
  if (typeof input?.Key === 'string') fields.key = input.Key;
  if (typeof metadata?.httpStatusCode === 'number') fields.status = metadata.httpStatusCode;
  if (error instanceof Error) fields.err = errorFields(error);
  return fields;
}

function errorFields(err: Error): { name: string; message: string } {
  return { name: err.name, message: redact(err.message) };
}

const URL_QUERY = /(\bhttps?:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi;
const SIGNING_VALUE =
  /\b(Credential|Signature|X-Amz-Credential|X-Amz-Signature|X-Amz-Security-Token)=[^\s&,;"'<>]+/gi;

/** `text` without URL query strings and signing values. */
function redact(text: string): string {
  return text.replace(URL_QUERY, '$1?[redacted]').replace(SIGNING_VALUE, '$1=[redacted]');
}
