/**
 * Upload sessions are bound to the principal that started them when access control is on: another principal,
 * even one allowed to push to the repository, gets exactly the answer an unknown session gets (404
 * BLOB_UPLOAD_UNKNOWN), whatever it tries (status, chunk, completion, cancel). Sessions without an owner (open
 * mode, or started before owners were recorded) stay usable by anyone allowed to push.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertError, createTestRegistry, sha256, type Response, type TestRegistry } from '../helpers/app.ts';
import { addNamespace, addRobot, addUser, basic, bearer, getToken, type Headers } from '../helpers/auth.ts';

const REPO = 'team/app';

/** The path (and query) of an absolute `Location`. */
function pathOf(location: string | string[] | number | undefined): string {
  assert.equal(typeof location, 'string', 'a Location header');
  const u = new URL(location as string, 'http://base.invalid');
  return `${u.pathname}${u.search}`;
}

/** The parts of an answer a client could use to tell two sessions apart (the id itself replaced). */
function shape(res: Response, id: string): unknown {
  return {
    status: res.statusCode,
    contentType: res.headers['content-type'],
    location: res.headers.location,
    range: res.headers.range,
    body: res.body.split(id).join('<id>'),
  };
}

for (const mode of ['basic', 'token'] as const) {
  describe(`upload sessions with auth.mode ${mode}`, () => {
    let reg: TestRegistry;
    const alice = basic('alice', 'alice-pw-1');
    const bob = basic('bob', 'bob-pw-1');
    const robot = basic('robot$ci', 'robot-secret-1');

    before(async () => {
      reg = await createTestRegistry({ 'auth.mode': mode });
      await addUser(reg, 'alice', 'alice-pw-1');
      await addUser(reg, 'bob', 'bob-pw-1');
      await addRobot(reg, 'robot$ci', 'robot-secret-1');
      await addNamespace(reg, 'team', 'private', [
        ['user', 'alice', 'developer'],
        ['user', 'bob', 'maintainer'],
        ['robot', 'robot$ci', 'developer'],
      ]);
    });
    after(async () => reg.dispose());

    async function start(headers: Headers): Promise<string> {
      const res = await reg.inject({ method: 'POST', url: `/v2/${REPO}/blobs/uploads/`, headers });
      assert.equal(res.statusCode, 202, res.body);
      return pathOf(res.headers.location);
    }

    function patch(location: string, headers: Headers, chunk: Buffer, start: number): Promise<Response> {
      return reg.inject({
        method: 'PATCH',
        url: location,
        headers: {
          ...headers,
          'content-type': 'application/octet-stream',
          'content-range': `${start}-${start + chunk.length - 1}`,
        },
        payload: chunk,
      });
    }

    /** Every request a client can make on a session, as `who`. */
    async function tryAll(location: string, who: Headers): Promise<Response[]> {
      const bytes = Buffer.from('intruder');
      return [
        await reg.inject({ method: 'GET', url: location, headers: who }),
        await patch(location, who, bytes, 0),
        await patch(location, who, bytes, 5),
        await reg.inject({
          method: 'PUT',
          url: `${location}?digest=${sha256(bytes)}`,
          headers: { ...who, 'content-type': 'application/octet-stream' },
          payload: bytes,
        }),
        await reg.inject({ method: 'PUT', url: location, headers: who }),
        await reg.inject({ method: 'DELETE', url: location, headers: who }),
      ];
    }

    it("another principal with push gets exactly an unknown session's answers, and changes nothing", async () => {
      const data = Buffer.from('alice owns these bytes');
      const location = await start(alice);
      const id = location.split('/').pop() as string;
      let res = await patch(location, alice, data.subarray(0, 5), 0);
      assert.equal(res.statusCode, 202, res.body);

      const unknownId = randomUUID();
      const unknown = await tryAll(location.replace(id, unknownId), bob);
      for (const r of unknown) assertError(r, 404, 'BLOB_UPLOAD_UNKNOWN');
      for (const who of [bob, robot]) {
        const answers = await tryAll(location, who);
        assert.deepEqual(
          answers.map((r) => shape(r, id)),
          unknown.map((r) => shape(r, unknownId)),
        );
      }

      // Nothing the others sent counted, and the session is still alice's to finish.
      res = await reg.inject({ method: 'GET', url: location, headers: alice });
      assert.equal(res.statusCode, 204);
      assert.equal(res.headers.range, '0-4');
      res = await reg.inject({
        method: 'PUT',
        url: `${location}?digest=${sha256(data)}`,
        headers: {
          ...alice,
          'content-type': 'application/octet-stream',
          'content-range': `5-${data.length - 1}`,
        },
        payload: data.subarray(5),
      });
      assert.equal(res.statusCode, 201, res.body);
      res = await reg.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${sha256(data)}`, headers: bob });
      assert.equal(res.statusCode, 200);
      assert.ok(res.rawPayload.equals(data));
    });

    it("a robot's session is its own: a user cannot use it, the robot can cancel it", async () => {
      const location = await start(robot);
      for (const r of await tryAll(location, alice)) assertError(r, 404, 'BLOB_UPLOAD_UNKNOWN');
      const res = await reg.inject({ method: 'DELETE', url: location, headers: robot });
      assert.equal(res.statusCode, 204);
      assertError(
        await reg.inject({ method: 'GET', url: location, headers: robot }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
      );
    });

    it('a session started before owners were recorded is usable by anyone allowed to push', async () => {
      const handle = await reg.services.storage.createUpload();
      const id = randomUUID();
      await reg.services.metadata.createUploadSession({ id, repository: REPO, handle });
      const location = `/v2/${REPO}/blobs/uploads/${id}`;
      const data = Buffer.from('from before the upgrade');
      let res = await patch(location, bob, data.subarray(0, 4), 0);
      assert.equal(res.statusCode, 202, res.body);
      res = await patch(location, robot, data.subarray(4, 10), 4);
      assert.equal(res.statusCode, 202, res.body);
      res = await reg.inject({
        method: 'PUT',
        url: `${location}?digest=${sha256(data)}`,
        headers: { ...alice, 'content-type': 'application/octet-stream' },
        payload: data.subarray(10),
      });
      assert.equal(res.statusCode, 201, res.body);
    });

    if (mode === 'token') {
      it('the owner is the principal, whether it sends a token or Basic credentials', async () => {
        const location = await start(alice);
        const token = bearer(await getToken(reg, alice, [`repository:${REPO}:pull,push`]));
        const data = Buffer.from('same alice');
        const res = await patch(location, token, data, 0);
        assert.equal(res.statusCode, 202, res.body);
        const bobToken = bearer(await getToken(reg, bob, [`repository:${REPO}:pull,push`]));
        assertError(await patch(location, bobToken, data, data.length), 404, 'BLOB_UPLOAD_UNKNOWN');
        const done = await reg.inject({
          method: 'PUT',
          url: `${location}?digest=${sha256(data)}`,
          headers: alice,
        });
        assert.equal(done.statusCode, 201, done.body);
      });
    }
  });
}

describe('upload sessions with access control off', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => reg.dispose());

  it('have no owner: any client may continue any session', async () => {
    const res = await reg.inject({ method: 'POST', url: '/v2/open/app/blobs/uploads/' });
    assert.equal(res.statusCode, 202);
    const id = String(res.headers['docker-upload-uuid']);
    assert.equal((await reg.services.metadata.getUploadSession(id))?.owner, null);
    const done = await reg.inject({
      method: 'PUT',
      url: `${pathOf(res.headers.location)}?digest=${sha256('open')}`,
      headers: { authorization: basic('whoever', 'x').authorization as string },
      payload: 'open',
    });
    assert.equal(done.statusCode, 201, done.body);
  });
});
