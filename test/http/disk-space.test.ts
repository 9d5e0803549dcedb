/**
 * New uploads on a nearly full disk: below `storage.filesystem.minFree` free bytes, new sessions and monolithic
 * uploads are refused with 507 INSUFFICIENT_STORAGE, while sessions already open go on to completion and mounts
 * (which write no bytes) still work. The threshold is set above what any disk here has, so the real statfs
 * figures are below it; the session is opened first by the same registry restarted with the check off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertError,
  createTestRegistry,
  json,
  randomBlob,
  sha256,
  type TestRegistry,
} from '../helpers/app.ts';

describe('uploads below storage.filesystem.minFree', () => {
  let reg: TestRegistry;
  let location: string;
  let mounted: string;
  const data = randomBlob(3000);

  before(async () => {
    const roomy = await createTestRegistry({ 'storage.filesystem.minFree': 0 });
    const res = await roomy.inject({ method: 'POST', url: '/v2/full/app/blobs/uploads/' });
    assert.equal(res.statusCode, 202);
    location = new URL(String(res.headers.location)).pathname;
    mounted = await roomy.pushBlob('full/base', randomBlob(100));
    await roomy.close();
    reg = await createTestRegistry({ 'storage.filesystem.minFree': 2 ** 52 }, { dataDir: roomy.dataDir });
  });
  after(async () => reg.dispose());

  it('refuses a new session with 507 INSUFFICIENT_STORAGE and a message saying why', async () => {
    const res = await reg.inject({ method: 'POST', url: '/v2/full/app/blobs/uploads/' });
    assertError(res, 507, 'INSUFFICIENT_STORAGE');
    assert.match(
      json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '',
      /storage is nearly full/,
    );
  });

  it('refuses a monolithic upload, and a failed mount that would fall back to a session', async () => {
    const bytes = randomBlob(64);
    assertError(
      await reg.inject({
        method: 'POST',
        url: `/v2/full/app/blobs/uploads/?digest=${sha256(bytes)}`,
        payload: bytes,
      }),
      507,
      'INSUFFICIENT_STORAGE',
    );
    assertError(
      await reg.inject({
        method: 'POST',
        url: `/v2/full/app/blobs/uploads/?mount=${sha256(bytes)}&from=full/base`,
      }),
      507,
      'INSUFFICIENT_STORAGE',
    );
  });

  it('still mounts a blob that is there (no bytes are written)', async () => {
    const res = await reg.inject({
      method: 'POST',
      url: `/v2/full/app/blobs/uploads/?mount=${mounted}&from=full/base`,
    });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('lets a session opened before go on to completion', async () => {
    let res = await reg.inject({
      method: 'PATCH',
      url: location,
      headers: { 'content-range': '0-999' },
      payload: data.subarray(0, 1000),
    });
    assert.equal(res.statusCode, 202, res.body);
    res = await reg.inject({
      method: 'PUT',
      url: `${new URL(String(res.headers.location)).pathname}?digest=${sha256(data)}`,
      payload: data.subarray(1000),
    });
    assert.equal(res.statusCode, 201, res.body);
    res = await reg.inject({ method: 'GET', url: `/v2/full/app/blobs/${sha256(data)}` });
    assert.ok(res.rawPayload.equals(data));
  });
});
