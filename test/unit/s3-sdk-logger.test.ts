/** The adapter from the AWS SDK's logger calls to the application's Logger (the S3 driver's `logger` option). */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';

import type { Logger } from '../../src/logger.ts';
import { sdkLogger } from '../../src/storage/drivers/s3/sdk-logger.ts';

interface Line {
  readonly level: string;
  readonly fields: object;
  readonly message: string | undefined;
}

function recording(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const record = (level: string) => (fields: object, message?: string) =>
    lines.push({ level, fields, message });
  return {
    lines,
    logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
  };
}

describe('sdkLogger', () => {
  it('writes SDK warnings as warnings, with the strings as the message', () => {
    const { logger, lines } = recording();
    sdkLogger(logger).warn('@smithy/node-http-handler:WARN - socket usage at capacity=1', 'and more');
    assert.deepEqual(lines, [
      {
        level: 'warn',
        fields: { source: 'aws-sdk' },
        message: '@smithy/node-http-handler:WARN - socket usage at capacity=1 and more',
      },
    ]);
  });

  it('writes request lines at debug, failures too, keeping named fields and not the objects', () => {
    const { logger, lines } = recording();
    const sdk = sdkLogger(logger);
    const body = Readable.from([Buffer.from('secret bytes')]);
    sdk.info({
      clientName: 'S3Client',
      commandName: 'PutObjectCommand',
      input: { Bucket: 'b', Key: 'blobs/x', Body: body },
      output: { ETag: '"e"' },
      metadata: { httpStatusCode: 200, requestId: 'r' },
    });
    const error = Object.assign(new Error('Not Found'), {
      name: 'NotFound',
      $metadata: { httpStatusCode: 404 },
    });
    sdk.error({
      clientName: 'S3Client',
      commandName: 'HeadObjectCommand',
      input: { Bucket: 'b', Key: 'blobs/y' },
      error,
      metadata: error.$metadata,
    });
    sdk.debug('endpoint resolved');
    assert.deepEqual(lines, [
      {
        level: 'debug',
        fields: { source: 'aws-sdk', command: 'PutObjectCommand', key: 'blobs/x', status: 200 },
        message: 'PutObjectCommand succeeded',
      },
      {
        level: 'debug',
        fields: {
          source: 'aws-sdk',
          command: 'HeadObjectCommand',
          key: 'blobs/y',
          status: 404,
          err: { name: 'NotFound', message: 'Not Found' },
        },
        message: 'HeadObjectCommand failed',
      },
      { level: 'debug', fields: { source: 'aws-sdk' }, message: 'endpoint resolved' },
    ]);
  });

  it('writes the note about a failed streaming request at debug: the driver reports that failure itself', () => {
    const { logger, lines } = recording();
    sdkLogger(logger).warn('An error was encountered in a non-retryable streaming request.');
    assert.deepEqual(
      lines.map((line) => line.level),
      ['debug'],
    );
  });

  it('masks query strings of URLs and signing values, in messages and error messages', () => {
    const { logger, lines } = recording();
    const url =
      'https://bucket.s3.amazonaws.com/blobs/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20250101' +
      '&X-Amz-Signature=0123456789abcdef';
    sdkLogger(logger).warn(
      `redirected to ${url}`,
      new Error(
        'Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/s3, Signature=abcdef',
      ),
    );
    assert.deepEqual(lines, [
      {
        level: 'warn',
        fields: {
          source: 'aws-sdk',
          err: {
            name: 'Error',
            message: 'Authorization: AWS4-HMAC-SHA256 Credential=[redacted], Signature=[redacted]',
          },
        },
        message: 'redirected to https://bucket.s3.amazonaws.com/blobs/x?[redacted]',
      },
    ]);
    assert.doesNotMatch(JSON.stringify(lines), /AKIAEXAMPLE|0123456789abcdef/);
  });
});
