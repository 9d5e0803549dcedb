/**
 * The usage, quota and repository listing admin API: `GET /api/v1/usage`, `GET /api/v1/namespaces/{ns}/usage`,
 * `PUT /api/v1/namespaces/{ns}/quota`, `GET /api/v1/repositories`. Who may (system administrators; a namespace's
 * admins for its own usage and repositories), what they report, the audit of quota changes, and that a quota set
 * through the API refuses pushes. Every response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertError,
  createTestRegistry,
  json,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import { addNamespace, addUser, basic, pushImageAs, type Headers } from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');

interface Summary {
  name: string;
  tags: number;
  manifests: number;
  size: number;
  lastPush: string | null;
  lastPull: string | null;
  pulls: number;
}

describe('usage and quota admin API', () => {
  let reg: TestRegistry;

  async function call(
    method: 'GET' | 'PUT',
    url: string,
    headers: Headers,
    payload?: unknown,
  ): Promise<Response> {
    const res = await reg.inject({
      method,
      url: `${PREFIX}${url}`,
      headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
    });
    conforms(method, `${PREFIX}${url}`, res);
    return res;
  }

  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'basic' });
    await addUser(reg, 'root', 'root-password-1', { admin: true });
    await addUser(reg, 'owner', 'owner-password-1');
    await addUser(reg, 'dev', 'dev-password-1');
    await addNamespace(reg, 'team', 'private', [
      ['user', 'owner', 'admin'],
      ['user', 'dev', 'developer'],
    ]);
    await addNamespace(reg, 'other', 'private', [['user', 'dev', 'admin']]);
  });
  after(() => reg.dispose());

  it('reports every namespace and the physical total to system administrators only', async () => {
    const a = await pushImageAs(reg, ADMIN, 'team/app', 'v1');
    // The same layer in another namespace counts there too, but is stored once.
    const mount = await reg.inject({
      method: 'POST',
      url: `/v2/other/copy/blobs/uploads/?mount=${a.layer.digest}&from=team/app`,
      headers: ADMIN,
    });
    assert.equal(mount.statusCode, 201, mount.body);
    const teamBytes = a.config.size + a.layer.size + a.bytes.length;

    const res = await call('GET', '/usage', ADMIN);
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{
      namespaces: { namespace: string; bytes: number; quota: number | null }[];
      physicalBytes: number;
    }>(res);
    assert.deepEqual(body.namespaces, [
      { namespace: 'other', bytes: a.layer.size, quota: null },
      { namespace: 'team', bytes: teamBytes, quota: null },
    ]);
    assert.equal(body.physicalBytes, teamBytes, 'the shared layer is stored once');
    assertError(await call('GET', '/usage', OWNER), 403, 'DENIED');
  });

  it('shows a namespace its usage, quota and repositories; only its admins and system administrators', async () => {
    const res = await call('GET', '/namespaces/team/usage', OWNER);
    assert.equal(res.statusCode, 200, res.body);
    const body = json<{ namespace: string; bytes: number; quota: number | null; repositories: Summary[] }>(
      res,
    );
    assert.equal(body.namespace, 'team');
    assert.deepEqual(
      body.repositories.map((r) => [r.name, r.tags, r.manifests]),
      [['team/app', 1, 1]],
    );
    assert.equal(body.repositories[0]?.size, body.bytes);
    assert.ok(body.repositories[0]?.lastPush);
    assertError(await call('GET', '/namespaces/team/usage', DEV), 403, 'DENIED');
    assert.equal((await call('GET', '/namespaces/other/usage', DEV)).statusCode, 200);
    assertError(await call('GET', '/namespaces/Bad!/usage', ADMIN), 400, 'UNSUPPORTED');
  });

  it('lets system administrators set quotas (audited), which pushes then meet', async () => {
    assertError(await call('PUT', '/namespaces/team/quota', OWNER, { bytes: 1 }), 403, 'DENIED');
    assertError(await call('PUT', '/namespaces/team/quota', ADMIN, { bytes: -1 }), 400, 'UNSUPPORTED');
    assertError(await call('PUT', '/namespaces/team/quota', ADMIN, { bytes: 1.5 }), 400, 'UNSUPPORTED');
    assertError(await call('PUT', '/namespaces/team/quota', ADMIN, {}), 400, 'UNSUPPORTED');

    const before = json<{ bytes: number }>(await call('GET', '/namespaces/team/usage', ADMIN)).bytes;
    const set = await call('PUT', '/namespaces/team/quota', ADMIN, { bytes: before });
    assert.equal(set.statusCode, 200, set.body);
    assert.deepEqual(json(set), { namespace: 'team', bytes: before, quota: before });
    const read = json<{ quota: number }>(await call('GET', '/namespaces/team/usage', OWNER));
    assert.equal(read.quota, before, 'namespace admins read the quota');

    const blob = Buffer.from('one more byte than allowed');
    const refused = await reg.inject({
      method: 'POST',
      url: `/v2/team/app/blobs/uploads/?digest=${sha256(blob)}`,
      headers: { ...ADMIN, 'content-type': 'application/octet-stream' },
      payload: blob,
    });
    assertError(refused, 403, 'DENIED');
    assert.match(
      json<{ errors: { message: string }[] }>(refused).errors[0]?.message ?? '',
      /^quota exceeded: namespace team uses /,
    );

    const cleared = await call('PUT', '/namespaces/team/quota', ADMIN, { bytes: null });
    assert.equal(json<{ quota: null }>(cleared).quota, null);
    const audit = await reg.services.auth.store.queryAudit({ action: 'quota.set', limit: 10 });
    assert.deepEqual(
      audit.items.map(
        (e) => `${e.actor} ${e.target} ${e.success} ${JSON.stringify(e.detail?.['bytes'] ?? null)}`,
      ),
      ['root team true null', `root team true ${before}`, 'owner team false null'],
    );
  });

  it('lists repositories with their counts and sizes: everything for system administrators, one namespace for its admins', async () => {
    await pushImageAs(reg, ADMIN, 'team/zeta', 'v1');
    await pushImageAs(reg, ADMIN, 'team/zeta', 'v2');
    const all = await call('GET', '/repositories', ADMIN);
    assert.equal(all.statusCode, 200, all.body);
    assert.deepEqual(
      json<{ items: Summary[] }>(all).items.map((r) => r.name),
      ['other/copy', 'team/app', 'team/zeta'],
    );
    const page = await call('GET', '/repositories?namespace=team&limit=1', OWNER);
    assert.equal(page.statusCode, 200, page.body);
    const first = json<{ items: Summary[]; next: string | null }>(page);
    assert.deepEqual(
      first.items.map((r) => r.name),
      ['team/app'],
    );
    assert.equal(first.next, 'team/app');
    const second = json<{ items: Summary[]; next: string | null }>(
      await call('GET', '/repositories?namespace=team&limit=1&after=team%2Fapp', OWNER),
    );
    assert.equal(second.next, null);
    const zeta = second.items[0];
    assert.ok(zeta);
    assert.deepEqual([zeta.name, zeta.tags, zeta.manifests], ['team/zeta', 2, 2]);
    assert.ok(zeta.size > 0 && zeta.lastPush !== null);
    assert.deepEqual([zeta.lastPull, zeta.pulls], [null, 0]);

    // Pulls show once the statistics are written (once a minute; here, at once).
    for (let i = 0; i < 3; i++) {
      const res = await reg.inject({
        method: 'GET',
        url: '/v2/team/zeta/manifests/v1',
        headers: { ...ADMIN, accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(res.statusCode, 200);
    }
    await reg.services.pullStats.flush();
    const pulled = json<{ items: Summary[] }>(
      await call('GET', '/repositories?namespace=team&after=team%2Fapp', OWNER),
    ).items[0];
    assert.equal(pulled?.pulls, 3);
    assert.ok(
      pulled?.lastPull !== null && Date.parse(pulled?.lastPull ?? '') >= Date.parse(zeta.lastPush ?? ''),
    );

    assertError(await call('GET', '/repositories', OWNER), 403, 'DENIED');
    assertError(await call('GET', '/repositories?namespace=other', OWNER), 403, 'DENIED');
    assertError(await call('GET', '/repositories?namespace=team', DEV), 403, 'DENIED');
  });
});
