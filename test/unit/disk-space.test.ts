/**
 * Free space and the disk reserve, with an injected statfs where the figure matters: the sampled free-space probe,
 * the filesystem driver's `freeSpace()`, the refusal of new uploads below `minFreeSpace`, recognising errors of a
 * full disk, and the reserve file's life (created only with room to spare, released, re-created, never throwing).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Logger } from '../../src/logger.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { InsufficientStorageError } from '../../src/oci/errors.ts';
import { isStorageFull } from '../../src/registry/storage-full.ts';
import { UploadService } from '../../src/registry/uploads.ts';
import { DiskReserve } from '../../src/storage/disk-reserve.ts';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.ts';
import { FreeSpaceProbe, type StatfsFn } from '../../src/storage/free-space.ts';

const MiB = 1024 * 1024;

/** A statfs answering `free()` bytes (in 4 KiB blocks) and recording the paths it was asked about. */
function fakeStatfs(free: () => number): StatfsFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (p: string) => {
    calls.push(p);
    return { bavail: Math.floor(free() / 4096), bsize: 4096 };
  };
  return Object.assign(fn, { calls });
}

/** A Logger that keeps the messages of warnings and infos. */
function recordingLogger(): Logger & { warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return {
    warnings,
    infos,
    debug: () => undefined,
    info: (_fields, message) => infos.push(message ?? ''),
    warn: (_fields, message) => warnings.push(message ?? ''),
    error: (_fields, message) => warnings.push(message ?? ''),
  };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-disk-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

describe('FreeSpaceProbe', () => {
  it('reuses a sample for a second, and shares one measurement among concurrent callers', async () => {
    let free = 5 * MiB;
    let clock = 1_000_000;
    const statfs = fakeStatfs(() => free);
    const probe = new FreeSpaceProbe(dir, { statfs, now: () => clock });
    assert.deepEqual(await Promise.all([probe.available(), probe.available()]), [5 * MiB, 5 * MiB]);
    assert.equal(statfs.calls.length, 1);
    free = 1 * MiB;
    clock += 999;
    assert.equal(await probe.available(), 5 * MiB, 'the sample is still fresh');
    clock += 1;
    assert.equal(await probe.available(), 1 * MiB);
    assert.equal(statfs.calls.length, 2);
  });

  it('measures the nearest existing ancestor of a directory not created yet', async () => {
    const statfs = fakeStatfs(() => MiB);
    const probe = new FreeSpaceProbe(path.join(dir, 'not', 'yet'), {
      statfs: async (p) => {
        await stat(p); // ENOENT for missing directories, as statfs(2)
        return statfs(p);
      },
    });
    assert.equal(await probe.available(), MiB);
    assert.deepEqual(statfs.calls, [dir]);
  });

  it('reads real figures from fs.statfs by default', async () => {
    const free = await new FreeSpaceProbe(dir).available();
    assert.ok(Number.isSafeInteger(free) && free > 0, `free space ${free}`);
  });
});

describe('new uploads and minFreeSpace', () => {
  let metadata: KyselyMetadataStore;
  const root = (): string => path.join(dir, 'blobs');
  const drivers: FilesystemDriver[] = [];

  /** An upload service over the same storage and database, whose filesystem reports `free` bytes. */
  function serviceWith(
    free: number,
    minFreeSpace = 10 * MiB,
    statfs = fakeStatfs(() => free),
  ): UploadService {
    const driver = new FilesystemDriver({ root: root(), statfs });
    drivers.push(driver);
    return new UploadService({
      storage: driver,
      metadata,
      options: { deletes: true, maxManifestSize: MiB, uploadPurgeAfter: 3600_000, minFreeSpace },
    });
  }

  before(async () => {
    metadata = createSqliteStore(':memory:');
    await metadata.migrate();
  });
  after(async () => {
    await metadata.close();
    for (const d of drivers) await d.close();
  });

  it('the filesystem driver reports what statfs says', async () => {
    const driver = new FilesystemDriver({ root: root(), statfs: fakeStatfs(() => 100 * MiB) });
    drivers.push(driver);
    assert.equal(await driver.freeSpace(), 100 * MiB);
  });

  it('refuses new sessions and monolithic uploads below the minimum, lets open sessions go on', async () => {
    const open = await serviceWith(10 * MiB).start('team/app', null);
    const tight = serviceWith(10 * MiB - 1);
    await assert.rejects(tight.start('team/app', null), InsufficientStorageError);
    const bytes = randomBytes(100);
    await assert.rejects(
      tight.uploadWhole('team/app', digestOf(bytes), { stream: Readable.from([bytes]) }),
      InsufficientStorageError,
    );
    await assert.rejects(tight.assertRoomForNewUpload(), InsufficientStorageError);
    await tight.append('team/app', open.id, null, { stream: Readable.from([bytes]) });
    assert.equal((await tight.complete('team/app', open.id, null, digestOf(bytes), null)).size, 100);
    assert.deepEqual(await readdir(path.join(root(), '_uploads')), [], 'refusals leave nothing behind');
  });

  it('with minFreeSpace 0 the free space is not even looked at', async () => {
    const statfs = fakeStatfs(() => 0);
    const unchecked = serviceWith(0, 0, statfs);
    await unchecked.assertRoomForNewUpload();
    const session = await unchecked.start('team/app', null);
    await unchecked.cancel('team/app', session.id, null);
    assert.deepEqual(statfs.calls, []);
  });
});

describe('isStorageFull', () => {
  it('knows ENOSPC, EDQUOT, SQLITE_FULL and PostgreSQL disk_full, also as a cause', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']) {
      assert.equal(isStorageFull(Object.assign(new Error('x'), { code })), true, code);
      assert.equal(
        isStorageFull(new Error('wrapped', { cause: Object.assign(new Error('x'), { code }) })),
        true,
      );
    }
    for (const other of [
      new Error('x'),
      Object.assign(new Error('x'), { code: 'EIO' }),
      null,
      'ENOSPC',
      28,
    ]) {
      assert.equal(isStorageFull(other), false, String(other));
    }
  });
});

describe('DiskReserve', () => {
  it('creates a file of random bytes of its size, once', async () => {
    const file = path.join(dir, 'once.reserve');
    const reserve = new DiskReserve({ file, size: 3 * MiB + 5 });
    assert.equal(await reserve.ensure(), true);
    const bytes = await readFile(file);
    assert.equal(bytes.length, 3 * MiB + 5);
    assert.ok(
      !bytes.subarray(0, 4096).equals(Buffer.alloc(4096)),
      'not zeros, which a filesystem may not store',
    );
    const { mtimeMs } = await stat(file);
    assert.equal(await reserve.ensure(), true);
    assert.equal((await stat(file)).mtimeMs, mtimeMs, 'a whole reserve is not rewritten');
    reserve.close();
  });

  it('without room for itself and the headroom it warns once, and comes when space is back', async () => {
    const file = path.join(dir, 'later.reserve');
    let free = 2 * MiB + 100 * MiB - 1; // needs twice its size plus the headroom
    const log = recordingLogger();
    const reserve = new DiskReserve({
      file,
      size: MiB,
      headroom: 100 * MiB,
      log,
      recheckMs: 5,
      statfs: fakeStatfs(() => free),
    });
    try {
      assert.equal(await reserve.ensure(), false);
      await assert.rejects(stat(file), { code: 'ENOENT' });
      await sleep(30);
      assert.deepEqual(log.warnings, [
        'not enough free space for the disk reserve; it is created once there is',
      ]);
      free += 1;
      while ((await stat(file).catch(() => null)) === null) await sleep(5);
      assert.equal((await stat(file)).size, MiB);
      assert.deepEqual(log.infos, ['disk reserve re-created']);
    } finally {
      reserve.close();
    }
  });

  it('release deletes the file and warns; it is re-created once the recheck finds room', async () => {
    const file = path.join(dir, 'released.reserve');
    let free = 0;
    const log = recordingLogger();
    const reserve = new DiskReserve({ file, size: MiB, log, recheckMs: 5, statfs: fakeStatfs(() => free) });
    try {
      free = 10 * MiB;
      assert.equal(await reserve.ensure(), true);
      free = 0;
      await Promise.all([reserve.release(), reserve.release()]);
      await assert.rejects(stat(file), { code: 'ENOENT' });
      assert.deepEqual(log.warnings, ['disk full: released the disk reserve'], 'one release, one warning');
      await sleep(30);
      await assert.rejects(stat(file), { code: 'ENOENT' }, 'no room yet');
      free = 10 * MiB;
      while ((await stat(file).catch(() => null)) === null) await sleep(5);
      assert.equal((await stat(file)).size, MiB);
    } finally {
      reserve.close();
    }
  });

  it('never throws: a write that fails leaves no file behind and a warning', async () => {
    const file = path.join(dir, 'missing-dir', 'x.reserve');
    const log = recordingLogger();
    const reserve = new DiskReserve({ file, size: MiB, log, statfs: fakeStatfs(() => 100 * MiB) });
    try {
      assert.equal(await reserve.ensure(), false);
      await reserve.release();
      assert.deepEqual(log.warnings, ['cannot create the disk reserve']);
      await assert.rejects(readdir(path.join(dir, 'missing-dir')), { code: 'ENOENT' });
    } finally {
      reserve.close();
    }
  });
});
