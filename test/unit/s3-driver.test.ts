/** The S3 driver against a real S3-protocol server (s3rver, patched: see `test/helpers/fake-s3.ts`). */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { credentials, startFakeS3, type FakeS3, type Flavour } from '../helpers/fake-s3.ts';

import type { Logger } from '../../src/logger.ts';

import {
  InvalidPathError,
  ObjectNotFoundError,
  StorageError,
  UploadNotFoundError,
  type UploadHandle,
} from '../../src/storage/driver.ts';
import { MIN_PART_SIZE, S3Driver, type S3DriverOptions } from '../../src/storage/drivers/s3.ts';
import {
  chunksOf,
  collect,
  randomBody,
  readAll,
  runDriverSuite,
  sha256Of,
} from '../../src/storage/testing/driver-suite.ts';

const MiB = 1024 * 1024;

const servers = new Map<Flavour, Promise<FakeS3>>();

function fakeS3(flavour: Flavour): Promise<FakeS3> {
  let server = servers.get(flavour);
  if (server === undefined) {
    server = startFakeS3(flavour);
    servers.set(flavour, server);
  }
  return server;
}

after(async () => {
  for (const server of servers.values()) await (await server).close();
});

/** A fresh bucket on the server and the options of a driver over it. */
async function freshBucket(s3: FakeS3, prefix?: string): Promise<S3DriverOptions & { bucket: string }> {
  const bucket = `berth-${randomUUID().slice(0, 13)}`;
  await s3.admin.send(new CreateBucketCommand({ Bucket: bucket }));
  return { bucket, prefix, endpoint: s3.endpoint, forcePathStyle: true, credentials };
}

/** Every key in the bucket, upload area included, as the raw S3 API lists it. */
async function rawKeys(s3: FakeS3, bucket: string): Promise<string[]> {
  const out = await s3.admin.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((o) => o.Key as string).sort();
}

async function multipartUploads(s3: FakeS3, bucket: string): Promise<string[]> {
  const out = await s3.admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => `${u.Key}@${u.UploadId}`);
}

for (const flavour of ['multipart', 'plain'] as const) {
  runDriverSuite(
    `s3 (${flavour} s3rver${flavour === 'multipart' ? ', prefix' : ', no prefix'})`,
    async () => {
      const s3 = await fakeS3(flavour);
      const options = await freshBucket(s3, flavour === 'multipart' ? 'registry/v1' : undefined);
      return {
        driver: new S3Driver(options),
        reopen: async () => new S3Driver(options),
        cleanup: async () => {
          // The suite leaves nothing behind through the driver; nothing may hide in the upload area either.
          assert.deepEqual(await rawKeys(s3, options.bucket), []);
          if (flavour === 'multipart') assert.deepEqual(await multipartUploads(s3, options.bucket), []);
        },
      };
    },
  );
}

describe('S3Driver', () => {
  let s3: FakeS3;
  let options: S3DriverOptions & { bucket: string };
  let driver: S3Driver;

  before(async () => {
    s3 = await fakeS3('multipart');
    options = await freshBucket(s3, 'berth');
    driver = new S3Driver(options);
  });

  after(async () => {
    await driver?.close();
  });

  /** Requests served while `fn` runs. */
  async function served(fn: () => Promise<void>): Promise<string[]> {
    const from = s3.requests.length;
    await fn();
    return s3.requests.slice(from);
  }

  it('validates its options', () => {
    assert.throws(() => new S3Driver({ ...options, partSize: MIN_PART_SIZE - 1 }), TypeError);
    assert.throws(() => new S3Driver({ ...options, partSize: 6 * MiB + 0.5 }), TypeError);
    assert.throws(() => new S3Driver({ ...options, bucket: '' }), TypeError);
    assert.throws(() => new S3Driver({ ...options, prefix: 'a/../b' }), TypeError);
    assert.equal(new S3Driver({ ...options, prefix: '/berth/' }).name, 's3');
  });

  it('stores <prefix>/<key> and refuses the upload area as a key', async () => {
    await driver.put('blobs/sha256/ab/abc', Buffer.from('x'));
    assert.deepEqual(await rawKeys(s3, options.bucket), ['berth/blobs/sha256/ab/abc']);
    const { id } = await driver.createUpload();
    for (const key of ['_uploads', '_uploads/x', `_uploads/${id}/upload`]) {
      await assert.rejects(driver.put(key, Buffer.from('x')), InvalidPathError);
      await assert.rejects(driver.read(key), InvalidPathError);
      await assert.rejects(driver.stat(key), InvalidPathError);
      await assert.rejects(driver.delete(key), InvalidPathError);
      await assert.rejects(collect(driver.list(key)), InvalidPathError);
      await assert.rejects(driver.commitUpload({ id }, 0, key), InvalidPathError);
      await assert.rejects(driver.presignedUrl(key, 60), InvalidPathError);
    }
    assert.deepEqual(await collect(driver.list('')), ['blobs/sha256/ab/abc']);
    await driver.abortUpload({ id });
    assert.equal(await driver.delete('blobs/sha256/ab/abc'), true);
    assert.deepEqual(await rawKeys(s3, options.bucket), []);
  });

  it('puts a body of up to one part with a single PutObject, a longer one as a multipart upload', async () => {
    const small = randomBytes(8 * MiB);
    let requests = await served(async () => {
      assert.equal(await driver.put('one-part', Readable.from(chunksOf(small, 100_000))), small.length);
    });
    assert.deepEqual(requests.filter(isWrite), ['PUT PutObject']);

    const big = randomBytes(8 * MiB + 1);
    requests = await served(async () => {
      assert.equal(await driver.put('two-parts', Readable.from(chunksOf(big, 100_000))), big.length);
    });
    assert.deepEqual(requests.filter(isWrite), [
      'POST CreateMultipartUpload',
      'PUT UploadPart',
      'PUT UploadPart',
      'POST CompleteMultipartUpload',
    ]);
    assert.deepEqual(await readAll(await driver.read('two-parts')), big);
    const bigArray = randomBytes(17 * MiB);
    assert.equal(await driver.put('from-array', new Uint8Array(bigArray)), bigArray.length);
    assert.deepEqual(
      await readAll(await driver.read('from-array', { start: 5, end: 17 * MiB - 2 })),
      bigArray.subarray(5, -1),
    );
    for (const key of ['one-part', 'two-parts', 'from-array']) await driver.delete(key);
  });

  it('aborts the multipart upload of a put whose body fails after several parts', async () => {
    const requests = await served(async () => {
      await assert.rejects(driver.put('failed', failAfter(randomBody(20 * MiB).body)), /client went away/);
    });
    assert.ok(requests.includes('DELETE AbortMultipartUpload'), requests.join(', '));
    assert.equal(await driver.stat('failed'), null);
    assert.deepEqual(await rawKeys(s3, options.bucket), []);
    assert.deepEqual(await multipartUploads(s3, options.bucket), []);
  });

  for (const flavour of ['multipart', 'plain'] as const) {
    it(`commits a 20 MiB upload appended in 1, 3 and 7 MiB chunks byte-exact (${flavour} s3rver)`, async () => {
      const server = await fakeS3(flavour);
      const opts = await freshBucket(server, 'p');
      const d = new S3Driver(opts);
      try {
        let handle = await d.createUpload();
        const whole = createHash('sha256');
        const total = 20 * MiB;
        const pattern = [1 * MiB, 3 * MiB, 7 * MiB];
        let size = 0;
        for (let i = 0; size < total; i++) {
          const n = Math.min(pattern[i % 3] as number, total - size);
          const result = await d.appendUpload(handle, size, randomBody(n, 64 * 1024, whole).body);
          assert.equal(result.size, size + n);
          size = result.size;
          handle = JSON.parse(JSON.stringify(result.handle)) as UploadHandle;
          assertSegmentShape(handle, size);
        }
        const expected = whole.digest('hex');
        assert.deepEqual(await sha256Of(await d.readUpload(handle, size)), { hex: expected, size });

        const from = server.requests.length;
        await d.commitUpload(handle, size, 'blobs/big');
        const commitRequests = server.requests.slice(from).filter(isWrite);
        if (flavour === 'multipart') {
          // Full segments are copied server-side; only the pending tail is streamed through.
          assert.ok(commitRequests.includes('PUT UploadPartCopy'), commitRequests.join(', '));
        } else {
          // Refused as NotImplemented: tried by the parts in flight at most, then every part is streamed.
          const tries = commitRequests.filter((r) => r === 'PUT UploadPartCopy').length;
          assert.ok(tries >= 1 && tries <= 4, commitRequests.join(', '));
          const sent = commitRequests.filter((r) => r === 'PUT UploadPart').length;
          assert.equal(sent, Math.ceil(size / (8 * MiB)), commitRequests.join(', '));
        }
        assert.deepEqual(await sha256Of(await d.read('blobs/big')), { hex: expected, size });
        assert.deepEqual(await rawKeys(server, opts.bucket), ['p/blobs/big']);
        if (flavour === 'multipart') assert.deepEqual(await multipartUploads(server, opts.bucket), []);
        await d.delete('blobs/big');
      } finally {
        await d.close();
      }
    });
  }

  for (const flavour of ['multipart', 'plain'] as const) {
    it(`an append that fails after storing segments leaves the upload valid at its offset (${flavour} s3rver)`, async () => {
      const server = await fakeS3(flavour);
      const opts = await freshBucket(server, 'q');
      const d = new S3Driver(opts);
      try {
        const a = randomBytes(3 * MiB);
        const first = await d.appendUpload(await d.createUpload(), 0, Readable.from(chunksOf(a, 65_536)));
        // Fails after 20 MiB: the pending 3 MiB were merged into new segments the handle never lists.
        await assert.rejects(
          d.appendUpload(first.handle, first.size, failAfter(randomBody(20 * MiB).body)),
          /client went away/,
        );
        const b = randomBytes(9 * MiB + 5);
        const second = await d.appendUpload(first.handle, first.size, Readable.from(chunksOf(b, 65_536)));
        const expected = Buffer.concat([a, b]);
        assert.equal(second.size, expected.length);
        assert.deepEqual(await readAll(await d.readUpload(second.handle, second.size)), expected);

        // An append at an older offset with the newer handle cuts the upload back there, as on a filesystem.
        const c = randomBytes(2 * MiB);
        const cut = 7 * MiB + 3;
        const third = await d.appendUpload(second.handle, cut, Readable.from([c]));
        const final = Buffer.concat([expected.subarray(0, cut), c]);
        assert.equal(third.size, final.length);
        assertSegmentShape(third.handle, third.size);

        // And a commit of fewer bytes than stored cuts inside a segment.
        const size = 8 * MiB + 7;
        await d.commitUpload(third.handle, size, 'blobs/cut');
        assert.deepEqual(await readAll(await d.read('blobs/cut')), final.subarray(0, size));
        assert.deepEqual(await rawKeys(server, opts.bucket), ['q/blobs/cut']);
        await d.delete('blobs/cut');
      } finally {
        await d.close();
      }
    });
  }

  it('continues an upload on a second instance (fresh client) from the JSON handle', async () => {
    const other = new S3Driver(options);
    try {
      const a = randomBytes(3 * MiB);
      const b = randomBytes(6 * MiB);
      const c = randomBytes(2 * MiB + 17);
      const first = await driver.appendUpload(
        await driver.createUpload(),
        0,
        Readable.from(chunksOf(a, 65_536)),
      );
      const h1 = JSON.parse(JSON.stringify(first.handle)) as UploadHandle;
      // The other instance merges the first instance's pending 3 MiB into its first full part.
      const second = await other.appendUpload(h1, first.size, Readable.from(chunksOf(b, 65_536)));
      const h2 = JSON.parse(JSON.stringify(second.handle)) as UploadHandle;
      assertSegmentShape(h2, second.size);
      const third = await driver.appendUpload(h2, second.size, Readable.from([c]));
      const h3 = JSON.parse(JSON.stringify(third.handle)) as UploadHandle;
      const expected = Buffer.concat([a, b, c]);
      assert.equal(third.size, expected.length);
      assert.deepEqual(await readAll(await other.readUpload(h3, third.size)), expected);
      await other.commitUpload(h3, third.size, 'blobs/handed-over');
      assert.deepEqual(await readAll(await driver.read('blobs/handed-over')), expected);
      assert.deepEqual(await collect(driver.listUploads()), []);
      await driver.delete('blobs/handed-over');
    } finally {
      await other.close();
    }
  });

  it('keeps memory bounded: a 64 MiB streamed put and append grow RSS by well under 64 MiB', async (t) => {
    // The body's random chunks and the HTTP chunks on both sides (s3rver runs in this process) are garbage that V8
    // collects when it sees fit, up to some 64 MiB of it: collecting often makes RSS show what is actually held.
    // A first put warms up what any request needs once (heap growth, sockets, lazily loaded SDK code).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
    await driver.put('blobs/warm-up', randomBody(9 * MiB).body);
    for (const how of ['put', 'append'] as const) {
      const size = 64 * MiB;
      const { body, digest } = randomBody(size, 64 * 1024);
      gc();
      const baseline = process.memoryUsage.rss();
      let peak = baseline;
      let ticks = 0;
      const sampler = setInterval(() => {
        gc({ type: ++ticks % 20 === 0 ? 'major' : 'minor' });
        peak = Math.max(peak, process.memoryUsage.rss());
      }, 10);
      try {
        if (how === 'put') {
          assert.equal(await driver.put('blobs/large', body), size);
        } else {
          const { handle } = await driver.appendUpload(await driver.createUpload(), 0, body);
          await driver.commitUpload(handle, size, 'blobs/large');
        }
      } finally {
        clearInterval(sampler);
      }
      const growth = `${how}: RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB`;
      t.diagnostic(growth);
      assert.ok(peak - baseline < 48 * MiB, growth);
      assert.deepEqual(await sha256Of(await driver.read('blobs/large')), { hex: digest(), size });
      await driver.delete('blobs/large');
    }
    await driver.delete('blobs/warm-up');
  });

  it('abort leaves no object and no multipart upload, also after a crash in the middle of a commit', async () => {
    const created = await driver.createUpload();
    const { handle } = await driver.appendUpload(created, 0, randomBody(12 * MiB).body);
    // A commit that crashed after starting its multipart upload: the upload area holds its note.
    const dest = 'berth/blobs/crashed';
    const mpu = await s3.admin.send(new CreateMultipartUploadCommand({ Bucket: options.bucket, Key: dest }));
    await s3.admin.send(
      new PutObjectCommand({
        Bucket: options.bucket,
        Key: `berth/_uploads/${handle.id}/commit-0123456789ab`,
        Body: JSON.stringify({ key: dest, uploadId: mpu.UploadId }),
      }),
    );
    assert.equal((await multipartUploads(s3, options.bucket)).length, 1);
    assert.ok((await rawKeys(s3, options.bucket)).length >= 3);

    await driver.abortUpload(handle);
    await driver.abortUpload(handle);
    assert.deepEqual(await rawKeys(s3, options.bucket), []);
    assert.deepEqual(await multipartUploads(s3, options.bucket), []);
    assert.deepEqual(
      await readdir(path.join(s3.dir, options.bucket, '._S3rver_uploads')).catch(() => []),
      [],
    );
    await assert.rejects(driver.readUpload(handle, 0), UploadNotFoundError);
  });

  it('lists uploads with their last modification, including leftovers without a marker', async () => {
    const { handle } = await driver.appendUpload(
      await driver.createUpload(),
      0,
      Readable.from([randomBytes(10)]),
    );
    // A crash between deleting the marker and deleting the segments.
    await s3.admin.send(
      new DeleteObjectsCommand({
        Bucket: options.bucket,
        Delete: { Objects: [{ Key: `berth/_uploads/${handle.id}/upload` }] },
      }),
    );
    const listed = await collect(driver.listUploads());
    assert.deepEqual(
      listed.map((u) => u.handle.id),
      [handle.id],
    );
    assert.ok(Math.abs((listed[0]?.modifiedAt.getTime() ?? 0) - Date.now()) < 60_000);
    await assert.rejects(driver.readUpload(handle, 10), UploadNotFoundError);
    await driver.abortUpload(listed[0]?.handle as UploadHandle);
    assert.deepEqual(await rawKeys(s3, options.bucket), []);
  });

  it('refuses forged or corrupt handles', async () => {
    const { handle, size } = await driver.appendUpload(
      await driver.createUpload(),
      0,
      Readable.from([randomBytes(100)]),
    );
    const parts = handle.parts as Array<{ name: string; size: number }>;
    const forged: UploadHandle[] = [
      { id: handle.id, parts: [{ name: '../../../blobs/x', size: 100 }] },
      { id: handle.id, parts: [{ name: parts[0]?.name, size: -1 }] },
      { id: handle.id, parts: 'nope' },
      { id: handle.id, parts: [{ name: 'part-0-000000000000', size: 100 }] },
    ];
    for (const h of forged) {
      const label = JSON.stringify(h);
      try {
        await readAll(await driver.readUpload(h, size));
        assert.fail(`readUpload ${label}`);
      } catch (err) {
        assert.ok(err instanceof UploadNotFoundError, `readUpload ${label}: ${String(err)}`);
      }
      await assert.rejects(
        driver.commitUpload(h, size, 'blobs/forged'),
        UploadNotFoundError,
        `commit ${label}`,
      );
    }
    assert.equal(await driver.stat('blobs/forged'), null);
    await driver.abortUpload(handle);
  });

  it('trusts only the latest handle: an older one that holds fewer bytes is refused', async () => {
    const created = await driver.createUpload();
    const a = randomBytes(1000);
    const first = await driver.appendUpload(created, 0, Readable.from([a]));
    await assert.rejects(driver.readUpload(created, first.size), UploadNotFoundError);
    // Two appends at offset 1000 from the same handle (a retry of a request whose answer was lost, say): only the
    // handle each returned tells which bytes count.
    const lost = await driver.appendUpload(first.handle, 1000, Readable.from([randomBytes(300)]));
    const b = randomBytes(300);
    const second = await driver.appendUpload(first.handle, 1000, Readable.from([b]));
    assert.equal(lost.size, 1300);
    assert.deepEqual(await readAll(await driver.readUpload(second.handle, 1300)), Buffer.concat([a, b]));
    await assert.rejects(driver.readUpload(first.handle, 1300), UploadNotFoundError);
    await driver.abortUpload(created);
  });

  it('presigns GET URLs that plain fetch can use, ranges included', async () => {
    const data = randomBytes(100_000);
    await driver.put('blobs/presigned', data);
    const url = await driver.presignedUrl('blobs/presigned', 300);
    let res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    res = await fetch(url, { headers: { Range: 'bytes=10-19' } });
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(10, 20));
    res = await fetch(await driver.presignedUrl('blobs/none', 300));
    assert.equal(res.status, 404);
    await res.arrayBuffer();
    await assert.rejects(driver.presignedUrl('blobs/presigned', 0), RangeError);
    await driver.delete('blobs/presigned');
  });

  it('ping fails with StorageError for a missing bucket', async () => {
    const missing = new S3Driver({ ...options, bucket: `berth-missing-${randomUUID().slice(0, 8)}` });
    try {
      await assert.rejects(missing.ping(), StorageError);
      await assert.rejects(missing.read('x'), (err) => !(err instanceof ObjectNotFoundError));
    } finally {
      await missing.close();
    }
  });

  it("sends the SDK's warnings to its logger, the HTTP handler's included", { timeout: 60_000 }, async () => {
    // With one socket, a read stream left unread holds it. Requests queued behind it for the SDK's socket
    // acquisition warning time (3 s by default) make its HTTP handler warn that sockets are at capacity.
    const lines: Array<{ level: string; fields: object; message: string | undefined }> = [];
    let warned: () => void = () => undefined;
    const warning = new Promise<void>((resolve) => (warned = resolve));
    const record =
      (level: string) =>
      (fields: object, message?: string): void => {
        lines.push({ level, fields, message });
        if (level === 'warn') warned();
      };
    const logger: Logger = {
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
    };
    const d = new S3Driver({ ...options, maxSockets: 1, logger });
    try {
      await d.put('blobs/held', randomBytes(1000));
      assert.equal(await d.stat('blobs/absent'), null);
      const held = await d.read('blobs/held');
      const queued = [d.stat('blobs/held'), d.stat('blobs/held'), d.stat('blobs/held')];
      await warning;
      held.destroy();
      assert.deepEqual(
        (await Promise.all(queued)).map((info) => info?.size),
        [1000, 1000, 1000],
      );
      const warnings = lines.filter((line) => line.level === 'warn');
      assert.equal(warnings.length, 1, JSON.stringify(warnings));
      assert.match(
        warnings[0]?.message ?? '',
        /socket usage at capacity=1 and \d+ additional requests are enqueued/,
      );
      assert.deepEqual(warnings[0]?.fields, { source: 'aws-sdk' });
      // Every request is a debug line, a failed one too: the driver reports failures as results or errors.
      assert.ok(
        lines.some((line) => line.level === 'debug' && line.message === 'GetObjectCommand succeeded'),
      );
      const failed = lines.find((line) => line.message === 'HeadObjectCommand failed');
      assert.equal(failed?.level, 'debug');
      assert.deepEqual(
        { ...failed?.fields, err: undefined },
        {
          source: 'aws-sdk',
          command: 'HeadObjectCommand',
          key: 'berth/blobs/absent',
          status: 404,
          err: undefined,
        },
      );
      assert.deepEqual(new Set(lines.map((line) => line.level)), new Set(['debug', 'warn']));
      await d.delete('blobs/held');
    } finally {
      await d.close();
    }
  });

  it('checkWritable fails with StorageError naming a missing bucket', async () => {
    const bucket = `berth-missing-${randomUUID().slice(0, 8)}`;
    const missing = new S3Driver({ ...options, bucket });
    try {
      await assert.rejects(
        missing.checkWritable(),
        (err) => err instanceof StorageError && err.message.includes(bucket),
      );
    } finally {
      await missing.close();
    }
  });

  it('leaves the bucket empty', async () => {
    assert.deepEqual(await rawKeys(s3, options.bucket), []);
    assert.deepEqual(await multipartUploads(s3, options.bucket), []);
  });
});

/** Segments of 5 MiB or more first, then pending ones that together stay below one part. */
function assertSegmentShape(handle: UploadHandle, size: number): void {
  const parts = handle.parts as Array<{ name: string; size: number }>;
  assert.equal(
    parts.reduce((n, p) => n + p.size, 0),
    size,
  );
  let i = 0;
  while (i < parts.length && (parts[i]?.size ?? 0) >= MIN_PART_SIZE) i++;
  const pending = parts.slice(i);
  assert.ok(
    pending.every((p) => p.size < MIN_PART_SIZE),
    JSON.stringify(parts),
  );
  assert.ok(pending.reduce((n, p) => n + p.size, 0) < 8 * MiB, JSON.stringify(parts));
}

function isWrite(request: string): boolean {
  return !/^(GET|HEAD) /.test(request);
}

// ---- helpers ----

/** `body`'s bytes, then an error instead of its end (a client that went away); fails only when read. */
function failAfter(body: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield* body;
      throw new Error('client went away');
    })(),
    { objectMode: false },
  );
}
