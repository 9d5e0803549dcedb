/**
 * A full disk, for real: the registry's data directory (SQLite database, blobs, disk reserve) on a small tmpfs that
 * the tests fill with a file of their own, so that the registry's next write fails with ENOSPC.
 *
 * - A chunk that does not fit answers 507 INSUFFICIENT_STORAGE; what it wrote is discarded, the session stays at
 *   its acknowledged size and resumes once space is freed; the disk reserve is released for the cleanup.
 * - Cancelling a session on a full disk works (its bytes are freed before its row is deleted), and pushes work
 *   again afterwards.
 * - A monolithic upload that does not fit leaves nothing behind.
 * - Below `storage.filesystem.minFree`, new uploads are refused and /readyz fails, until space is freed.
 *
 * Mounting needs root (or CAP_SYS_ADMIN); without it the suite is skipped, saying why, except under CI=true where
 * that is a failure (test/helpers/skip.ts). test/http/disk-space.test.ts and test/unit/disk-space.test.ts cover
 * the refusal logic and the reserve without a mount.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { DISK_RESERVE_FILE } from '../../src/http/plugins/disk-reserve.ts';
import {
  assertError,
  createTestRegistry,
  json,
  randomBlob,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import { skipOrFail } from '../helpers/skip.ts';

const MiB = 1024 * 1024;
const TMPFS_SIZE = 40 * MiB;

/** Mounts a tmpfs of `size` bytes on a new directory; a skip reason when that is not possible. */
async function mountTmpfs(size: number): Promise<{ dir: string } | { skip: string }> {
  if (process.platform !== 'linux') return { skip: 'tmpfs mounts are Linux-only' };
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status === 0) return { dir };
  await rmdir(dir);
  const why = (r.error?.message ?? r.stderr).trim() || `exit ${r.status}`;
  return { skip: `cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): ${why}` };
}

const mounted = await mountTmpfs(TMPFS_SIZE);
const skip = skipOrFail('skip' in mounted ? mounted.skip : false);
const mountDir = 'dir' in mounted ? mounted.dir : '';

/** Files written to fill the disk, removed by `freeSpace()`. */
const fillers: string[] = [];

/** Writes a file until the tmpfs is full, leaving `leave` bytes free (about: a page or so either way). */
async function fillDisk(leave = 0): Promise<void> {
  const file = path.join(mountDir, `filler-${fillers.length}`);
  fillers.push(file);
  const fh = await open(file, 'w');
  try {
    const { statfs } = await import('node:fs/promises');
    const st = await statfs(mountDir);
    let todo = st.bavail * st.bsize - leave;
    const chunk = Buffer.alloc(256 * 1024, 1);
    while (todo > 0) {
      try {
        const { bytesWritten } = await fh.write(chunk, 0, Math.min(chunk.length, todo));
        todo -= bytesWritten;
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOSPC') break;
        throw err;
      }
    }
  } finally {
    await fh.close();
  }
}

async function freeSpace(): Promise<void> {
  for (const file of fillers.splice(0)) await rm(file, { force: true });
}

after(async () => {
  if (mountDir === '') return;
  spawnSync('umount', ['-l', mountDir]);
  await rmdir(mountDir).catch(() => undefined);
});

function location(res: Response): string {
  return new URL(String(res.headers.location), 'http://x').pathname;
}

function message(res: Response): string {
  return json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '';
}

describe('a full disk (tmpfs)', { skip }, () => {
  let reg: TestRegistry;

  before(async () => {
    const dataDir = path.join(mountDir, 'data');
    await mkdir(dataDir);
    reg = await createTestRegistry({ 'storage.filesystem.minFree': 0 }, { dataDir });
  });
  after(async () => {
    await reg?.close();
    await freeSpace();
  });

  async function start(repo: string): Promise<string> {
    const res = await reg.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` });
    assert.equal(res.statusCode, 202, res.body);
    return location(res);
  }

  function patch(url: string, chunk: Buffer, startAt: number): Promise<Response> {
    return reg.inject({
      method: 'PATCH',
      url,
      headers: { 'content-range': `${startAt}-${startAt + chunk.length - 1}` },
      payload: chunk,
    });
  }

  async function uploadDataSize(url: string): Promise<number> {
    const session = await reg.services.metadata.getUploadSession(url.split('/').pop() as string);
    assert.ok(session);
    return (await stat(path.join(reg.dataDir, 'blobs', '_uploads', session.handle.id, 'data'))).size;
  }

  it('keeps a disk reserve beside the database while there is room', async () => {
    assert.equal((await stat(path.join(reg.dataDir, DISK_RESERVE_FILE))).size, 8 * MiB);
  });

  it('a chunk that does not fit: 507, nothing of it counts or stays, and the session resumes later', async () => {
    const data = randomBlob(3 * MiB);
    let url = await start('full/app');
    let res = await patch(url, data.subarray(0, MiB), 0);
    assert.equal(res.statusCode, 202, res.body);
    url = location(res);

    await fillDisk(512 * 1024); // the chunk gets about that far
    res = await patch(url, data.subarray(MiB), MiB);
    assertError(res, 507, 'INSUFFICIENT_STORAGE');
    assert.equal(message(res), "the registry's storage is full");
    await assert.rejects(stat(path.join(reg.dataDir, DISK_RESERVE_FILE)), { code: 'ENOENT' }, 'released');
    assert.equal(await uploadDataSize(url), MiB, 'the bytes the failed chunk wrote are discarded');
    res = await reg.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers.range, `0-${MiB - 1}`);

    await freeSpace();
    res = await patch(url, data.subarray(MiB), MiB);
    assert.equal(res.statusCode, 202, res.body);
    res = await reg.inject({ method: 'PUT', url: `${location(res)}?digest=${sha256(data)}` });
    assert.equal(res.statusCode, 201, res.body);
    res = await reg.inject({ method: 'GET', url: `/v2/full/app/blobs/${sha256(data)}` });
    assert.ok(res.rawPayload.equals(data));
  });

  it('cancelling a session on a full disk frees its bytes, and pushes work again', async () => {
    let url = await start('full/cancel');
    const res = await patch(url, randomBlob(4 * MiB), 0);
    assert.equal(res.statusCode, 202, res.body);
    url = location(res);
    // Full to the last byte, reserve included: the database cannot grow until something is freed.
    await rm(path.join(reg.dataDir, DISK_RESERVE_FILE), { force: true });
    await fillDisk();

    const cancel = await reg.inject({ method: 'DELETE', url });
    assert.equal(cancel.statusCode, 204, cancel.body);
    assertError(await reg.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await reg.pushBlob('full/cancel', randomBlob(64 * 1024));
    await freeSpace();
  });

  it('a monolithic upload that does not fit leaves nothing behind', async () => {
    await fillDisk(MiB);
    const data = randomBlob(3 * MiB);
    const res = await reg.inject({
      method: 'POST',
      url: `/v2/full/app/blobs/uploads/?digest=${sha256(data)}`,
      payload: data,
    });
    assertError(res, 507, 'INSUFFICIENT_STORAGE');
    assertError(
      await reg.inject({ method: 'HEAD', url: `/v2/full/app/blobs/${sha256(data)}` }),
      404,
      'BLOB_UNKNOWN',
    );
    const uploads = [];
    for await (const u of reg.services.storage.listUploads()) uploads.push(u);
    assert.deepEqual(uploads, []);
    await freeSpace();
    await reg.pushBlob('full/app', data);
  });
});

describe('storage.filesystem.minFree on a filling disk (tmpfs)', { skip }, () => {
  let reg: TestRegistry;

  before(async () => {
    const dataDir = path.join(mountDir, 'minfree');
    await mkdir(dataDir);
    reg = await createTestRegistry({ 'storage.filesystem.minFree': 16 * MiB }, { dataDir });
  });
  after(async () => {
    await reg?.close();
    await freeSpace();
    await rm(path.join(mountDir, 'minfree'), { recursive: true, force: true });
  });

  it('refuses new uploads and fails /readyz below it, and recovers once space is freed', async () => {
    let res = await reg.inject({ method: 'POST', url: '/v2/low/app/blobs/uploads/' });
    assert.equal(res.statusCode, 202, res.body);
    const open = location(res);

    await fillDisk(8 * MiB);
    await sleep(1100); // free space is sampled at most once a second
    res = await reg.inject({ method: 'POST', url: '/v2/low/app/blobs/uploads/' });
    assertError(res, 507, 'INSUFFICIENT_STORAGE');
    assert.match(message(res), /nearly full/);
    res = await reg.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.equal(json<{ checks: { disk: string } }>(res).checks.disk, 'failed');
    const chunk = randomBlob(MiB);
    res = await reg.inject({ method: 'PATCH', url: open, payload: chunk });
    assert.equal(res.statusCode, 202, 'an upload in progress goes on');
    const completion = `${location(res)}?digest=${sha256(chunk)}`;

    await freeSpace();
    await sleep(1100);
    res = await reg.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200, res.body);
    res = await reg.inject({ method: 'POST', url: '/v2/low/app/blobs/uploads/' });
    assert.equal(res.statusCode, 202, res.body);
    res = await reg.inject({ method: 'PUT', url: completion });
    assert.equal(res.statusCode, 201, res.body);
  });
});
