/** `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`: headers, ranges, visibility per repository, deletes. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blobKey } from '../../src/storage/paths.ts';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  randomBlob,
  sha256,
  type TestRegistry,
} from '../helpers/app.ts';

describe('blobs', () => {
  let reg: TestRegistry;
  const repo = 'blobs/app';
  const bytes = Buffer.from('0123456789');
  let digest: string;

  before(async () => {
    reg = await createTestRegistry();
    digest = await reg.pushBlob(repo, bytes);
  });
  after(async () => {
    await reg.dispose();
  });

  it('GET returns the bytes with Docker-Content-Digest, Content-Length and Accept-Ranges', async () => {
    const res = await reg.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, bytes);
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.headers['content-length'], '10');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assertApiVersion(res);
  });

  it('HEAD has the same headers, the true Content-Length and an empty body', async () => {
    const res = await reg.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.headers['content-length'], '10');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assertApiVersion(res);
  });

  describe('Range', () => {
    const cases: [string, number, number, string][] = [
      ['bytes=0-0', 0, 0, '0'],
      ['bytes=2-', 2, 9, '23456789'],
      ['bytes=-3', 7, 9, '789'],
      ['bytes=3-5', 3, 5, '345'],
      ['bytes=5-100', 5, 9, '56789'],
      ['bytes=-100', 0, 9, '0123456789'],
      ['bytes=9-9', 9, 9, '9'],
    ];
    for (const [header, start, end, body] of cases) {
      it(`${header} gives 206 with Content-Range bytes ${start}-${end}/10`, async () => {
        const res = await reg.inject({
          method: 'GET',
          url: `/v2/${repo}/blobs/${digest}`,
          headers: { range: header },
        });
        assert.equal(res.statusCode, 206);
        assert.equal(res.body, body);
        assert.equal(res.headers['content-range'], `bytes ${start}-${end}/10`);
        assert.equal(res.headers['content-length'], String(end - start + 1));
        assert.equal(res.headers['docker-content-digest'], digest);
        assertApiVersion(res);
      });
    }

    it('HEAD with a Range answers 206 with the range headers and no body', async () => {
      const res = await reg.inject({
        method: 'HEAD',
        url: `/v2/${repo}/blobs/${digest}`,
        headers: { range: 'bytes=2-' },
      });
      assert.equal(res.statusCode, 206);
      assert.equal(res.body, '');
      assert.equal(res.headers['content-range'], 'bytes 2-9/10');
      assert.equal(res.headers['content-length'], '8');
    });

    for (const header of [
      'bytes=10-',
      'bytes=10-20',
      'bytes=5-2',
      'bytes=-0',
      'bytes=abc',
      'items=0-1',
      'bytes=',
      'bytes=-',
    ]) {
      it(`${header} gives 416 with Content-Range: bytes */10`, async () => {
        const res = await reg.inject({
          method: 'GET',
          url: `/v2/${repo}/blobs/${digest}`,
          headers: { range: header },
        });
        assert.equal(res.statusCode, 416, res.body);
        assert.equal(res.headers['content-range'], 'bytes */10');
        assertApiVersion(res);
        assert.ok((JSON.parse(res.body) as { errors: unknown[] }).errors.length > 0);
      });
    }

    it('several ranges are ignored: 200 with the whole blob', async () => {
      const res = await reg.inject({
        method: 'GET',
        url: `/v2/${repo}/blobs/${digest}`,
        headers: { range: 'bytes=0-1,4-5' },
      });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.rawPayload, bytes);
    });
  });

  describe('the zero-byte blob', () => {
    const empty = Buffer.alloc(0);
    const emptyDigest = sha256(empty);
    before(async () => {
      await reg.pushBlob('blobs/empty', empty);
    });

    it('GET answers 200 with Content-Length 0 and an empty body', async () => {
      const res = await reg.inject({ method: 'GET', url: `/v2/blobs/empty/blobs/${emptyDigest}` });
      assert.equal(res.statusCode, 200);
      assert.equal(res.rawPayload.length, 0);
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.headers['docker-content-digest'], emptyDigest);
    });

    it('HEAD answers 200 with Content-Length 0', async () => {
      const res = await reg.inject({ method: 'HEAD', url: `/v2/blobs/empty/blobs/${emptyDigest}` });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-length'], '0');
    });

    it('any Range on it is unsatisfiable: 416 bytes */0', async () => {
      for (const range of ['bytes=0-0', 'bytes=-1', 'bytes=0-']) {
        const res = await reg.inject({
          method: 'GET',
          url: `/v2/blobs/empty/blobs/${emptyDigest}`,
          headers: { range },
        });
        assert.equal(res.statusCode, 416, range);
        assert.equal(res.headers['content-range'], 'bytes */0');
      }
    });
  });

  it('an unknown blob answers 404 BLOB_UNKNOWN for GET, HEAD and DELETE', async () => {
    const unknown = sha256('never pushed');
    assertError(
      await reg.inject({ method: 'GET', url: `/v2/${repo}/blobs/${unknown}` }),
      404,
      'BLOB_UNKNOWN',
    );
    assertError(
      await reg.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${unknown}` }),
      404,
      'BLOB_UNKNOWN',
    );
    assertError(
      await reg.inject({ method: 'DELETE', url: `/v2/${repo}/blobs/${unknown}` }),
      404,
      'BLOB_UNKNOWN',
    );
  });

  it('a blob is visible only in the repositories it was pushed or mounted into', async () => {
    const own = randomBlob(32);
    const d = await reg.pushBlob('visible/one', own);
    assert.equal((await reg.inject({ method: 'GET', url: `/v2/visible/one/blobs/${d}` })).statusCode, 200);
    assertError(await reg.inject({ method: 'GET', url: `/v2/visible/two/blobs/${d}` }), 404, 'BLOB_UNKNOWN');
    assertError(await reg.inject({ method: 'HEAD', url: `/v2/visible/two/blobs/${d}` }), 404, 'BLOB_UNKNOWN');
    assertError(
      await reg.inject({ method: 'DELETE', url: `/v2/visible/two/blobs/${d}` }),
      404,
      'BLOB_UNKNOWN',
    );
    // A prefix of the name is another repository.
    assertError(await reg.inject({ method: 'GET', url: `/v2/visible/blobs/${d}` }), 404, 'BLOB_UNKNOWN');

    const mount = await reg.inject({
      method: 'POST',
      url: `/v2/visible/two/blobs/uploads/?mount=${d}&from=visible/one`,
    });
    assert.equal(mount.statusCode, 201);
    const res = await reg.inject({ method: 'GET', url: `/v2/visible/two/blobs/${d}` });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, own);
  });

  it('DELETE answers 202, then the blob is 404 BLOB_UNKNOWN in that repository only', async () => {
    const b = randomBlob(16);
    const d = await reg.pushBlob('del/one', b);
    await reg.pushBlob('del/two', b);
    const del = await reg.inject({ method: 'DELETE', url: `/v2/del/one/blobs/${d}` });
    assert.equal(del.statusCode, 202);
    assertApiVersion(del);
    assertError(await reg.inject({ method: 'GET', url: `/v2/del/one/blobs/${d}` }), 404, 'BLOB_UNKNOWN');
    assertError(await reg.inject({ method: 'HEAD', url: `/v2/del/one/blobs/${d}` }), 404, 'BLOB_UNKNOWN');
    assertError(await reg.inject({ method: 'DELETE', url: `/v2/del/one/blobs/${d}` }), 404, 'BLOB_UNKNOWN');
    const other = await reg.inject({ method: 'GET', url: `/v2/del/two/blobs/${d}` });
    assert.equal(other.statusCode, 200);
    assert.deepEqual(other.rawPayload, b);
  });

  it('a deleted blob can be pushed again', async () => {
    const b = randomBlob(16);
    const d = await reg.pushBlob('del/again', b);
    assert.equal((await reg.inject({ method: 'DELETE', url: `/v2/del/again/blobs/${d}` })).statusCode, 202);
    await reg.pushBlob('del/again', b);
    const res = await reg.inject({ method: 'GET', url: `/v2/del/again/blobs/${d}` });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, b);
  });

  it('a blob whose bytes are missing from storage: GET 404 BLOB_UNKNOWN without the blob headers', async () => {
    const d = await reg.pushBlob('blobs/lost', randomBlob(32));
    assert.equal(await reg.services.storage.delete(blobKey(d)), true);
    for (const range of [undefined, 'bytes=0-3']) {
      const res = await reg.inject({
        method: 'GET',
        url: `/v2/blobs/lost/blobs/${d}`,
        headers: range ? { range } : {},
      });
      assertError(res, 404, 'BLOB_UNKNOWN');
      assert.equal(res.headers['docker-content-digest'], undefined);
      assert.equal(res.headers['content-range'], undefined);
      assert.equal(res.headers['accept-ranges'], undefined);
      assert.equal(res.headers.etag, undefined);
      assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)));
    }
    // HEAD must not promise it either: clients skip uploading a blob that HEAD reports present.
    const head = await reg.inject({ method: 'HEAD', url: `/v2/blobs/lost/blobs/${d}` });
    assert.equal(head.statusCode, 404);
    assert.equal(head.headers['docker-content-digest'], undefined);
  });

  it('a sha512 blob is served under its sha512 digest', async () => {
    const b = randomBlob(100);
    const d = await reg.pushBlob('blobs/sha512', b, 'sha512');
    assert.match(d, /^sha512:[a-f0-9]{128}$/);
    const res = await reg.inject({ method: 'GET', url: `/v2/blobs/sha512/blobs/${d}` });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, b);
    assert.equal(res.headers['docker-content-digest'], d);
  });
});

describe('blob deletes disabled', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'registry.deletes': false });
  });
  after(async () => {
    await reg.dispose();
  });

  it('DELETE answers 405 UNSUPPORTED and the blob stays', async () => {
    const d = await reg.pushBlob('nodelete', randomBlob(8));
    assertError(await reg.inject({ method: 'DELETE', url: `/v2/nodelete/blobs/${d}` }), 405, 'UNSUPPORTED');
    assert.equal((await reg.inject({ method: 'HEAD', url: `/v2/nodelete/blobs/${d}` })).statusCode, 200);
  });
});
