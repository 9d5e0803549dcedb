/**
 * The StorageDriver conformance suite: every line of the contract in `driver.ts`, run against one driver
 * instance. Each driver's test file calls `runDriverSuite` with a factory for fresh, empty storage.
 *
 * Tests run in order on the same driver; each removes what it created, and the last test checks that nothing
 * is left (no object, no upload). The suite calls `driver.close()` and then `cleanup()` at the end.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it, type TestContext } from 'node:test';

import {
  InvalidPathError,
  ObjectNotFoundError,
  RangeNotSatisfiableError,
  UploadNotFoundError,
  type StorageDriver,
  type UploadHandle,
} from '../driver.ts';

export interface DriverFixture {
  /** A driver over empty storage. */
  readonly driver: StorageDriver;
  /** Removes the storage (temp directory, bucket prefix...). Called after `driver.close()`. */
  readonly cleanup: () => Promise<void>;
  /**
   * Builds a second driver over the same storage, as another process with the same configuration would.
   * When present, the suite checks that uploads continue across instances. The suite closes what it returns.
   */
  readonly reopen?: () => Promise<StorageDriver>;
}

const MiB = 1024 * 1024;

/** Keys outside the grammar; every key-taking method must refuse them with InvalidPathError. */
export const INVALID_KEYS: readonly string[] = [
  '../x',
  'a/../../x',
  '/abs',
  'a//b',
  'a/./b',
  'a/',
  'a/..',
  '.',
  '..',
  '%2e%2e',
  '',
  'a\\b',
  '..\\x',
  'a\0b',
  'a b',
  'caf\u00e9',
  'x'.repeat(1025),
];

export function runDriverSuite(name: string, factory: () => Promise<DriverFixture>): void {
  describe(`StorageDriver conformance: ${name}`, () => {
    let fixture: DriverFixture | undefined;
    let driver: StorageDriver;

    before(async () => {
      fixture = await factory();
      driver = fixture.driver;
    });

    after(async () => {
      if (fixture === undefined) return;
      try {
        await fixture.driver.close();
      } finally {
        await fixture.cleanup();
      }
    });

    /** Runs `fn` with a fresh key prefix; deletes the keys it handed out afterwards, pass or fail. */
    function scoped(fn: (s: Scope, t: TestContext) => Promise<void>): (t: TestContext) => Promise<void> {
      return async (t) => {
        const scope = new Scope(driver);
        try {
          await fn(scope, t);
        } finally {
          await scope.dispose();
        }
      };
    }

    describe('objects', () => {
      it('has a name', () => {
        assert.equal(typeof driver.name, 'string');
        assert.ok(driver.name.length > 0);
      });

      it('answers ping', async () => {
        await driver.ping();
      });

      it('checkWritable writes and removes a probe, leaving no object and no upload', async () => {
        const uploadsBefore = await uploadIds(driver);
        const objectsBefore = sorted(await collect(driver.list('')));
        await driver.checkWritable();
        await driver.checkWritable();
        assert.deepEqual(await uploadIds(driver), uploadsBefore);
        assert.deepEqual(sorted(await collect(driver.list(''))), objectsBefore);
      });

      it(
        'round-trips a Uint8Array body through put, stat, read and delete',
        scoped(async (s) => {
          const key = s.key('blob');
          const data = randomBytes(1000 + Math.floor(Math.random() * 5000));
          const before = Date.now();
          assert.equal(await driver.put(key, new Uint8Array(data)), data.length);

          const info = await driver.stat(key);
          assert.ok(info, 'stat after put');
          assert.equal(info.size, data.length);
          assert.ok(info.modifiedAt instanceof Date && !Number.isNaN(info.modifiedAt.getTime()));
          assert.ok(Math.abs(info.modifiedAt.getTime() - before) < 10 * 60_000, 'modifiedAt is about now');
          assert.deepEqual(await readAll(await driver.read(key)), data);

          assert.equal(await driver.delete(key), true);
          assert.equal(await driver.delete(key), false);
          assert.equal(await driver.stat(key), null);
          await assert.rejects(
            driver.read(key),
            (err) => err instanceof ObjectNotFoundError && err.key === key,
          );
        }),
      );

      it(
        'round-trips a multi-chunk Readable body',
        scoped(async (s) => {
          const key = s.key('a/b/c/chunks');
          const chunks = [
            randomBytes(1),
            randomBytes(0),
            randomBytes(70_000),
            randomBytes(3),
            randomBytes(20_000),
          ];
          const data = Buffer.concat(chunks);
          assert.equal(await driver.put(key, Readable.from(chunks)), data.length);
          assert.deepEqual(await readAll(await driver.read(key)), data);
          assert.equal((await driver.stat(key))?.size, data.length);
        }),
      );

      it(
        'streams a 20 MiB body in and out',
        scoped(async (s) => {
          const key = s.key('big');
          const size = 20 * MiB;
          const { body, digest } = randomBody(size);
          assert.equal(await driver.put(key, body), size);
          assert.equal((await driver.stat(key))?.size, size);
          const back = await sha256Of(await driver.read(key));
          assert.equal(back.size, size);
          assert.equal(back.hex, digest());
        }),
      );

      it(
        'stores a zero-byte object',
        scoped(async (s) => {
          const key = s.key('empty');
          assert.equal(await driver.put(key, new Uint8Array(0)), 0);
          assert.equal((await driver.stat(key))?.size, 0);
          assert.equal((await readAll(await driver.read(key))).length, 0);
          await assert.rejects(driver.read(key, { start: 0, end: 0 }), RangeNotSatisfiableError);

          const key2 = s.key('empty-stream');
          assert.equal(await driver.put(key2, Readable.from([])), 0);
          assert.equal((await driver.stat(key2))?.size, 0);
        }),
      );

      it(
        'reads byte ranges, inclusive of end',
        scoped(async (s) => {
          const key = s.key('ranged');
          const data = randomBytes(10_000);
          await driver.put(key, data);
          const size = data.length;
          const cases: Array<[number, number]> = [
            [0, 0],
            [size - 1, size - 1],
            [1234, 5678],
            [0, size - 1],
            [17, 17],
          ];
          for (const [start, end] of cases) {
            const got = await readAll(await driver.read(key, { start, end }));
            assert.deepEqual(got, data.subarray(start, end + 1), `range ${start}-${end}`);
          }
          const refused: Array<[number, number]> = [
            [0, size],
            [size - 1, size],
            [size, size],
            [size + 10, size + 20],
            [10, 9],
          ];
          for (const [start, end] of refused) {
            await assert.rejects(
              driver.read(key, { start, end }),
              (err) => err instanceof RangeNotSatisfiableError && err.key === key && err.size === size,
              `range ${start}-${end}`,
            );
          }
        }),
      );

      it(
        'reads with the immutable hint see every delete, put and commit made through the driver at once',
        scoped(async (s) => {
          const key = s.key('hinted');
          const immutable = { immutable: true } as const;
          const first = randomBytes(3000);
          await driver.put(key, first);
          // Concurrent and ranged hinted reads, which a driver may serve from one open object.
          const reads = await Promise.all([
            driver.read(key, undefined, immutable).then(readAll),
            driver.read(key, { start: 100, end: 1099 }, immutable).then(readAll),
            driver.read(key, undefined, immutable).then(readAll),
          ]);
          assert.deepEqual(reads, [first, first.subarray(100, 1100), first]);
          await assert.rejects(
            driver.read(key, { start: 0, end: 3000 }, immutable),
            RangeNotSatisfiableError,
          );

          assert.equal(await driver.delete(key), true);
          await assert.rejects(driver.read(key, undefined, immutable), ObjectNotFoundError, 'after delete');

          // The hint is the caller's promise about content; a driver must still not serve stale bytes after
          // its own writes.
          const second = randomBytes(2000);
          await driver.put(key, second);
          assert.deepEqual(await readAll(await driver.read(key, undefined, immutable)), second, 'after put');
          const third = randomBytes(1000);
          await driver.put(key, third);
          assert.deepEqual(
            await readAll(await driver.read(key, undefined, immutable)),
            third,
            'after overwrite',
          );

          assert.equal(await driver.delete(key), true);
          const upload = await driver.createUpload();
          const fourth = randomBytes(5000);
          const { handle, size } = await driver.appendUpload(upload, 0, Readable.from([fourth]));
          await driver.commitUpload(handle, size, key);
          assert.deepEqual(
            await readAll(await driver.read(key, undefined, immutable)),
            fourth,
            'after commit',
          );
        }),
      );

      it('reports absence: read throws ObjectNotFoundError, stat returns null, delete returns false', async () => {
        const key = `missing-${randomUUID()}/nothing`;
        await assert.rejects(
          driver.read(key),
          (err) => err instanceof ObjectNotFoundError && err.key === key,
        );
        await assert.rejects(driver.read(key, { start: 0, end: 0 }), ObjectNotFoundError);
        assert.equal(await driver.stat(key), null);
        assert.equal(await driver.delete(key), false);
        assert.deepEqual(await collect(driver.list(`missing-${randomUUID()}`)), []);
      });

      it(
        'does not treat a prefix as an object, nor an object as a prefix',
        scoped(async (s) => {
          const dirKey = s.key('dir');
          const key = s.key('dir/file');
          const data = randomBytes(100);
          await driver.put(key, data);

          assert.equal(await driver.stat(dirKey), null);
          await assert.rejects(driver.read(dirKey), ObjectNotFoundError);
          assert.equal(await driver.delete(dirKey), false);

          const below = `${key}/below`;
          assert.equal(await driver.stat(below), null);
          await assert.rejects(driver.read(below), ObjectNotFoundError);
          assert.equal(await driver.delete(below), false);
          assert.deepEqual(await collect(driver.list(key)), []);

          assert.deepEqual(await readAll(await driver.read(key)), data, 'the object is untouched');
        }),
      );

      it(
        'lists keys below a directory-like prefix',
        scoped(async (s) => {
          const keys = [
            s.key('l/ab/x'),
            s.key('l/ab/y/z'),
            s.key('l/abc/w'),
            s.key('l/top'),
            s.key('m/deep/er/still/v'),
          ];
          for (const key of keys) await driver.put(key, randomBytes(10));

          const all = await collect(driver.list(''));
          assert.equal(new Set(all).size, all.length, 'no duplicates');
          assert.deepEqual(sorted(all.filter((k) => k.startsWith(`${s.prefix}/`))), sorted(keys));
          assert.deepEqual(sorted(await collect(driver.list(s.prefix))), sorted(keys));
          assert.deepEqual(sorted(await collect(driver.list(`${s.prefix}/l`))), sorted(keys.slice(0, 4)));
          // `ab` is a directory-like prefix: it does not match `abc`.
          assert.deepEqual(sorted(await collect(driver.list(`${s.prefix}/l/ab`))), sorted(keys.slice(0, 2)));
          assert.deepEqual(await collect(driver.list(`${s.prefix}/l/ab/y`)), [keys[1]]);
          assert.deepEqual(await collect(driver.list(`${s.prefix}/l/a`)), []);
          assert.deepEqual(await collect(driver.list(`${s.prefix}/nothing`)), []);

          assert.equal(await driver.delete(keys[0] as string), true);
          assert.deepEqual(sorted(await collect(driver.list(`${s.prefix}/l/ab`))), [keys[1]]);
        }),
      );

      it(
        'accepts every character of the key grammar',
        scoped(async (s) => {
          const key = s.key('Az09._-/.hidden/.../x.y-z_W');
          const data = randomBytes(64);
          await driver.put(key, data);
          assert.deepEqual(await readAll(await driver.read(key)), data);
          assert.deepEqual(await collect(driver.list(s.prefix)), [key]);
        }),
      );

      it(
        'a reader opened before an overwrite reads one version whole; reads after put see the new one',
        scoped(async (s) => {
          const key = s.key('overwritten');
          const first = randomBytes(300_000);
          const second = randomBytes(123_457);
          await driver.put(key, first);
          const early = await driver.read(key);
          assert.equal(await driver.put(key, Readable.from(chunksOf(second, 10_000))), second.length);

          assert.deepEqual(await readAll(await driver.read(key)), second);
          assert.equal((await driver.stat(key))?.size, second.length);
          const old = await readAll(early);
          assert.ok(
            old.equals(first) || old.equals(second),
            `early reader got a torn object (${old.length} bytes)`,
          );
        }),
      );

      it(
        'readers see the old object (or none) until put resolves',
        scoped(async (s) => {
          const key = s.key('in-flight');
          const fresh = s.key('fresh');
          const old = randomBytes(50_000);
          const next = randomBytes(200_000);
          await driver.put(key, old);

          const body = new PassThrough();
          const freshBody = new PassThrough();
          const putting = driver.put(key, body);
          const putFresh = driver.put(fresh, freshBody);
          body.write(next.subarray(0, 100_000));
          freshBody.write(next.subarray(0, 1000));
          await delay(50);

          assert.deepEqual(await readAll(await driver.read(key)), old);
          assert.equal((await driver.stat(key))?.size, old.length);
          assert.equal(await driver.stat(fresh), null);
          await assert.rejects(driver.read(fresh), ObjectNotFoundError);
          assert.deepEqual(await collect(driver.list(s.prefix)), [key]);

          body.end(next.subarray(100_000));
          freshBody.end();
          assert.equal(await putting, next.length);
          assert.equal(await putFresh, 1000);
          assert.deepEqual(await readAll(await driver.read(key)), next);
          assert.deepEqual(await readAll(await driver.read(fresh)), next.subarray(0, 1000));
        }),
      );

      it(
        'concurrent puts to one key leave one complete version',
        scoped(async (s) => {
          const key = s.key('raced');
          const versions = [randomBytes(200_000), randomBytes(150_000), randomBytes(250_000)];
          await Promise.all(versions.map((v) => driver.put(key, Readable.from(chunksOf(v, 16_384)))));
          const got = await readAll(await driver.read(key));
          assert.ok(
            versions.some((v) => v.equals(got)),
            `got a mix of versions (${got.length} bytes)`,
          );
          assert.equal((await driver.stat(key))?.size, got.length);
        }),
      );

      it(
        'a put whose body errors leaves nothing behind',
        scoped(async (s) => {
          const key = s.key('failed');
          const keysBefore = sorted(await collect(driver.list('')));
          const uploadsBefore = sorted((await collect(driver.listUploads())).map((u) => u.handle.id));

          await assert.rejects(driver.put(key, failingBody(randomBytes(100_000))), isBodyError);

          assert.equal(await driver.stat(key), null);
          await assert.rejects(driver.read(key), ObjectNotFoundError);
          assert.deepEqual(sorted(await collect(driver.list(''))), keysBefore);
          assert.deepEqual(
            sorted((await collect(driver.listUploads())).map((u) => u.handle.id)),
            uploadsBefore,
          );
        }),
      );

      it(
        'a put whose body is destroyed without an error fails too',
        scoped(async (s) => {
          const key = s.key('aborted');
          await assert.rejects(driver.put(key, failingBody(randomBytes(70_000), 'destroy')));
          assert.equal(await driver.stat(key), null);
          assert.deepEqual(await collect(driver.list(s.prefix)), []);
        }),
      );

      it(
        'a failed overwrite keeps the old object',
        scoped(async (s) => {
          const key = s.key('kept');
          const old = randomBytes(40_000);
          await driver.put(key, old);
          await assert.rejects(driver.put(key, failingBody(randomBytes(100_000))), isBodyError);
          assert.deepEqual(await readAll(await driver.read(key)), old);
          assert.equal((await driver.stat(key))?.size, old.length);
        }),
      );
    });

    describe('keys', () => {
      it('refuses keys outside the grammar with InvalidPathError, before touching storage', async () => {
        const keysBefore = sorted(await collect(driver.list('')));
        const created = await driver.createUpload();
        try {
          const { handle, size } = await driver.appendUpload(created, 0, Readable.from([Buffer.from('abc')]));
          for (const key of INVALID_KEYS) {
            const is = (err: unknown) => err instanceof InvalidPathError && err.key === key;
            const label = JSON.stringify(key);
            await assert.rejects(driver.stat(key), is, `stat ${label}`);
            await assert.rejects(driver.read(key), is, `read ${label}`);
            await assert.rejects(driver.read(key, { start: 0, end: 0 }), is, `read range ${label}`);
            await assert.rejects(driver.put(key, Buffer.from('x')), is, `put ${label}`);
            await assert.rejects(driver.delete(key), is, `delete ${label}`);
            await assert.rejects(driver.commitUpload(handle, size, key), is, `commitUpload ${label}`);
            if (key !== '') await assert.rejects(collect(driver.list(key)), is, `list ${label}`);
          }
          assert.deepEqual(sorted(await collect(driver.list(''))), keysBefore);
          // The refused commits did not consume the upload.
          assert.deepEqual(await readAll(await driver.readUpload(handle, size)), Buffer.from('abc'));
          assert.ok((await uploadIds(driver)).has(handle.id));
        } finally {
          await driver.abortUpload(created);
        }
      });
    });

    describe('uploads', () => {
      it(
        'stores bodies exactly however they are chunked: thousands of tiny chunks, chunks of several MiB',
        scoped(async (s) => {
          const tiny = randomBytes(40_000);
          const tinyChunks: Buffer[] = [];
          for (let at = 0, n = 1; at < tiny.length; at += n, n = (n % 13) + 1) {
            tinyChunks.push(tiny.subarray(at, at + n));
          }
          const big = randomBytes(5 * 1024 * 1024 + 3);
          const mixed = [randomBytes(3), randomBytes(3 * 1024 * 1024), randomBytes(1), randomBytes(700_000)];
          const bodies = [tinyChunks, chunksOf(big, 2 * 1024 * 1024 + 1), mixed];
          for (const [i, chunks] of bodies.entries()) {
            const data = Buffer.concat(chunks);
            const key = s.key(`chunked-${i}`);
            assert.equal(await driver.put(key, Readable.from(chunks)), data.length);
            assert.ok((await readAll(await driver.read(key))).equals(data), `put body ${i}`);

            const handle = await driver.createUpload();
            const half = Math.floor(chunks.length / 2);
            const first = await driver.appendUpload(handle, 0, Readable.from(chunks.slice(0, half)));
            const firstSize = Buffer.concat(chunks.slice(0, half)).length;
            assert.equal(first.size, firstSize);
            const second = await driver.appendUpload(
              first.handle,
              firstSize,
              Readable.from(chunks.slice(half)),
            );
            assert.equal(second.size, data.length);
            assert.ok(
              (await readAll(await driver.readUpload(second.handle, data.length))).equals(data),
              `upload ${i}`,
            );
            await driver.abortUpload(second.handle);
          }
        }),
      );

      it(
        'creates, appends, reads back and commits an upload (handles persisted as JSON)',
        scoped(async (s) => {
          const key = s.key('committed');
          let handle = persist(await driver.createUpload());
          assert.equal(typeof handle.id, 'string');
          assert.ok(handle.id.length > 0);

          const listed = (await collect(driver.listUploads())).find((u) => u.handle.id === handle.id);
          assert.ok(listed, 'a new upload is listed');
          assert.ok(listed.modifiedAt instanceof Date && !Number.isNaN(listed.modifiedAt.getTime()));

          const parts = [randomBytes(100_000), randomBytes(1), randomBytes(70_000), randomBytes(5000)];
          let size = 0;
          for (const part of parts) {
            const result = await driver.appendUpload(handle, size, Readable.from(chunksOf(part, 16_384)));
            assert.equal(result.size, size + part.length);
            size = result.size;
            handle = persist(result.handle);
            assert.equal(handle.id, listed.handle.id, 'the id is stable');
          }
          const data = Buffer.concat(parts);

          assert.deepEqual(await readAll(await driver.readUpload(handle, size)), data);
          assert.deepEqual(await readAll(await driver.readUpload(handle, 5)), data.subarray(0, 5));
          assert.equal((await readAll(await driver.readUpload(handle, 0))).length, 0);
          await assert.rejects(driver.readUpload(handle, size + 1), UploadNotFoundError);
          assert.equal(await driver.stat(key), null, 'nothing is visible before commit');

          await driver.commitUpload(handle, size, key);
          assert.deepEqual(await readAll(await driver.read(key)), data);
          assert.equal((await driver.stat(key))?.size, size);
          assert.equal((await uploadIds(driver)).has(handle.id), false, 'a committed upload is forgotten');

          await assert.rejects(
            driver.appendUpload(handle, size, Readable.from([Buffer.from('x')])),
            UploadNotFoundError,
          );
          await assert.rejects(driver.readUpload(handle, size), UploadNotFoundError);
          await assert.rejects(driver.commitUpload(handle, size, s.key('again')), UploadNotFoundError);
          assert.equal(await driver.stat(s.key('again')), null);
          assert.deepEqual(await readAll(await driver.read(key)), data, 'the object is untouched');
        }),
      );

      it(
        'streams large appends of uneven sizes',
        scoped(async (s) => {
          const key = s.key('large');
          let handle = await driver.createUpload();
          const whole = createHash('sha256');
          let size = 0;
          for (const partSize of [3 * MiB, 7 * MiB + 3, 1]) {
            const { body, digest } = randomBody(partSize, 64 * 1024, whole);
            const result = await driver.appendUpload(handle, size, body);
            digest();
            assert.equal(result.size, size + partSize);
            size = result.size;
            handle = persist(result.handle);
          }
          const expected = whole.digest('hex');
          const back = await sha256Of(await driver.readUpload(handle, size));
          assert.deepEqual(back, { hex: expected, size });
          await driver.commitUpload(handle, size, key);
          assert.deepEqual(await sha256Of(await driver.read(key)), { hex: expected, size });
        }),
      );

      it(
        'discards the bytes of an interrupted append when the next append restarts at the old offset',
        scoped(async (s) => {
          const key = s.key('resumed');
          let handle = persist(await driver.createUpload());

          // Interrupted first append: the upload stays valid at offset 0.
          await assert.rejects(driver.appendUpload(handle, 0, failingBody(randomBytes(80_000))), isBodyError);
          const a = randomBytes(50_000);
          let result = await driver.appendUpload(handle, 0, Readable.from(chunksOf(a, 8192)));
          assert.equal(result.size, a.length);
          handle = persist(result.handle);

          await assert.rejects(
            driver.appendUpload(handle, a.length, failingBody(randomBytes(100_000))),
            isBodyError,
          );
          await assert.rejects(
            driver.appendUpload(handle, a.length, failingBody(randomBytes(30_000), 'destroy')),
          );
          const c = randomBytes(20_000);
          result = await driver.appendUpload(handle, a.length, Readable.from([c]));
          assert.equal(result.size, a.length + c.length);
          handle = persist(result.handle);

          const expected = Buffer.concat([a, c]);
          assert.deepEqual(await readAll(await driver.readUpload(handle, result.size)), expected);
          await driver.commitUpload(handle, result.size, key);
          assert.deepEqual(await readAll(await driver.read(key)), expected);
          assert.equal((await driver.stat(key))?.size, expected.length);
        }),
      );

      it('refuses an append past the stored size, and the upload stays usable', async () => {
        const handle = await driver.createUpload();
        try {
          const a = randomBytes(1000);
          const { handle: h1, size } = await driver.appendUpload(handle, 0, Readable.from([a]));
          await assert.rejects(
            driver.appendUpload(h1, size + 10, Readable.from([randomBytes(10)])),
            UploadNotFoundError,
          );
          const b = randomBytes(10);
          const { handle: h2, size: size2 } = await driver.appendUpload(h1, size, Readable.from([b]));
          assert.equal(size2, size + b.length);
          assert.deepEqual(await readAll(await driver.readUpload(h2, size2)), Buffer.concat([a, b]));
        } finally {
          await driver.abortUpload(handle);
        }
      });

      it(
        'refuses a commit of more bytes than stored',
        scoped(async (s) => {
          const key = s.key('too-big');
          const a = randomBytes(4096);
          const { handle, size } = await driver.appendUpload(
            await driver.createUpload(),
            0,
            Readable.from([a]),
          );
          try {
            await assert.rejects(
              driver.commitUpload(handle, size + 1, key),
              (err) => err instanceof UploadNotFoundError && err.uploadId === handle.id,
            );
            assert.equal(await driver.stat(key), null);
          } finally {
            await driver.abortUpload(handle);
          }
        }),
      );

      it(
        'commits exactly the first `size` bytes',
        scoped(async (s) => {
          const key = s.key('prefix');
          const a = randomBytes(10_000);
          const { handle } = await driver.appendUpload(await driver.createUpload(), 0, Readable.from([a]));
          await driver.commitUpload(handle, 6000, key);
          assert.deepEqual(await readAll(await driver.read(key)), a.subarray(0, 6000));
          assert.equal((await uploadIds(driver)).has(handle.id), false);
        }),
      );

      it('refuses unknown handles with UploadNotFoundError; abort of an unknown handle is a no-op', async () => {
        const forged: UploadHandle[] = [
          { id: randomUUID() },
          { id: 'nope' },
          { id: '../../../etc' },
          { id: '' },
        ];
        for (const handle of forged) {
          const label = JSON.stringify(handle);
          const key = `never-${randomUUID()}`;
          await assert.rejects(
            driver.appendUpload(handle, 0, Readable.from([Buffer.from('x')])),
            UploadNotFoundError,
            `append ${label}`,
          );
          await assert.rejects(driver.readUpload(handle, 0), UploadNotFoundError, `readUpload ${label}`);
          await assert.rejects(driver.commitUpload(handle, 0, key), UploadNotFoundError, `commit ${label}`);
          assert.equal(await driver.stat(key), null);
          await driver.abortUpload(handle);
        }
      });

      it('aborts idempotently; an aborted upload is gone', async () => {
        const handle = persist(await driver.createUpload());
        const { size } = await driver.appendUpload(handle, 0, Readable.from([randomBytes(5000)]));
        await driver.abortUpload(handle);
        await driver.abortUpload(handle);
        assert.equal((await uploadIds(driver)).has(handle.id), false);
        await assert.rejects(
          driver.appendUpload(handle, size, Readable.from([randomBytes(1)])),
          UploadNotFoundError,
        );
        await assert.rejects(
          driver.appendUpload(handle, 0, Readable.from([randomBytes(1)])),
          UploadNotFoundError,
        );
        await assert.rejects(driver.readUpload(handle, 0), UploadNotFoundError);
        const key = `aborted-${randomUUID()}`;
        await assert.rejects(driver.commitUpload(handle, size, key), UploadNotFoundError);
        assert.equal(await driver.stat(key), null);
      });

      it('aborts an upload through the handle listUploads yields (garbage collection)', async () => {
        const created = await driver.createUpload();
        await driver.appendUpload(created, 0, Readable.from([randomBytes(100)]));
        const listed = (await collect(driver.listUploads())).find((u) => u.handle.id === created.id);
        assert.ok(listed);
        await driver.abortUpload(persist(listed.handle));
        assert.equal((await uploadIds(driver)).has(created.id), false);
      });

      it(
        'committing onto an existing key keeps the object and discards the upload',
        scoped(async (s) => {
          const key = s.key('existing');
          const data = randomBytes(30_000);
          await driver.put(key, data);
          const { handle, size } = await driver.appendUpload(
            await driver.createUpload(),
            0,
            Readable.from([data]),
          );
          await driver.commitUpload(handle, size, key);
          assert.deepEqual(await readAll(await driver.read(key)), data);
          assert.equal((await uploadIds(driver)).has(handle.id), false);
          await assert.rejects(driver.readUpload(handle, size), UploadNotFoundError);
        }),
      );

      it(
        'two commits of the same content racing to one key both succeed',
        scoped(async (s) => {
          const key = s.key('race');
          const data = randomBytes(500_000);
          const uploads = await Promise.all(
            [0, 1, 2].map(async () =>
              driver.appendUpload(await driver.createUpload(), 0, Readable.from(chunksOf(data, 65_536))),
            ),
          );
          await Promise.all(uploads.map(({ handle, size }) => driver.commitUpload(handle, size, key)));
          assert.deepEqual(await readAll(await driver.read(key)), data);
          const ids = await uploadIds(driver);
          for (const { handle } of uploads) assert.equal(ids.has(handle.id), false);
        }),
      );

      it(
        'commits zero-byte uploads',
        scoped(async (s) => {
          const key = s.key('zero');
          const handle = await driver.createUpload();
          await driver.commitUpload(handle, 0, key);
          assert.equal((await driver.stat(key))?.size, 0);
          assert.equal((await readAll(await driver.read(key))).length, 0);
          assert.equal((await uploadIds(driver)).has(handle.id), false);

          const key2 = s.key('zero-appended');
          const created = await driver.createUpload();
          const result = await driver.appendUpload(created, 0, Readable.from([]));
          assert.equal(result.size, 0);
          await driver.commitUpload(result.handle, 0, key2);
          assert.equal((await driver.stat(key2))?.size, 0);
        }),
      );

      it(
        'keeps concurrent uploads apart',
        scoped(async (s) => {
          const uploads = await Promise.all(
            [s.key('one'), s.key('two')].map(async (key, i) => ({
              key,
              data: randomBytes(90_000 - i * 30_000),
              handle: await driver.createUpload(),
              size: 0,
            })),
          );
          assert.notEqual(uploads[0]?.handle.id, uploads[1]?.handle.id);
          // Interleave the appends: first halves of both, then second halves of both.
          for (const half of [0, 1]) {
            await Promise.all(
              uploads.map(async (u) => {
                const mid = u.data.length / 2;
                const part = half === 0 ? u.data.subarray(0, mid) : u.data.subarray(mid);
                const result = await driver.appendUpload(u.handle, u.size, Readable.from([part]));
                u.handle = result.handle;
                u.size = result.size;
              }),
            );
          }
          await Promise.all(uploads.map((u) => driver.commitUpload(u.handle, u.size, u.key)));
          for (const u of uploads) assert.deepEqual(await readAll(await driver.read(u.key)), u.data);
        }),
      );

      it(
        'continues an upload from another driver instance with a JSON round-tripped handle',
        scoped(async (s, t) => {
          const reopen = fixture?.reopen;
          if (reopen === undefined) {
            t.skip('the factory provides no reopen()');
            return;
          }
          const key = s.key('handed-over');
          const other = await reopen();
          try {
            const x = randomBytes(70_000);
            const y = randomBytes(30_000);
            const first = await driver.appendUpload(await driver.createUpload(), 0, Readable.from([x]));
            const handle = JSON.parse(JSON.stringify(first.handle)) as UploadHandle;

            assert.ok((await uploadIds(other)).has(handle.id), 'the other instance lists the upload');
            const second = await other.appendUpload(handle, first.size, Readable.from([y]));
            assert.equal(second.size, x.length + y.length);
            const expected = Buffer.concat([x, y]);
            const h2 = persist(second.handle);
            assert.deepEqual(await readAll(await other.readUpload(h2, second.size)), expected);
            assert.deepEqual(await readAll(await driver.readUpload(h2, second.size)), expected);

            await driver.commitUpload(h2, second.size, key);
            assert.deepEqual(await readAll(await other.read(key)), expected);
            assert.equal((await uploadIds(other)).has(handle.id), false);
          } finally {
            await other.close();
          }
        }),
      );
    });

    it('leaves nothing behind', async () => {
      assert.deepEqual(await collect(driver.list('')), []);
      assert.deepEqual(await collect(driver.listUploads()), []);
    });
  });
}

/** Hands out keys under a unique prefix and deletes them at the end of a test. */
class Scope {
  readonly prefix = `t-${randomUUID()}`;
  private readonly keys = new Set<string>();

  constructor(private readonly driver: StorageDriver) {}

  key(name: string): string {
    const key = `${this.prefix}/${name}`;
    this.keys.add(key);
    return key;
  }

  async dispose(): Promise<void> {
    for (const key of this.keys) await this.driver.delete(key);
  }
}

/** The rejection of an operation whose body failed: the body's own error, possibly wrapped as a cause. */
function isBodyError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.message === 'client went away') return true;
  }
  return false;
}

/** A JSON round trip, as a handle stored in metadata makes. */
function persist(handle: UploadHandle): UploadHandle {
  return JSON.parse(JSON.stringify(handle)) as UploadHandle;
}

async function uploadIds(driver: StorageDriver): Promise<Set<string>> {
  return new Set((await collect(driver.listUploads())).map((u) => u.handle.id));
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export async function sha256Of(stream: Readable): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Uint8Array);
    size += (chunk as Uint8Array).byteLength;
  }
  return { hex: hash.digest('hex'), size };
}

function sorted(keys: readonly string[]): string[] {
  return [...keys].sort();
}

export function chunksOf(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

/**
 * A pull-based body of `total` random bytes in `chunk`-sized pieces, generated as it is read. `digest()` gives
 * the sha256 of what was produced, once the body has ended; `into` lets several bodies feed one hash.
 */
export function randomBody(
  total: number,
  chunk = 64 * 1024,
  into = createHash('sha256'),
): { body: Readable; digest: () => string } {
  let remaining = total;
  const body = new Readable({
    read() {
      if (remaining === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, remaining);
      remaining -= n;
      const bytes = randomBytes(n);
      into.update(bytes);
      this.push(bytes);
    },
  });
  return {
    body,
    digest: () => {
      assert.equal(remaining, 0, 'the body was read to the end');
      return into.copy().digest('hex');
    },
  };
}

/**
 * A body that delivers `prefix` and then, once the consumer asks for more, fails: with an error (a client that
 * went away mid-request) or by being destroyed without one (a socket closed under the request).
 */
function failingBody(prefix: Buffer, how: 'error' | 'destroy' = 'error'): Readable {
  let sent = false;
  return new Readable({
    highWaterMark: 1024,
    read() {
      if (!sent) {
        sent = true;
        this.push(prefix);
        return;
      }
      setTimeout(() => {
        if (how === 'error') this.destroy(new Error('client went away'));
        else this.destroy();
      }, 20);
    },
  });
}
