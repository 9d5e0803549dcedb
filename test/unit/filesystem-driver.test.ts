import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';

import {
  InvalidPathError,
  ObjectNotFoundError,
  RangeNotSatisfiableError,
  StorageError,
  UploadNotFoundError,
} from '../../src/storage/driver.ts';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.ts';
import { INVALID_KEYS, runDriverSuite } from '../../src/storage/testing/driver-suite.ts';

runDriverSuite('filesystem', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'berth-fs-suite-'));
  // A root that does not exist yet: the suite also exercises lazy directory creation.
  const root = path.join(base, 'storage');
  return {
    driver: new FilesystemDriver({ root }),
    reopen: async () => new FilesystemDriver({ root }),
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
});

describe('FilesystemDriver', () => {
  let base: string;
  let root: string;
  let driver: FilesystemDriver;

  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'berth-fs-'));
    root = path.join(base, 'storage');
    driver = new FilesystemDriver({ root });
  });

  afterEach(async () => {
    await driver.close();
    await rm(base, { recursive: true, force: true });
  });

  async function entries(dir: string): Promise<string[]> {
    return readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
  }

  async function readAll(stream: Readable): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
    const out: T[] = [];
    for await (const item of iterable) out.push(item);
    return out;
  }

  it('is named filesystem and creates nothing on construction', async () => {
    assert.equal(driver.name, 'filesystem');
    await assert.rejects(stat(root), { code: 'ENOENT' });
  });

  it('refuses invalid and reserved keys before any filesystem call', async () => {
    const forged = { id: randomUUID() };
    const keys = [...INVALID_KEYS, '_uploads', '_uploads/x', `_uploads/${forged.id}/data`, '_tmp', '_tmp/x'];
    for (const key of keys) {
      const label = JSON.stringify(key);
      await assert.rejects(driver.put(key, Buffer.from('x')), InvalidPathError, `put ${label}`);
      await assert.rejects(driver.read(key), InvalidPathError, `read ${label}`);
      await assert.rejects(driver.stat(key), InvalidPathError, `stat ${label}`);
      await assert.rejects(driver.delete(key), InvalidPathError, `delete ${label}`);
      await assert.rejects(driver.commitUpload(forged, 0, key), InvalidPathError, `commit ${label}`);
      if (key !== '') await assert.rejects(collect(driver.list(key)), InvalidPathError, `list ${label}`);
    }
    // Had any of them reached the filesystem, the root (created lazily) or `<base>/x` would exist now.
    assert.deepEqual(await entries(base), []);
  });

  it('stores objects at <root>/<key> and leaves no temporary files', async () => {
    const data = randomBytes(10_000);
    await driver.put('blobs/sha256/ab/abcdef', Readable.from([data]));
    assert.deepEqual(await readFile(path.join(root, 'blobs', 'sha256', 'ab', 'abcdef')), data);

    const upload = await driver.createUpload();
    assert.deepEqual(await readFile(path.join(root, '_uploads', upload.id, 'data')), Buffer.alloc(0));
    const { handle, size } = await driver.appendUpload(upload, 0, Readable.from([data]));
    await driver.commitUpload(handle, size, 'blobs/sha256/cd/cdef01');
    assert.deepEqual(await readFile(path.join(root, 'blobs', 'sha256', 'cd', 'cdef01')), data);

    await assert.rejects(driver.put('blobs/failed', failing(randomBytes(100_000))), /boom/);
    assert.deepEqual(await entries(path.join(root, '_tmp')), []);
    assert.deepEqual(await entries(path.join(root, '_uploads')), []);
  });

  it('removes the temporary file when the rename fails', async () => {
    await driver.put('a', Buffer.from('file'));
    // `a` is an object, so `a/b` cannot be created below it.
    await assert.rejects(driver.put('a/b', Buffer.from('x')));
    assert.deepEqual(await entries(path.join(root, '_tmp')), []);
    assert.deepEqual(await readFile(path.join(root, 'a')), Buffer.from('file'));
  });

  it('never lists private directories, stray names or symlinks', async () => {
    await driver.put('blobs/ok', Buffer.from('1'));
    const upload = await driver.createUpload();
    await driver.appendUpload(upload, 0, Readable.from([Buffer.from('pending')]));
    await writeFile(path.join(root, '_tmp', 'leftover'), 'x');
    await writeFile(path.join(root, 'blobs', 'bad name'), 'x');
    await writeFile(path.join(base, 'outside'), 'x');
    await symlink(path.join(base, 'outside'), path.join(root, 'blobs', 'link'));
    await mkdir(path.join(root, 'blobs', 'empty-dir'));

    assert.deepEqual(await collect(driver.list('')), ['blobs/ok']);
    assert.deepEqual(await collect(driver.list('blobs')), ['blobs/ok']);
    await driver.abortUpload(upload);
  });

  it('reads an object as it was when the stream was opened, across overwrite and delete', async () => {
    const first = randomBytes(200_000);
    await driver.put('k', first);
    const beforeOverwrite = await driver.read('k');
    await driver.put('k', randomBytes(1000));
    const beforeDelete = await driver.read('k', { start: 0, end: 999 });
    await driver.delete('k');
    assert.deepEqual(await readAll(beforeOverwrite), first);
    assert.equal((await readAll(beforeDelete)).length, 1000);
  });

  it('shares one descriptor among immutable reads and closes it after idling; plain reads open their own', async () => {
    if (process.platform !== 'linux') return; // counts descriptors in /proc/self/fd
    const cached = new FilesystemDriver({ root, openFiles: { maxEntries: 4, idleMs: 50, maxAgeMs: 60_000 } });
    const data = randomBytes(300_000);
    await cached.put('blobs/shared', data);
    const file = path.join(root, 'blobs', 'shared');
    const descriptors = async (): Promise<number> => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) {
        if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) n++;
      }
      return n;
    };
    try {
      const streams = await Promise.all(
        Array.from({ length: 5 }, () => cached.read('blobs/shared', undefined, { immutable: true })),
      );
      assert.equal(await descriptors(), 1, 'five open immutable reads, one descriptor');
      const plain = await cached.read('blobs/shared');
      assert.equal(await descriptors(), 2, 'a plain read opens its own');
      for (const got of await Promise.all([...streams, plain].map(readAll))) assert.deepEqual(got, data);
      let closed = false;
      for (let i = 0; i < 200 && !closed; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        closed = (await descriptors()) === 0;
      }
      assert.ok(closed, 'the shared descriptor is closed once idle');
    } finally {
      await cached.close();
    }
  });

  it('serves an immutable object removed behind its back from the cache until a delete through it', async () => {
    const data = randomBytes(5000);
    await driver.put('blobs/gone', data);
    const immutable = { immutable: true } as const;
    assert.deepEqual(await readAll(await driver.read('blobs/gone', undefined, immutable)), data);
    await rm(path.join(root, 'blobs', 'gone')); // another process, or an operator
    assert.deepEqual(
      await readAll(await driver.read('blobs/gone', undefined, immutable)),
      data,
      'the documented window: the same bytes from the cached descriptor',
    );
    await assert.rejects(driver.read('blobs/gone'), ObjectNotFoundError, 'a plain read sees the removal');
    assert.equal(await driver.delete('blobs/gone'), false, 'nothing left to delete');
    await assert.rejects(driver.read('blobs/gone', undefined, immutable), ObjectNotFoundError, 'forgotten');
  });

  it('truncates bytes left past the offset by a crashed append', async () => {
    const created = await driver.createUpload();
    const data = path.join(root, '_uploads', created.id, 'data');
    const a = randomBytes(5000);
    const { handle, size } = await driver.appendUpload(created, 0, Readable.from([a]));
    await appendFile(data, randomBytes(7000)); // the crash: bytes the caller never recorded
    assert.equal((await stat(data)).size, 12_000);

    const c = randomBytes(300);
    const next = await driver.appendUpload(handle, size, Readable.from([c]));
    assert.equal(next.size, 5300);
    assert.deepEqual(await readFile(data), Buffer.concat([a, c]));

    // The same at commit time: the recorded size wins.
    await appendFile(data, randomBytes(900));
    await driver.commitUpload(next.handle, next.size, 'blobs/x');
    assert.deepEqual(await readFile(path.join(root, 'blobs', 'x')), Buffer.concat([a, c]));
    assert.deepEqual(await entries(path.join(root, '_uploads')), []);
  });

  it('explains an append at an offset past the stored bytes', async () => {
    const handle = await driver.createUpload();
    await assert.rejects(
      driver.appendUpload(handle, 1, Readable.from([Buffer.from('x')])),
      (err) => err instanceof UploadNotFoundError && /upload is shorter than expected/.test(err.message),
    );
    await driver.abortUpload(handle);
  });

  it('never follows a forged upload id outside _uploads', async () => {
    const victim = path.join(base, 'victim');
    await mkdir(path.join(victim, 'inner'), { recursive: true });
    await writeFile(path.join(victim, 'data'), 'precious');
    await driver.ping();
    for (const id of [
      '../../victim',
      '../victim',
      `${randomUUID()}/../../../victim`,
      randomUUID().toUpperCase(),
    ]) {
      await assert.rejects(
        driver.appendUpload({ id }, 0, Readable.from([Buffer.from('x')])),
        UploadNotFoundError,
      );
      await assert.rejects(driver.readUpload({ id }, 0), UploadNotFoundError);
      await assert.rejects(driver.commitUpload({ id }, 0, 'blobs/y'), UploadNotFoundError);
      await driver.abortUpload({ id });
    }
    assert.equal(await readFile(path.join(victim, 'data'), 'utf8'), 'precious');
    assert.equal(await driver.stat('blobs/y'), null);
  });

  it('keeps the existing file when a commit finds its key taken', async () => {
    const data = randomBytes(1000);
    await driver.put('blobs/same', data);
    const inode = (await stat(path.join(root, 'blobs', 'same'))).ino;
    const { handle, size } = await driver.appendUpload(await driver.createUpload(), 0, Readable.from([data]));
    await driver.commitUpload(handle, size, 'blobs/same');
    assert.equal((await stat(path.join(root, 'blobs', 'same'))).ino, inode);
    assert.deepEqual(await entries(path.join(root, '_uploads')), []);
  });

  it('lists and aborts an upload directory whose data file is gone (crash during commit)', async () => {
    const id = randomUUID();
    await mkdir(path.join(root, '_uploads', id), { recursive: true });
    await mkdir(path.join(root, '_uploads', 'not-an-upload'));
    const listed = await collect(driver.listUploads());
    assert.deepEqual(
      listed.map((u) => u.handle),
      [{ id }],
    );
    assert.ok(listed[0]?.modifiedAt instanceof Date);
    await assert.rejects(
      driver.appendUpload({ id }, 0, Readable.from([Buffer.from('x')])),
      UploadNotFoundError,
    );
    await driver.abortUpload({ id });
    assert.deepEqual(await collect(driver.listUploads()), []);
  });

  it('closes file descriptors of read streams', { skip: process.platform !== 'linux' }, async (t) => {
    const openFds = async () => (await readdir('/proc/self/fd')).length;
    // A leaked FileHandle is either still open at the end, or closed by the garbage collector with a warning.
    const gcCloses: string[] = [];
    const onWarning = (warning: Error) => {
      if (/garbage collection/.test(warning.message)) gcCloses.push(warning.message);
    };
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    await driver.put('fd/object', randomBytes(1024 * 1024));
    const upload = await driver.createUpload();
    const { handle, size } = await driver.appendUpload(upload, 0, Readable.from([randomBytes(1024 * 1024)]));
    const before = await openFds();
    const rounds = 20;
    for (let i = 0; i < rounds; i++) {
      for (const stream of [
        await driver.read('fd/object'),
        await driver.read('fd/object', { start: 10, end: 500_000 }),
        await driver.readUpload(handle, size),
      ]) {
        const closed = new Promise((resolve) => stream.once('close', resolve));
        stream.destroy(); // a client that hangs up before reading
        await closed;
      }
      await readAll(await driver.read('fd/object'));
      await assert.rejects(
        driver.read('fd/object', { start: 0, end: 1024 * 1024 }),
        RangeNotSatisfiableError,
      );
      await assert.rejects(driver.read('fd/missing'), ObjectNotFoundError);
      await assert.rejects(driver.readUpload(handle, size + 1), UploadNotFoundError);
    }
    const after = await openFds();
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
    assert.ok(after < before + rounds, `file descriptors leaked: ${before} before, ${after} after`);
    assert.deepEqual(gcCloses, []);
    await driver.abortUpload(handle);
  });

  it('ping creates a missing root, and fails when the root is not a directory', async () => {
    await driver.ping();
    assert.ok((await stat(root)).isDirectory());

    const file = path.join(base, 'a-file');
    await writeFile(file, 'x');
    const broken = new FilesystemDriver({ root: file });
    await assert.rejects(broken.ping(), StorageError);
    const below = new FilesystemDriver({ root: path.join(file, 'below') });
    await assert.rejects(below.ping(), StorageError);
  });

  it('checkWritable creates a missing root and leaves an empty upload area; fails naming the root when it cannot write', async () => {
    await driver.checkWritable();
    assert.deepEqual(await entries(path.join(root, '_uploads')), []);

    const file = path.join(base, 'a-file');
    await writeFile(file, 'x');
    for (const broken of [file, path.join(file, 'below')]) {
      await assert.rejects(
        new FilesystemDriver({ root: broken }).checkWritable(),
        (err) =>
          err instanceof StorageError && err.message.includes(broken) && /ENOTDIR|EEXIST/.test(err.message),
      );
    }
  });
});

/** A body that yields `prefix`, then errors. */
function failing(prefix: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield prefix;
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error('boom');
    })(),
  );
}
