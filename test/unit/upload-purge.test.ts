/**
 * The upload purge (UploadService.purgeStale and the job around it) on real storage, the filesystem driver and
 * the S3 driver (against s3rver), with a real SQLite store: stale sessions go with their bytes, upload bytes no
 * session references go once unmodified for the grace, and nothing live is ever touched. Time is moved by the
 * `now` purgeStale takes, except for the job, which runs on the clock (its orphan's file is dated back instead).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { JobRunner } from '../../src/jobs/runner.ts';
import { slotKey } from '../../src/jobs/schedule.ts';
import type { Logger } from '../../src/logger.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { digestOf } from '../../src/oci/digest.ts';
import type { RegistryOptions } from '../../src/registry/options.ts';
import { scheduleUploadPurge, UPLOAD_PURGE_QUEUE } from '../../src/registry/upload-purge.ts';
import { ORPHAN_GRACE_MS, UploadService } from '../../src/registry/uploads.ts';
import type { StorageDriver, UploadHandle } from '../../src/storage/driver.ts';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.ts';
import { S3Driver } from '../../src/storage/drivers/s3.ts';
import { blobKey } from '../../src/storage/paths.ts';
import { collect, readAll } from '../../src/storage/testing/driver-suite.ts';
import { credentials, startFakeS3, type FakeS3 } from '../helpers/fake-s3.ts';

const HOUR = 3600_000;
const OPTIONS: RegistryOptions = {
  deletes: true,
  maxManifestSize: 4 * 1024 * 1024,
  uploadPurgeAfter: 24 * HOUR,
};

/** Storage for one test, and a way to open a second driver over it (another instance). */
interface Backend {
  readonly storage: StorageDriver;
  reopen(): StorageDriver;
  cleanup(): Promise<void>;
}

let s3: FakeS3 | undefined;
after(async () => s3?.close());

const BACKENDS: Record<string, () => Promise<Backend>> = {
  filesystem: async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'berth-purge-'));
    return {
      storage: new FilesystemDriver({ root }),
      reopen: () => new FilesystemDriver({ root }),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  s3: async () => {
    s3 ??= await startFakeS3('multipart');
    const bucket = `purge-${randomUUID().slice(0, 13)}`;
    await s3.admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const options = { bucket, endpoint: s3.endpoint, forcePathStyle: true, credentials };
    return { storage: new S3Driver(options), reopen: () => new S3Driver(options), cleanup: async () => {} };
  },
};

async function uploadIds(storage: StorageDriver): Promise<string[]> {
  return (await collect(storage.listUploads())).map((u) => u.handle.id).sort();
}

/** An upload with `bytes` that no session references, as a crash leaves one. */
async function orphan(storage: StorageDriver, bytes: Buffer): Promise<UploadHandle> {
  const handle = await storage.createUpload();
  return (await storage.appendUpload(handle, 0, Readable.from([bytes]))).handle;
}

for (const [name, open] of Object.entries(BACKENDS)) {
  describe(`upload purge on ${name} storage`, () => {
    let backend: Backend;
    let metadata: KyselyMetadataStore;
    let uploads: UploadService;
    const closeLater: StorageDriver[] = [];

    beforeEach(async () => {
      backend = await open();
      metadata = createSqliteStore(':memory:');
      await metadata.migrate();
      uploads = new UploadService({ storage: backend.storage, metadata, options: OPTIONS });
    });
    afterEach(async () => {
      for (const d of closeLater.splice(0)) await d.close();
      await metadata.close();
      await backend.storage.close();
      await backend.cleanup();
    });

    /** Appends `bytes` to the session as a PATCH would. */
    function append(id: string, bytes: Buffer) {
      return uploads.append('team/app', id, null, { stream: Readable.from([bytes]) });
    }

    async function assertBlob(digest: string, bytes: Buffer): Promise<void> {
      assert.ok((await readAll(await backend.storage.read(blobKey(digest)))).equals(bytes));
    }

    it('removes upload bytes no session references once unmodified for the grace, and spares sessions', async () => {
      const data = randomBytes(3000);
      const live = await uploads.start('team/app', 'user:alice');
      await append(live.id, data.subarray(0, 1000));
      const crashed = await orphan(backend.storage, randomBytes(500));
      const untouched = await uploads.start('team/app', null); // a session with no bytes yet

      assert.deepEqual(await uploads.purgeStale(), { sessions: 0, orphans: 0 }, 'all within the grace');
      assert.equal((await uploadIds(backend.storage)).length, 3);

      const later = Date.now() + ORPHAN_GRACE_MS + 60_000;
      assert.deepEqual(await uploads.purgeStale(later), { sessions: 0, orphans: 1 });
      const left = await uploadIds(backend.storage);
      assert.deepEqual(left, [live.handle.id, untouched.handle.id].sort());
      assert.ok(!left.includes(crashed.id));

      // The sessions carry on as if nothing happened.
      await uploads.append('team/app', live.id, 'user:alice', {
        stream: Readable.from([data.subarray(1000)]),
      });
      const digest = digestOf(data);
      assert.equal((await uploads.complete('team/app', live.id, 'user:alice', digest, null)).size, 3000);
      await assertBlob(digest, data);
      await uploads.cancel('team/app', untouched.id, null);
      assert.deepEqual(await uploadIds(backend.storage), []);
    });

    it('never removes a monolithic upload this process is still writing, however old it looks', async () => {
      const data = randomBytes(200_000);
      const digest = digestOf(data);
      const body = new PassThrough();
      const done = uploads.uploadWhole('team/app', digest, { stream: body });
      body.write(data.subarray(0, 100_000));
      while ((await uploadIds(backend.storage)).length === 0) await sleep(5);

      const farFuture = Date.now() + 10 * ORPHAN_GRACE_MS;
      assert.deepEqual(await uploads.purgeStale(farFuture), { sessions: 0, orphans: 0 });
      body.end(data.subarray(100_000));
      assert.equal((await done).size, data.length);
      await assertBlob(digest, data);
      assert.deepEqual(await uploadIds(backend.storage), []);
    });

    it('purges a stale session: its bytes and its row', async () => {
      const stale = await uploads.start('team/app', 'robot:robot$ci');
      await append(stale.id, randomBytes(100));
      const later = Date.now() + OPTIONS.uploadPurgeAfter + 60_000;
      assert.deepEqual(await uploads.purgeStale(later), { sessions: 1, orphans: 0 });
      assert.equal(await metadata.getUploadSession(stale.id), null);
      assert.deepEqual(await uploadIds(backend.storage), []);
      await assert.rejects(append(stale.id, randomBytes(1)), { code: 'BLOB_UPLOAD_UNKNOWN' });
    });

    it('spares a session updated since the cutoff', async () => {
      const session = await uploads.start('team/app', null);
      const cutoffNow = Date.now() + OPTIONS.uploadPurgeAfter - 60_000;
      assert.deepEqual(await uploads.purgeStale(cutoffNow), { sessions: 0, orphans: 0 });
      assert.ok(await metadata.getUploadSession(session.id));
      await uploads.cancel('team/app', session.id, null);
    });

    it('two instances purging at once remove every orphan and spare every session', async () => {
      const storage2 = backend.reopen();
      closeLater.push(storage2);
      const other = new UploadService({ storage: storage2, metadata, options: OPTIONS });
      const sessions = [await uploads.start('team/app', null), await other.start('team/app', null)];
      await append(sessions[0]!.id, randomBytes(10));
      const orphans = [];
      for (let i = 0; i < 6; i++) orphans.push(await orphan(backend.storage, randomBytes(10 + i)));

      const later = Date.now() + ORPHAN_GRACE_MS + 60_000;
      const results = await Promise.all([uploads.purgeStale(later), other.purgeStale(later)]);
      for (const r of results) assert.equal(r.sessions, 0);
      assert.ok(results[0].orphans + results[1].orphans >= orphans.length);
      assert.deepEqual(await uploadIds(backend.storage), sessions.map((s) => s.handle.id).sort());
      for (const s of sessions) await uploads.cancel('team/app', s.id, null);
    });
  });
}

describe('the upload purge job', () => {
  let root: string;
  let metadata: KyselyMetadataStore;
  let storage: FilesystemDriver;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'berth-purge-job-'));
    storage = new FilesystemDriver({ root });
    metadata = createSqliteStore(':memory:');
    await metadata.migrate();
  });
  after(async () => {
    await metadata.close();
    await storage.close();
    await rm(root, { recursive: true, force: true });
  });

  it('runs its first round soon after start even when the current slot already fired, and logs through Logger', async () => {
    const uploads = new UploadService({ storage, metadata, options: OPTIONS });
    const crashed = await orphan(storage, randomBytes(64));
    // Left by a process that died an hour ago, after the current slot's purge had already been enqueued.
    const anHourAgo = new Date(Date.now() - HOUR);
    await utimes(path.join(root, '_uploads', crashed.id, 'data'), anHourAgo, anHourAgo);
    const jobs = metadata.jobStore();
    const now = Date.now();
    const slot = await jobs.enqueue({
      queue: UPLOAD_PURGE_QUEUE,
      payload: null,
      dedupeKey: slotKey(UPLOAD_PURGE_QUEUE, Math.floor(now / HOUR) * HOUR),
      runAt: now,
      maxAttempts: 3,
      now,
    });
    assert.notEqual(slot, null);
    await jobs.cancel(slot as number, now);

    const lines: { fields: object; message: string | undefined }[] = [];
    const log: Logger = {
      debug: () => undefined,
      info: (fields, message) => lines.push({ fields, message }),
      warn: (fields, message) => lines.push({ fields, message }),
      error: (fields, message) => lines.push({ fields, message }),
    };
    const runner = new JobRunner(jobs, { pollIntervalMs: 20 });
    await scheduleUploadPurge(runner, uploads, HOUR, log);
    runner.start();
    try {
      const deadline = Date.now() + 10_000;
      while (lines.length === 0 && Date.now() < deadline) await sleep(10);
    } finally {
      await runner.stop();
    }
    assert.deepEqual(lines, [{ fields: { sessions: 0, orphans: 1 }, message: 'purged stale uploads' }]);
    assert.deepEqual(await uploadIds(storage), []);
    const done = await jobs.list({ queue: UPLOAD_PURGE_QUEUE, state: 'succeeded', limit: 10 });
    assert.deepEqual(
      done.items.map((j) => j.dedupeKey),
      [`startup:${runner.instanceId}`],
    );
  });
});
