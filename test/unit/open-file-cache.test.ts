import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, readSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  OpenFileCache,
  type FileLease,
  type OpenFileCacheOptions,
} from '../../src/storage/open-file-cache.ts';

/** How many descriptors this process holds open on `file` (Linux: /proc/self/fd). */
function descriptorsOn(file: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // closed while we were listing
    }
  }
  return n;
}

/** The first `length` bytes read through a lease's descriptor. */
function readThrough(lease: FileLease, length: number): string {
  const buffer = Buffer.alloc(length);
  const n = readSync(lease.fd, buffer, 0, length, 0);
  return buffer.subarray(0, n).toString();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `ms` pass; returns whether it held. */
async function eventually(check: () => boolean, ms = 2_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(10)) if (check()) return true;
  return check();
}

describe(
  'OpenFileCache',
  { skip: process.platform !== 'linux' && 'counts descriptors in /proc/self/fd' },
  () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'berth-ofc-'));
    });
    after(async () => rm(dir, { recursive: true, force: true }));

    let counter = 0;
    async function fileWith(content: string): Promise<string> {
      const file = path.join(dir, `f${++counter}`);
      await writeFile(file, content);
      return file;
    }

    /** Runs `body` with a cache (limits default to 8 entries, 60 s idle, 60 s age) and closes it afterwards. */
    async function withCache(
      limits: Partial<OpenFileCacheOptions>,
      body: (cache: OpenFileCache) => Promise<void>,
    ): Promise<void> {
      const cache = new OpenFileCache({ maxEntries: 8, idleMs: 60_000, maxAgeMs: 60_000, ...limits });
      try {
        await body(cache);
      } finally {
        cache.close();
      }
    }

    it('opens a file once for concurrent leases and keeps it open after they are released', async () => {
      const file = await fileWith('hello');
      await withCache({}, async (cache) => {
        const leases = await Promise.all(Array.from({ length: 20 }, () => cache.lease(file)));
        assert.equal(new Set(leases.map((l) => l.fd)).size, 1, 'one descriptor shared');
        assert.equal(descriptorsOn(file), 1);
        assert.equal(leases[0]!.stats.size, 5);
        assert.equal(readThrough(leases[7]!, 5), 'hello');
        for (const lease of leases) lease.release();
        await sleep(50); // close(2) runs on the thread pool: give a wrong close time to show
        assert.equal(descriptorsOn(file), 1, 'kept open for the next reader');
        const again = await cache.lease(file);
        assert.equal(again.fd, leases[0]!.fd, 'reused');
        again.release();
        assert.throws(() => again.release(), /released twice/);
      });
      assert.ok(await eventually(() => descriptorsOn(file) === 0), 'close() closes idle descriptors');
    });

    it('closes a descriptor once it has been idle for idleMs', async () => {
      const file = await fileWith('idle');
      await withCache({ idleMs: 50 }, async (cache) => {
        const lease = await cache.lease(file);
        await sleep(150);
        assert.equal(descriptorsOn(file), 1, 'a leased descriptor is never closed');
        lease.release();
        assert.ok(await eventually(() => descriptorsOn(file) === 0), 'closed after idling');
        assert.equal(cache.size, 0);
      });
    });

    it('sees a replaced file after invalidate, while a lease taken before keeps reading the old one', async () => {
      const file = await fileWith('old!');
      await withCache({}, async (cache) => {
        const old = await cache.lease(file);
        const replacement = path.join(dir, 'replacement');
        await writeFile(replacement, 'new content');
        await rename(replacement, file);

        const stale = await cache.lease(file);
        assert.equal(readThrough(stale, 20), 'old!', 'without invalidate the cached descriptor is reused');
        stale.release();

        cache.invalidate(file);
        const fresh = await cache.lease(file);
        assert.equal(readThrough(fresh, 20), 'new content');
        assert.equal(fresh.stats.size, 11);
        assert.equal(readThrough(old, 20), 'old!', 'a lease in use is not disturbed');
        assert.equal(descriptorsOn(file), 1, 'the old descriptor no longer names the file');
        old.release();
        fresh.release();
      });
    });

    it('does not cache an open that was invalidated while in progress', async () => {
      const file = await fileWith('racing');
      await withCache({}, async (cache) => {
        const pending = cache.lease(file);
        cache.invalidate(file);
        const lease = await pending;
        assert.equal(readThrough(lease, 10), 'racing', 'the waiting caller is still served');
        assert.equal(cache.size, 0, 'but the descriptor is not kept');
        lease.release();
        assert.ok(await eventually(() => descriptorsOn(file) === 0));
      });
    });

    it('stops handing out a descriptor older than maxAgeMs', async () => {
      const file = await fileWith('aging');
      await withCache({ maxAgeMs: 40 }, async (cache) => {
        const first = await cache.lease(file);
        await sleep(80);
        const second = await cache.lease(file);
        assert.equal(descriptorsOn(file), 2, 'a second descriptor was opened');
        first.release();
        assert.ok(
          await eventually(() => descriptorsOn(file) === 1),
          'the aged one closes with its last lease',
        );
        second.release();
      });
    });

    it('keeps at most maxEntries, evicting idle least-recently-used entries first', async () => {
      const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map(fileWith));
      await withCache({ maxEntries: 2 }, async (cache) => {
        const leaseA = await cache.lease(a!); // in use throughout
        (await cache.lease(b!)).release();
        (await cache.lease(c!)).release(); // 3 entries > 2: b (idle, least recent) goes
        assert.ok(await eventually(() => descriptorsOn(b!) === 0), 'b evicted');
        assert.equal(descriptorsOn(a!), 1, 'an entry in use is not evicted while an idle one can be');
        assert.equal(descriptorsOn(c!), 1);
        const leaseD = await cache.lease(d!); // c is idle: evicted before a
        assert.ok(await eventually(() => descriptorsOn(c!) === 0), 'c evicted');
        (await cache.lease(b!)).release(); // only a and d left, both in use: the older, a, is evicted
        assert.equal(cache.size, 2);
        await sleep(50);
        assert.equal(descriptorsOn(a!), 1, 'evicted but still leased: stays open');
        leaseA.release();
        assert.ok(await eventually(() => descriptorsOn(a!) === 0), 'closed when its lease ends');
        leaseD.release();
      });
    });

    it('rejects a missing file without caching the failure, and does not keep directories', async () => {
      const file = path.join(dir, 'later');
      const sub = path.join(dir, 'sub');
      await mkdir(sub);
      await withCache({}, async (cache) => {
        await assert.rejects(cache.lease(file), { code: 'ENOENT' });
        await writeFile(file, 'now here');
        const lease = await cache.lease(file);
        assert.equal(readThrough(lease, 20), 'now here');
        lease.release();

        const dirLease = await cache.lease(sub);
        assert.equal(dirLease.stats.isDirectory(), true);
        assert.equal(cache.size, 1, 'only the file is cached');
        dirLease.release();
        assert.ok(await eventually(() => descriptorsOn(sub) === 0), 'a directory closes on release');
      });
    });
  },
);
