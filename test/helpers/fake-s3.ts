/**
 * A real S3-protocol server for tests: s3rver, started in this process on 127.0.0.1 with a random port and a
 * temporary directory, spoken to over HTTP by the AWS SDK (path style, dummy credentials).
 *
 * s3rver 3.7.1 falls short of S3 in ways that matter here, so `startFakeS3` patches it:
 * - It writes objects in place, so concurrent PUTs to one key interleave and a reader can see a half-written
 *   object; S3 publishes every object atomically. Patched always: objects are written aside, checked against
 *   their Content-Length, then renamed.
 * - It implements no AbortMultipartUpload, ListMultipartUploads or UploadPartCopy. The `multipart` flavour adds
 *   them, so the driver's server-side copy and its cleanup of multipart uploads run; the `plain` one keeps
 *   s3rver as it is, so the driver's fallbacks run (parts streamed through, aborts refused).
 * - It answers `Range: bytes=0-0` with the whole object, and breaks ListObjectsV2 pagination on OpenSSL 3 (its
 *   continuation tokens use DES). The driver trims over-long ranges itself; listings in tests stay below 1000 keys.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export type Flavour = 'multipart' | 'plain';

export interface FakeS3 {
  readonly endpoint: string;
  readonly dir: string;
  /** `METHOD operation` of every request served, e.g. `PUT UploadPartCopy`. */
  readonly requests: string[];
  readonly admin: S3Client;
  close(): Promise<void>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: IncomingHttpHeaders;
  req: IncomingMessage;
  status: number;
  body: unknown;
  type: string;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface StoredObject {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: Record<string, unknown>;
}
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<{ content: Readable | null } | null>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<{ md5: string }>;
  putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5: string): Promise<void>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
}
interface S3rverInternals {
  middleware: Middleware[];
  store: FilesystemStore;
}

/** Starts a patched s3rver (see the top of this file); `close()` stops it and removes its directory. */
export async function startFakeS3(flavour: Flavour = 'multipart'): Promise<FakeS3> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir });
  const internals = server as unknown as S3rverInternals;
  const store = internals.store;
  const requests: string[] = [];

  // Atomic PUT: write aside, check the length, rename over the object (as S3 publishes whole objects only).
  store.putObject = async (object) => {
    const file = store.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID()}.tmp`;
    const md5 = createHash('md5');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    try {
      await pipeline(source, counter, createWriteStream(tmp));
      // A PutObject's body is the request itself (the headers are its metadata); an upload's completion is not.
      const announced =
        object.content instanceof IncomingMessage ? object.metadata['content-length'] : undefined;
      if (announced !== undefined && Number(announced) !== size) throw new Error('request body ended early');
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const hex = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, hex);
    return { size, md5: hex };
  };

  const uploadsDir = (bucket: string) => store.getResourcePath(bucket, undefined, 'uploads');
  const xml = (ctx: KoaContext, status: number, body: string) => {
    ctx.status = status;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  };
  const noSuchUpload = (ctx: KoaContext) =>
    xml(
      ctx,
      404,
      '<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>',
    );
  const exists = (file: string) =>
    stat(file).then(
      () => true,
      () => false,
    );

  const multipartExtensions: Middleware = async (ctx, next) => {
    const [bucket = '', ...rest] = ctx.path.slice(1).split('/').map(decodeURIComponent);
    const key = rest.join('/');
    const uploadId = typeof ctx.query.uploadId === 'string' ? ctx.query.uploadId : undefined;
    if (ctx.method === 'DELETE' && key !== '' && uploadId !== undefined) {
      const upload = path.join(uploadsDir(bucket), uploadId);
      if (!/^[0-9a-f]+$/.test(uploadId) || !(await exists(upload))) return noSuchUpload(ctx);
      await rm(upload, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    if (ctx.method === 'GET' && key === '' && 'uploads' in ctx.query) {
      const ids = await readdir(uploadsDir(bucket)).catch(() => [] as string[]);
      const uploads: string[] = [];
      for (const id of ids) {
        const uploadKey = await readFile(path.join(uploadsDir(bucket), id, 'key'), 'utf8').catch(() => null);
        if (uploadKey !== null)
          uploads.push(`<Upload><Key>${uploadKey}</Key><UploadId>${id}</UploadId></Upload>`);
      }
      return xml(
        ctx,
        200,
        `<ListMultipartUploadsResult><Bucket>${bucket}</Bucket><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
      );
    }
    const copySource = ctx.headers['x-amz-copy-source'];
    if (ctx.method === 'PUT' && uploadId !== undefined && typeof copySource === 'string') {
      if (!(await exists(path.join(uploadsDir(bucket), uploadId)))) return noSuchUpload(ctx);
      const [srcBucket = '', ...srcKey] = decodeURIComponent(copySource.replace(/^\//, '')).split('/');
      const range = /^bytes=(\d+)-(\d+)$/.exec(String(ctx.headers['x-amz-copy-source-range'] ?? ''));
      const object = await store.getObject(
        srcBucket,
        srcKey.join('/'),
        range ? { start: Number(range[1]), end: Number(range[2]) } : undefined,
      );
      if (object?.content == null) {
        return xml(
          ctx,
          404,
          '<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>',
        );
      }
      const { md5 } = await store.putPart(bucket, uploadId, Number(ctx.query.partNumber), object.content);
      return xml(
        ctx,
        200,
        `<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`,
      );
    }
    await next();
  };

  const log: Middleware = async (ctx, next) => {
    requests.push(`${ctx.method} ${operationOf(ctx)}`);
    await next();
  };
  // Koa composes `middleware` when the server starts listening: these run before s3rver's own.
  internals.middleware.unshift(...(flavour === 'multipart' ? [log, multipartExtensions] : [log]));

  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const admin = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    dir,
    requests,
    admin,
    close: async () => {
      admin.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The S3 operation a request stands for, as far as these tests care. */
function operationOf(ctx: KoaContext): string {
  const q = ctx.query;
  const isKey = ctx.path.slice(1).includes('/');
  if ('uploads' in q) return isKey ? 'CreateMultipartUpload' : 'ListMultipartUploads';
  if ('uploadId' in q) {
    if (ctx.method === 'PUT') return ctx.headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
    if (ctx.method === 'POST') return 'CompleteMultipartUpload';
    if (ctx.method === 'DELETE') return 'AbortMultipartUpload';
    return 'ListParts';
  }
  if ('delete' in q) return 'DeleteObjects';
  if (!isKey) return ctx.method === 'PUT' ? 'CreateBucket' : 'ListObjects';
  if (ctx.method === 'PUT') return ctx.headers['x-amz-copy-source'] ? 'CopyObject' : 'PutObject';
  return { GET: 'GetObject', HEAD: 'HeadObject', DELETE: 'DeleteObject' }[ctx.method] ?? ctx.method;
}
