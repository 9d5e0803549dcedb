import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';

describe('health endpoints', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'token' });
  });
  after(async () => reg.dispose());

  it('/healthz answers 200 without credentials', async () => {
    const res = await reg.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });

  it('/readyz answers 200 when storage and database answer and the disk has room', async () => {
    const res = await reg.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse(res.body), {
      status: 'ready',
      checks: { storage: 'ok', metadata: 'ok', disk: 'ok' },
    });
  });

  it('/readyz answers 503 naming the failed check when storage does not answer', async () => {
    const storage = reg.services.storage;
    const original = storage.ping.bind(storage);
    storage.ping = () => Promise.reject(new Error('bucket gone'));
    try {
      const res = await reg.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(JSON.parse(res.body), {
        status: 'unavailable',
        checks: { storage: 'failed', metadata: 'ok', disk: 'ok' },
      });
      assert.ok(!res.body.includes('bucket gone'), 'no internal detail leaks');
    } finally {
      storage.ping = original;
    }
  });

  it('/readyz answers 503 when the blob filesystem has less free space than storage.filesystem.minFree', async () => {
    // More than any disk here has: the check fails on real statfs figures.
    const other = await createTestRegistry({ 'storage.filesystem.minFree': 2 ** 52 });
    try {
      const res = await other.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(JSON.parse(res.body), {
        status: 'unavailable',
        checks: { storage: 'ok', metadata: 'ok', disk: 'failed' },
      });
    } finally {
      await other.dispose();
    }
  });

  it('/readyz has no disk check with S3 storage', async () => {
    const other = await createTestRegistry({
      'storage.driver': 's3',
      'storage.s3.bucket': 'never-contacted',
      'storage.s3.endpoint': 'http://127.0.0.1:9',
    });
    try {
      const res = await other.inject({ method: 'GET', url: '/readyz' });
      assert.deepEqual(Object.keys((JSON.parse(res.body) as { checks: object }).checks).sort(), [
        'metadata',
        'storage',
      ]);
    } finally {
      await other.dispose();
    }
  });

  it('/readyz answers 503 when the database is closed', async () => {
    const other = await createTestRegistry();
    try {
      await other.services.metadata.close();
      const res = await other.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.equal((JSON.parse(res.body) as { checks: Record<string, string> }).checks.metadata, 'failed');
    } finally {
      await other.app.close();
      await rm(other.dataDir, { recursive: true, force: true });
    }
  });

  it('/readyz answers 503 when the SQLite database file was removed under the running registry', async () => {
    const other = await createTestRegistry();
    try {
      await rm(path.join(other.dataDir, 'berth.db'));
      const res = await other.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.equal((JSON.parse(res.body) as { checks: Record<string, string> }).checks.metadata, 'failed');
    } finally {
      await other.dispose();
    }
  });
});
