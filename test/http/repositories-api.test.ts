/**
 * Deleting a whole repository through the admin API (`DELETE /api/v1/repositories/{name}`): who may (system
 * administrators and the namespace's admins; not developers, not robots, not anonymous callers), what goes (tags,
 * manifests, blob links; other repositories keep shared blobs), the `repository.deleted` event and the audit record,
 * 404 for an unknown repository, 409 with deletes disabled. Every response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addNamespace, addRobot, addUser, basic, pushImageAs, type Headers } from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');
const ROBOT = basic('robot$ci', 'robot-secret-1');

describe('repositories admin API', () => {
  let reg: TestRegistry;

  async function remove(headers: Headers, name: string): Promise<Response> {
    const url = `${PREFIX}/repositories/${encodeURIComponent(name)}`;
    const res = await reg.inject({ method: 'DELETE', url, headers });
    conforms('DELETE', url, res);
    return res;
  }

  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'basic' });
    await addUser(reg, 'root', 'root-password-1', { admin: true });
    await addUser(reg, 'owner', 'owner-password-1');
    await addUser(reg, 'dev', 'dev-password-1');
    await addRobot(reg, 'robot$ci', 'robot-secret-1');
    await addNamespace(reg, 'team', 'private', [
      ['user', 'owner', 'admin'],
      ['user', 'dev', 'developer'],
      ['robot', 'robot$ci', 'admin'],
    ]);
    await addNamespace(reg, 'other', 'private', [['user', 'dev', 'admin']]);
  });
  after(() => reg.dispose());

  it('a namespace admin deletes a repository with its tags and manifests; other repositories keep shared blobs', async () => {
    const image = await pushImageAs(reg, ADMIN, 'team/app', 'v1');
    await reg.inject({
      method: 'PUT',
      url: '/v2/team/app/manifests/latest',
      headers: { ...ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: image.bytes,
    });
    const kept = await pushImageAs(reg, ADMIN, 'team/kept', 'v1');
    const mount = await reg.inject({
      method: 'POST',
      url: `/v2/team/kept/blobs/uploads/?mount=${image.layer.digest}&from=team/app`,
      headers: ADMIN,
    });
    assert.equal(mount.statusCode, 201);
    const before = (await reg.services.metadata.pendingEvents(10_000)).length;

    const res = await remove(OWNER, 'team/app');
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(json(res), { name: 'team/app', manifests: 1, tags: 2, blobs: 2 });

    const get = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: ADMIN });
    assertError(get, 404, 'MANIFEST_UNKNOWN');
    const tags = await reg.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: ADMIN });
    assertError(tags, 404, 'NAME_UNKNOWN');
    const shared = await reg.inject({
      method: 'HEAD',
      url: `/v2/team/kept/blobs/${image.layer.digest}`,
      headers: ADMIN,
    });
    assert.equal(shared.statusCode, 200, 'the mounted layer stays readable where it was mounted');
    const keptGet = await reg.inject({ method: 'GET', url: '/v2/team/kept/manifests/v1', headers: ADMIN });
    assert.equal(keptGet.headers['docker-content-digest'], kept.digest);

    const events = (await reg.services.metadata.pendingEvents(10_000)).slice(before).map((e) => e.event);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.target.repository} ${e.actor?.name}`),
      ['repository.deleted team/app owner'],
    );
    const audit = await reg.services.auth.store.queryAudit({ action: 'repository.delete', limit: 10 });
    assert.deepEqual(
      audit.items.map((a) => `${a.actor} ${a.target} ${a.success}`),
      ['owner team/app true'],
    );
    assertError(await remove(OWNER, 'team/app'), 404, 'NAME_UNKNOWN');
  });

  it('refuses developers, robots, admins of another namespace and anonymous callers; a system admin may', async () => {
    await pushImageAs(reg, ADMIN, 'team/guarded', 'v1');
    assertError(await remove(DEV, 'team/guarded'), 403, 'DENIED');
    assertError(await remove(ROBOT, 'team/guarded'), 403, 'DENIED');
    const anonymous = await reg.inject({
      method: 'DELETE',
      url: `${PREFIX}/repositories/${encodeURIComponent('team/guarded')}`,
    });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(await reg.services.metadata.repositoryExists('team/guarded'), true);
    const denied = await reg.services.auth.store.queryAudit({
      action: 'repository.delete',
      success: false,
      limit: 10,
    });
    assert.equal(denied.items.length, 2, 'both refusals are audited');
    const res = await remove(ADMIN, 'team/guarded');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(await reg.services.metadata.repositoryExists('team/guarded'), false);
  });

  it('answers 400 for a name that is not a repository name', async () => {
    const res = await remove(ADMIN, 'Team/App');
    assertError(res, 400, 'UNSUPPORTED');
  });
});

describe('repositories admin API with deletes disabled', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'basic', 'registry.deletes': false });
    await addUser(reg, 'root', 'root-password-1', { admin: true });
  });
  after(() => reg.dispose());

  it('refuses with 409 and keeps the repository', async () => {
    await pushImageAs(reg, ADMIN, 'library/app', 'v1');
    const url = `${PREFIX}/repositories/${encodeURIComponent('library/app')}`;
    const res = await reg.inject({ method: 'DELETE', url, headers: ADMIN });
    conforms('DELETE', url, res);
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(await reg.services.metadata.repositoryExists('library/app'), true);
  });
});
