/**
 * Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, mount), `PATCH` (streamed and
 * chunked), `PUT ?digest=`, `GET` status, `DELETE` cancel, sessions across a restart, sha512, large blobs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  randomBlob,
  sha256,
  sha512,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The path (and query) of an absolute `Location`, as a client reuses it. */
function pathOf(location: string | string[] | number | undefined): string {
  assert.equal(typeof location, 'string', 'a Location header');
  const u = new URL(location as string, 'http://base.invalid');
  return `${u.pathname}${u.search}`;
}

/** Appends `?digest=` (or `&digest=`) to a location path. */
function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

describe('blob uploads', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  async function start(repo: string): Promise<string> {
    const res = await reg.inject({
      method: 'POST',
      url: `/v2/${repo}/blobs/uploads/`,
      headers: { 'content-length': '0' },
    });
    assert.equal(res.statusCode, 202, res.body);
    return pathOf(res.headers.location);
  }

  async function patch(location: string, chunk: Buffer, range?: string): Promise<Response> {
    return reg.inject({
      method: 'PATCH',
      url: location,
      headers: { 'content-type': 'application/octet-stream', ...(range ? { 'content-range': range } : {}) },
      payload: chunk,
    });
  }

  async function getBlob(repo: string, digest: string): Promise<Buffer> {
    const res = await reg.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` });
    assert.equal(res.statusCode, 200, res.body);
    return res.rawPayload;
  }

  async function uploadsInStorage(): Promise<string[]> {
    const ids: string[] = [];
    for await (const u of reg.services.storage.listUploads()) ids.push(u.handle.id);
    return ids.sort();
  }

  async function assertNoBlob(repo: string, digest: string): Promise<void> {
    assertError(
      await reg.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` }),
      404,
      'BLOB_UNKNOWN',
    );
  }

  describe('POST', () => {
    it('starts a session: 202, an absolute Location with the session id, Range 0-0, Docker-Upload-UUID', async () => {
      const res = await reg.inject({
        method: 'POST',
        url: '/v2/up/start/blobs/uploads/',
        headers: { host: 'registry.test:5000', 'content-length': '0' },
      });
      assert.equal(res.statusCode, 202);
      assertApiVersion(res);
      const uuid = res.headers['docker-upload-uuid'] as string;
      assert.match(uuid, UUID_RE);
      assert.equal(res.headers.location, `http://registry.test:5000/v2/up/start/blobs/uploads/${uuid}`);
      assert.equal(res.headers.range, '0-0');
    });

    it('accepts the start URL without its trailing slash', async () => {
      const res = await reg.inject({ method: 'POST', url: '/v2/up/noslash/blobs/uploads' });
      assert.equal(res.statusCode, 202);
      assert.match(String(res.headers.location), /\/v2\/up\/noslash\/blobs\/uploads\/[0-9a-f-]{36}$/);
    });

    it('each POST opens a distinct session', async () => {
      const a = await start('up/distinct');
      const b = await start('up/distinct');
      assert.notEqual(a, b);
    });

    it('monolithic POST ?digest= stores the blob: 201 with Location and Docker-Content-Digest', async () => {
      const bytes = randomBlob(1000);
      const digest = sha256(bytes);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/up/mono/blobs/uploads/?digest=${digest}`,
        headers: { host: 'registry.test', 'content-type': 'application/octet-stream' },
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      assertApiVersion(res);
      assert.equal(res.headers.location, `http://registry.test/v2/up/mono/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('up/mono', digest), bytes);
    });

    it('monolithic POST treats the body as bytes whatever its Content-Type', async () => {
      const bytes = Buffer.from('{"looks":"like json"}');
      const digest = sha256(bytes);
      for (const type of ['application/json', 'application/x-www-form-urlencoded', 'text/plain']) {
        const res = await reg.inject({
          method: 'POST',
          url: `/v2/up/ctype/blobs/uploads/?digest=${digest}`,
          headers: { 'content-type': type },
          payload: bytes,
        });
        assert.equal(res.statusCode, 201, `${type}: ${res.body}`);
      }
      assert.deepEqual(await getBlob('up/ctype', digest), bytes);
    });

    it('monolithic POST with a wrong digest: 400 DIGEST_INVALID and nothing stored', async () => {
      const bytes = randomBlob(100);
      const claimed = sha256('something else');
      const uploadsBefore = await uploadsInStorage();
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/up/wrong/blobs/uploads/?digest=${claimed}`,
        payload: bytes,
      });
      assertError(res, 400, 'DIGEST_INVALID');
      await assertNoBlob('up/wrong', claimed);
      await assertNoBlob('up/wrong', sha256(bytes));
      assert.deepEqual(await uploadsInStorage(), uploadsBefore, 'no upload bytes are left behind');
    });

    it('monolithic POST whose body disagrees with its Content-Length: 400 SIZE_INVALID, nothing stored', async () => {
      const bytes = randomBlob(10);
      const digest = sha256(bytes);
      for (const length of ['5', '20']) {
        const res = await reg.inject({
          method: 'POST',
          url: `/v2/up/length/blobs/uploads/?digest=${digest}`,
          headers: { 'content-length': length },
          payload: bytes,
        });
        assertError(res, 400, 'SIZE_INVALID');
      }
      await assertNoBlob('up/length', digest);
    });

    it('monolithic POST with a malformed digest: 400 DIGEST_INVALID', async () => {
      const res = await reg.inject({
        method: 'POST',
        url: '/v2/up/wrong/blobs/uploads/?digest=sha256:abc',
        payload: 'x',
      });
      assertError(res, 400, 'DIGEST_INVALID');
    });

    it('monolithic POST of a zero-byte blob', async () => {
      const digest = sha256(Buffer.alloc(0));
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/up/zero-mono/blobs/uploads/?digest=${digest}`,
        headers: { 'content-length': '0' },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal((await getBlob('up/zero-mono', digest)).length, 0);
    });

    it('monolithic POST of a sha512 blob', async () => {
      const bytes = randomBlob(3000);
      const digest = sha512(bytes);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/up/s512/blobs/uploads/?digest=${digest}`,
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('up/s512', digest), bytes);
    });

    it('a body without ?digest= is refused', async () => {
      const res = await reg.inject({ method: 'POST', url: '/v2/up/nodigest/blobs/uploads/', payload: 'abc' });
      assertError(res, 400, 'BLOB_UPLOAD_INVALID');
    });
  });

  describe('mount', () => {
    it('?mount=&from= answers 201 with Location and Docker-Content-Digest when the blob is in `from`', async () => {
      const bytes = randomBlob(50);
      const digest = await reg.pushBlob('mount/src', bytes);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`,
        headers: { host: 'registry.test' },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers.location, `http://registry.test/v2/mount/dst/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('mount/dst', digest), bytes);
    });

    it('falls back to a 202 upload session when the blob is not in `from`', async () => {
      const bytes = randomBlob(50);
      const digest = await reg.pushBlob('mount/elsewhere', bytes);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/mount/dst2/blobs/uploads/?mount=${digest}&from=mount/empty`,
      });
      assert.equal(res.statusCode, 202, res.body);
      assert.match(String(res.headers['docker-upload-uuid']), UUID_RE);
      assert.equal(res.headers.range, '0-0');
      await assertNoBlob('mount/dst2', digest);
      // The fallback session works as any other.
      const put = await reg.inject({
        method: 'PUT',
        url: withDigest(pathOf(res.headers.location), digest),
        payload: bytes,
      });
      assert.equal(put.statusCode, 201, put.body);
      assert.deepEqual(await getBlob('mount/dst2', digest), bytes);
    });

    it('falls back to 202 for an unknown digest and for a malformed `from`', async () => {
      const unknown = sha256('never pushed anywhere');
      const a = await reg.inject({
        method: 'POST',
        url: `/v2/mount/dst3/blobs/uploads/?mount=${unknown}&from=mount/src`,
      });
      assert.equal(a.statusCode, 202);
      const b = await reg.inject({
        method: 'POST',
        url: `/v2/mount/dst3/blobs/uploads/?mount=${unknown}&from=Bad..Name`,
      });
      assert.equal(b.statusCode, 202);
    });

    it('a malformed mount digest answers 400 DIGEST_INVALID', async () => {
      const res = await reg.inject({
        method: 'POST',
        url: '/v2/mount/dst4/blobs/uploads/?mount=sha256:xyz&from=mount/src',
      });
      assertError(res, 400, 'DIGEST_INVALID');
    });
  });

  describe('streamed PATCH (no Content-Range)', () => {
    it('appends the body and answers 202 with Location, Range and Docker-Upload-UUID; PUT completes', async () => {
      const bytes = randomBlob(5000);
      const digest = sha256(bytes);
      const location = await start('stream/app');
      const uuid = location.split('/').pop() as string;
      const res = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
        payload: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
      });
      assert.equal(res.statusCode, 202, res.body);
      assertApiVersion(res);
      assert.equal(res.headers.range, '0-4999');
      assert.equal(res.headers['docker-upload-uuid'], uuid);
      assert.equal(pathOf(res.headers.location), location);
      const put = await reg.inject({ method: 'PUT', url: withDigest(pathOf(res.headers.location), digest) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(put.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('stream/app', digest), bytes);
    });

    it('several streamed PATCHes append in order', async () => {
      const parts = [randomBlob(10), randomBlob(20), randomBlob(30)];
      const all = Buffer.concat(parts);
      let location = await start('stream/multi');
      let end = -1;
      for (const p of parts) {
        const res = await patch(location, p);
        assert.equal(res.statusCode, 202);
        end += p.length;
        assert.equal(res.headers.range, `0-${end}`);
        location = pathOf(res.headers.location);
      }
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, sha256(all)) });
      assert.equal(put.statusCode, 201, put.body);
      assert.deepEqual(await getBlob('stream/multi', sha256(all)), all);
    });
  });

  describe('chunked PATCH (Content-Range)', () => {
    it('accepts 0-4 then 5-9 and completes with PUT', async () => {
      const bytes = Buffer.from('abcdefghij');
      const digest = sha256(bytes);
      const location = await start('chunk/app');
      const first = await patch(location, bytes.subarray(0, 5), '0-4');
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(first.headers.range, '0-4');
      const second = await patch(pathOf(first.headers.location), bytes.subarray(5), '5-9');
      assert.equal(second.statusCode, 202, second.body);
      assert.equal(second.headers.range, '0-9');
      const status = await reg.inject({ method: 'GET', url: pathOf(second.headers.location) });
      assert.equal(status.statusCode, 204);
      assert.equal(status.headers.range, '0-9');
      const put = await reg.inject({
        method: 'PUT',
        url: withDigest(pathOf(second.headers.location), digest),
      });
      assert.equal(put.statusCode, 201, put.body);
      assert.deepEqual(await getBlob('chunk/app', digest), bytes);
    });

    it('an out-of-order chunk answers 416 with the current Range, and the upload continues', async () => {
      const bytes = Buffer.from('abcdefghij');
      const location = await start('chunk/order');
      assert.equal((await patch(location, bytes.subarray(0, 5), '0-4')).statusCode, 202);
      for (const [range, chunk] of [
        ['6-9', bytes.subarray(6)],
        ['0-4', bytes.subarray(0, 5)],
        ['3-7', bytes.subarray(3, 8)],
      ] as const) {
        const res = await patch(location, chunk, range);
        assert.equal(res.statusCode, 416, `${range}: ${res.body}`);
        assert.equal(res.headers.range, '0-4');
        assertApiVersion(res);
      }
      const status = await reg.inject({ method: 'GET', url: location });
      assert.equal(status.headers.range, '0-4');
      assert.equal((await patch(location, bytes.subarray(5), '5-9')).statusCode, 202);
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, sha256(bytes)) });
      assert.equal(put.statusCode, 201, put.body);
      assert.deepEqual(await getBlob('chunk/order', sha256(bytes)), bytes);
    });

    it('a first chunk that does not start at 0 answers 416 with Range 0-0', async () => {
      const location = await start('chunk/first');
      const res = await patch(location, Buffer.from('abc'), '1-3');
      assert.equal(res.statusCode, 416);
      assert.equal(res.headers.range, '0-0');
    });

    it('Content-Length disagreeing with Content-Range answers 400 SIZE_INVALID and stores nothing', async () => {
      const location = await start('chunk/size');
      const res = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '0-9', 'content-type': 'application/octet-stream' },
        payload: Buffer.from('abcde'),
      });
      assertError(res, 400, 'SIZE_INVALID');
      const status = await reg.inject({ method: 'GET', url: location });
      assert.equal(status.statusCode, 204);
      assert.equal(status.headers.range, '0-0');
      // A body longer than its range is refused as well.
      const longer = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '0-1' },
        payload: Buffer.from('abcde'),
      });
      assertError(longer, 400, 'SIZE_INVALID');
      assert.equal((await reg.inject({ method: 'GET', url: location })).headers.range, '0-0');
      // The session is still usable.
      assert.equal((await patch(location, Buffer.from('abcde'), '0-4')).statusCode, 202);
    });

    it('a streamed chunk longer than its Content-Range: 400 SIZE_INVALID, the upload stays where it was', async () => {
      // No Content-Length (chunked transfer encoding): the excess is only seen while the body streams in.
      const location = await start('chunk/overflow');
      assert.equal((await patch(location, Buffer.from('abc'), '0-2')).statusCode, 202);
      for (const [range, size] of [
        ['3-4', 20],
        ['3-4', 3 * 1024 * 1024],
      ] as const) {
        const res = await reg.inject({
          method: 'PATCH',
          url: location,
          headers: { 'content-range': range, 'transfer-encoding': 'chunked' },
          payload: Readable.from([randomBlob(size)]),
        });
        assertError(res, 400, 'SIZE_INVALID');
      }
      // Shorter than announced is refused too.
      const short = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '3-9', 'transfer-encoding': 'chunked' },
        payload: Readable.from([Buffer.from('de')]),
      });
      assertError(short, 400, 'SIZE_INVALID');
      assert.equal((await reg.inject({ method: 'GET', url: location })).headers.range, '0-2');
      assert.equal((await patch(location, Buffer.from('de'), '3-4')).statusCode, 202);
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, sha256('abcde')) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal((await getBlob('chunk/overflow', sha256('abcde'))).toString(), 'abcde');
    });

    it('a malformed Content-Range is refused and changes nothing', async () => {
      const location = await start('chunk/malformed');
      for (const range of ['abc', '5-2', '-4']) {
        const res = await patch(location, Buffer.from('abcde'), range);
        assert.ok(res.statusCode === 400 || res.statusCode === 416, `${range}: ${res.statusCode}`);
        assertApiVersion(res);
      }
      const status = await reg.inject({ method: 'GET', url: location });
      assert.equal(status.headers.range, '0-0');
    });

    it('chunked sha512 upload', async () => {
      const bytes = randomBlob(4096);
      const digest = sha512(bytes);
      const location = await start('chunk/sha512');
      assert.equal((await patch(location, bytes.subarray(0, 1000), '0-999')).statusCode, 202);
      assert.equal((await patch(location, bytes.subarray(1000, 3000), '1000-2999')).statusCode, 202);
      const put = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { 'content-range': '3000-4095', 'content-type': 'application/octet-stream' },
        payload: bytes.subarray(3000),
      });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(put.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('chunk/sha512', digest), bytes);
    });

    it('a 5 MiB blob in 1 MiB chunks round-trips exactly', async () => {
      const MiB = 1024 * 1024;
      const bytes = randomBlob(5 * MiB);
      const digest = sha256(bytes);
      let location = await start('chunk/big');
      for (let offset = 0; offset < bytes.length; offset += MiB) {
        const res = await patch(
          location,
          bytes.subarray(offset, offset + MiB),
          `${offset}-${offset + MiB - 1}`,
        );
        assert.equal(res.statusCode, 202, res.body);
        assert.equal(res.headers.range, `0-${offset + MiB - 1}`);
        location = pathOf(res.headers.location);
      }
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, digest) });
      assert.equal(put.statusCode, 201, put.body);
      const res = await reg.inject({ method: 'GET', url: `/v2/chunk/big/blobs/${digest}` });
      assert.equal(res.headers['content-length'], String(5 * MiB));
      assert.ok(res.rawPayload.equals(bytes), 'the blob reads back byte for byte');
      assert.equal(sha256(res.rawPayload), digest);
    });
  });

  describe('PUT', () => {
    it('with the whole blob as its body (POST then PUT): 201 with Location and Docker-Content-Digest', async () => {
      const bytes = randomBlob(300);
      const digest = sha256(bytes);
      const location = await start('put/mono');
      const res = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { host: 'registry.test', 'content-type': 'application/octet-stream' },
        payload: bytes,
      });
      assert.equal(res.statusCode, 201, res.body);
      assertApiVersion(res);
      assert.equal(res.headers.location, `http://registry.test/v2/put/mono/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('put/mono', digest), bytes);
    });

    it('with a last chunk after PATCHes', async () => {
      const bytes = randomBlob(300);
      const digest = sha256(bytes);
      const location = await start('put/last');
      assert.equal((await patch(location, bytes.subarray(0, 100))).statusCode, 202);
      const res = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        payload: bytes.subarray(100),
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(pathOf(res.headers.location), `/v2/put/last/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('put/last', digest), bytes);
    });

    it('with a streamed (chunked transfer encoding) last chunk', async () => {
      const bytes = randomBlob(300);
      const digest = sha256(bytes);
      const location = await start('put/stream');
      const res = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' },
        payload: Readable.from([bytes.subarray(0, 150), bytes.subarray(150)]),
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(await getBlob('put/stream', digest), bytes);
    });

    it('without a body after PATCHes: 201', async () => {
      const bytes = randomBlob(300);
      const digest = sha256(bytes);
      const location = await start('put/nobody');
      assert.equal((await patch(location, bytes)).statusCode, 202);
      const res = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { 'content-length': '0' },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(pathOf(res.headers.location), `/v2/put/nobody/blobs/${digest}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(await getBlob('put/nobody', digest), bytes);
    });

    it('the session is gone after completion: 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const bytes = randomBlob(30);
      const digest = sha256(bytes);
      const location = await start('put/gone');
      assert.equal(
        (await reg.inject({ method: 'PUT', url: withDigest(location, digest), payload: bytes })).statusCode,
        201,
      );
      assertError(await reg.inject({ method: 'GET', url: location }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(
        await reg.inject({ method: 'PATCH', url: location, payload: 'x' }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(
        await reg.inject({ method: 'PUT', url: withDigest(location, digest), payload: bytes }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
    });

    it('a wrong digest answers 400 DIGEST_INVALID and stores nothing', async () => {
      const bytes = randomBlob(300);
      const wrong = sha256('not these bytes');
      const location = await start('put/wrong');
      const res = await reg.inject({ method: 'PUT', url: withDigest(location, wrong), payload: bytes });
      assertError(res, 400, 'DIGEST_INVALID');
      await assertNoBlob('put/wrong', wrong);
      await assertNoBlob('put/wrong', sha256(bytes));
    });

    it('a wrong digest after PATCHes answers 400 DIGEST_INVALID', async () => {
      const bytes = randomBlob(300);
      const location = await start('put/wrong2');
      assert.equal((await patch(location, bytes)).statusCode, 202);
      const res = await reg.inject({ method: 'PUT', url: withDigest(location, sha256('nope')) });
      assertError(res, 400, 'DIGEST_INVALID');
      await assertNoBlob('put/wrong2', sha256(bytes));
    });

    it('without ?digest= answers 400 DIGEST_INVALID', async () => {
      const location = await start('put/missing');
      assertError(await reg.inject({ method: 'PUT', url: location, payload: 'abc' }), 400, 'DIGEST_INVALID');
      assertError(await reg.inject({ method: 'PUT', url: location }), 400, 'DIGEST_INVALID');
    });

    it('a malformed ?digest= answers 400 DIGEST_INVALID', async () => {
      const location = await start('put/malformed');
      for (const d of ['sha256:abc', `md5:${'a'.repeat(32)}`, `sha256:${'A'.repeat(64)}`]) {
        assertError(
          await reg.inject({ method: 'PUT', url: withDigest(location, d), payload: 'abc' }),
          400,
          'DIGEST_INVALID',
        );
      }
    });
  });

  describe('zero-byte blob upload', () => {
    const digest = sha256(Buffer.alloc(0));

    it('POST then PUT ?digest= without a body', async () => {
      const location = await start('zero/put');
      const res = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        headers: { 'content-length': '0' },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], digest);
      const blob = await reg.inject({ method: 'GET', url: `/v2/zero/put/blobs/${digest}` });
      assert.equal(blob.statusCode, 200);
      assert.equal(blob.headers['content-length'], '0');
    });

    it('an empty streamed PATCH keeps Range at 0-0, then PUT completes', async () => {
      const location = await start('zero/patch');
      const res = await patch(location, Buffer.alloc(0));
      assert.equal(res.statusCode, 202, res.body);
      assert.equal(res.headers.range, '0-0');
      const status = await reg.inject({ method: 'GET', url: location });
      assert.equal(status.statusCode, 204);
      assert.equal(status.headers.range, '0-0');
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, digest) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal((await getBlob('zero/patch', digest)).length, 0);
    });

    it('a sha512 zero-byte blob', async () => {
      const d512 = sha512(Buffer.alloc(0));
      const location = await start('zero/sha512');
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, d512) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(put.headers['docker-content-digest'], d512);
    });
  });

  describe('concurrent requests on one session', () => {
    it('two PATCHes racing for the same range: one 202, one 416, and the bytes are stored once', async () => {
      const location = await start('race/patch');
      const chunk = Buffer.from('abcde');
      const results = await Promise.all([patch(location, chunk, '0-4'), patch(location, chunk, '0-4')]);
      const codes = results.map((r) => r.statusCode).sort();
      assert.deepEqual(codes, [202, 416]);
      const loser = results.find((r) => r.statusCode === 416) as Response;
      assert.match(String(loser.headers.range), /^0-(0|4)$/);
      assert.equal((await reg.inject({ method: 'GET', url: location })).headers.range, '0-4');
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, sha256(chunk)) });
      assert.equal(put.statusCode, 201, put.body);
    });

    it('two PUTs racing to complete: exactly one 201', async () => {
      const bytes = randomBlob(100);
      const digest = sha256(bytes);
      const location = await start('race/put');
      assert.equal((await patch(location, bytes)).statusCode, 202);
      const results = await Promise.all([
        reg.inject({ method: 'PUT', url: withDigest(location, digest) }),
        reg.inject({ method: 'PUT', url: withDigest(location, digest) }),
      ]);
      assert.equal(
        results.filter((r) => r.statusCode === 201).length,
        1,
        results.map((r) => r.body).join(' '),
      );
      const other = results.find((r) => r.statusCode !== 201) as Response;
      assert.ok(other.statusCode === 404 || other.statusCode === 416, `${other.statusCode}`);
      assert.deepEqual(await getBlob('race/put', digest), bytes);
    });
  });

  describe('status and cancel', () => {
    it('GET answers 204 with Location, Range and Docker-Upload-UUID', async () => {
      const location = await start('status/app');
      assert.equal((await patch(location, Buffer.from('12345'), '0-4')).statusCode, 202);
      const res = await reg.inject({ method: 'GET', url: location });
      assert.equal(res.statusCode, 204);
      assertApiVersion(res);
      assert.equal(res.headers.range, '0-4');
      assert.equal(pathOf(res.headers.location), location);
      assert.equal(res.headers['docker-upload-uuid'], location.split('/').pop());
      assert.equal(res.body, '');
    });

    it('DELETE cancels: 204, then the session is 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const location = await start('cancel/app');
      assert.equal((await patch(location, Buffer.from('12345'))).statusCode, 202);
      const res = await reg.inject({ method: 'DELETE', url: location });
      assert.equal(res.statusCode, 204);
      assertApiVersion(res);
      assertError(await reg.inject({ method: 'GET', url: location }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(
        await reg.inject({ method: 'PATCH', url: location, payload: 'x' }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(
        await reg.inject({ method: 'PUT', url: withDigest(location, sha256('12345')) }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(await reg.inject({ method: 'DELETE', url: location }), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('unknown sessions', () => {
    const ids = [
      ['an unknown uuid', '0b0f2a5e-6a8e-4f0c-9a7d-2c8b1f3e4d5a'],
      ['a malformed id', 'not-a-uuid'],
      ['an uppercase uuid', '0B0F2A5E-6A8E-4F0C-9A7D-2C8B1F3E4D5A'],
      ['a path-like id', '..%2f..%2fetc'],
      ['a very long id', 'a'.repeat(2000)],
    ] as const;
    for (const [label, id] of ids) {
      it(`${label} answers 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE`, async () => {
        const url = `/v2/unknown/app/blobs/uploads/${id}`;
        assertError(await reg.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN');
        assertError(await reg.inject({ method: 'PATCH', url, payload: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
        assertError(
          await reg.inject({ method: 'PATCH', url, payload: 'abc', headers: { 'content-range': '0-2' } }),
          404,
          'BLOB_UPLOAD_UNKNOWN',
        );
        assertError(
          await reg.inject({ method: 'PUT', url: `${url}?digest=${sha256('abc')}`, payload: 'abc' }),
          404,
          'BLOB_UPLOAD_UNKNOWN',
        );
        assertError(await reg.inject({ method: 'PUT', url }), 404, 'BLOB_UPLOAD_UNKNOWN');
        assertError(await reg.inject({ method: 'DELETE', url }), 404, 'BLOB_UPLOAD_UNKNOWN');
      });
    }

    it('a session used under another repository is 404 BLOB_UPLOAD_UNKNOWN, and stays usable in its own', async () => {
      const bytes = Buffer.from('owned');
      const location = await start('owner/app');
      const foreign = location.replace('/v2/owner/app/', '/v2/owner/other/');
      assertError(await reg.inject({ method: 'GET', url: foreign }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(
        await reg.inject({ method: 'PATCH', url: foreign, payload: bytes }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(
        await reg.inject({ method: 'PUT', url: withDigest(foreign, sha256(bytes)), payload: bytes }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
      assertError(await reg.inject({ method: 'DELETE', url: foreign }), 404, 'BLOB_UPLOAD_UNKNOWN');
      await assertNoBlob('owner/other', sha256(bytes));
      const put = await reg.inject({
        method: 'PUT',
        url: withDigest(location, sha256(bytes)),
        payload: bytes,
      });
      assert.equal(put.statusCode, 201, put.body);
    });
  });
});

describe('upload sessions survive a restart', () => {
  it('a session started before the app is closed completes on a new app over the same data directory', async () => {
    let reg = await createTestRegistry();
    try {
      const bytes = randomBlob(10_000);
      const digest = sha256(bytes);
      const post = await reg.inject({ method: 'POST', url: '/v2/restart/app/blobs/uploads/' });
      assert.equal(post.statusCode, 202);
      const location = pathOf(post.headers.location);
      const first = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '0-3999' },
        payload: bytes.subarray(0, 4000),
      });
      assert.equal(first.statusCode, 202, first.body);

      reg = await reg.reopen();

      const status = await reg.inject({ method: 'GET', url: location });
      assert.equal(status.statusCode, 204, status.body);
      assert.equal(status.headers.range, '0-3999');
      const stale = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '0-3999' },
        payload: bytes.subarray(0, 4000),
      });
      assert.equal(stale.statusCode, 416);
      assert.equal(stale.headers.range, '0-3999');
      const second = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-range': '4000-7999' },
        payload: bytes.subarray(4000, 8000),
      });
      assert.equal(second.statusCode, 202, second.body);
      assert.equal(second.headers.range, '0-7999');

      reg = await reg.reopen();

      const put = await reg.inject({
        method: 'PUT',
        url: withDigest(location, digest),
        payload: bytes.subarray(8000),
      });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(put.headers['docker-content-digest'], digest);
      const res = await reg.inject({ method: 'GET', url: `/v2/restart/app/blobs/${digest}` });
      assert.ok(res.rawPayload.equals(bytes));
    } finally {
      await reg.dispose();
    }
  });

  it('a wrong digest after a restart is still DIGEST_INVALID (the upload is re-hashed from storage)', async () => {
    let reg = await createTestRegistry();
    try {
      const bytes = randomBlob(1000);
      const post = await reg.inject({ method: 'POST', url: '/v2/restart/wrong/blobs/uploads/' });
      const location = pathOf(post.headers.location);
      assert.equal((await reg.inject({ method: 'PATCH', url: location, payload: bytes })).statusCode, 202);
      reg = await reg.reopen();
      assertError(
        await reg.inject({ method: 'PUT', url: withDigest(location, sha256('other')) }),
        400,
        'DIGEST_INVALID',
      );
      const put = await reg.inject({ method: 'PUT', url: withDigest(location, sha512(bytes)) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal(put.headers['docker-content-digest'], sha512(bytes));
    } finally {
      await reg.dispose();
    }
  });
});
