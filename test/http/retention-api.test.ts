/**
 * Pull statistics through the real manifest routes, and retention policies through the admin API
 * (`/api/v1/namespaces/{ns}/retention`, `.../retention/run`): who may (namespace admins and system admins; not
 * developers), validation naming the field, dry run then real run, the policy as the actor of the untagging, the
 * audit records. Every admin response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addNamespace, addUser, basic, pushImageAs, type Headers } from '../helpers/auth.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { conforms } from '../helpers/openapi.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');

const POLICY = {
  rules: [
    { kind: 'keepLastPulled', count: 1 },
    { kind: 'alwaysKeep', tags: ['latest'] },
  ],
};

describe('retention admin API and pull statistics', () => {
  let reg: TestRegistry;

  async function call(
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    headers: Headers,
    body?: unknown,
  ): Promise<Response> {
    const url = `${PREFIX}${path}`;
    const res = await reg.inject({
      method,
      url,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    conforms(method, url, res);
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
  });
  after(() => reg.dispose());

  it('counts manifest GETs by tag and by digest (not HEADs), written by the flush', async () => {
    const image = await pushImageAs(reg, ADMIN, 'team/stats', 'v1');
    for (let i = 0; i < 3; i++) {
      const res = await reg.inject({ method: 'GET', url: '/v2/team/stats/manifests/v1', headers: DEV });
      assert.equal(res.statusCode, 200);
    }
    for (let i = 0; i < 2; i++) {
      const res = await reg.inject({
        method: 'GET',
        url: `/v2/team/stats/manifests/${image.digest}`,
        headers: DEV,
      });
      assert.equal(res.statusCode, 200);
    }
    await reg.inject({ method: 'HEAD', url: '/v2/team/stats/manifests/v1', headers: DEV });
    const store = (reg.services.metadata as KyselyMetadataStore).lifecycleStore();
    assert.equal((await store.tagStats('team/stats'))[0]?.pullCount, 0, 'nothing written before the flush');
    await reg.services.pullStats.flush();
    const [tag] = await store.tagStats('team/stats');
    assert.equal(tag?.pullCount, 3);
    assert.ok(tag?.lastPulledAt !== null);
    const [manifest] = await store.manifestStats('team/stats');
    assert.equal(manifest?.pullCount, 5);
  });

  it('counts pending at shutdown are written then, and survive a restart', async () => {
    await pushImageAs(reg, ADMIN, 'team/restart', 'v1');
    for (let i = 0; i < 4; i++) {
      const res = await reg.inject({ method: 'GET', url: '/v2/team/restart/manifests/v1', headers: DEV });
      assert.equal(res.statusCode, 200);
    }
    reg = await reg.reopen();
    const store = (reg.services.metadata as KyselyMetadataStore).lifecycleStore();
    const [tag] = await store.tagStats('team/restart');
    assert.equal(tag?.pullCount, 4);
    const res = await reg.inject({ method: 'GET', url: '/v2/team/restart/manifests/v1', headers: DEV });
    assert.equal(res.statusCode, 200);
    await reg.services.pullStats.flush();
    assert.equal(
      (await store.tagStats('team/restart'))[0]?.pullCount,
      5,
      'later pulls add to the stored count',
    );
  });

  it('a namespace admin sets, reads, dry-runs, runs and removes a policy; all audited but reads and dry runs', async () => {
    const pulled = await pushImageAs(reg, ADMIN, 'team/app', 'pulled');
    await pushImageAs(reg, ADMIN, 'team/app', 'latest');
    await pushImageAs(reg, ADMIN, 'team/app', 'stale');
    const get = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/pulled', headers: DEV });
    assert.equal(get.statusCode, 200);
    await reg.services.pullStats.flush();

    assertError(await call('GET', '/namespaces/team/retention', OWNER), 404, 'NAME_UNKNOWN');
    const set = await call('PUT', '/namespaces/team/retention', OWNER, POLICY);
    assert.equal(set.statusCode, 200, set.body);
    const view = json(set);
    assert.equal(view.namespace, 'team');
    assert.equal(view.updatedBy, 'owner');
    assert.deepEqual(view.policy, {
      repositories: { include: ['**'], exclude: [] },
      rules: POLICY.rules,
      untagged: { action: 'keep', afterDays: 7 },
    });
    const read = await call('GET', '/namespaces/team/retention', OWNER);
    assert.deepEqual(json(read).policy, view.policy);

    const dry = await call('POST', '/namespaces/team/retention/run', OWNER, { dryRun: true });
    assert.equal(dry.statusCode, 200, dry.body);
    const planned = json<{ dryRun: boolean; tagsUntagged: number; repositories: { untag: unknown[] }[] }>(
      dry,
    );
    assert.equal(planned.dryRun, true);
    assert.equal(planned.tagsUntagged, 1);
    const tags = await reg.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: OWNER });
    assert.deepEqual(json(tags).tags, ['latest', 'pulled', 'stale'], 'a dry run changes nothing');

    const before = (await reg.services.metadata.pendingEvents(100_000)).length;
    const run = await call('POST', '/namespaces/team/retention/run', OWNER, { dryRun: false });
    assert.equal(run.statusCode, 200, run.body);
    const done = json<typeof planned>(run);
    assert.equal(done.dryRun, false);
    assert.deepEqual(
      done.repositories.filter((r) => r.untag.length > 0),
      planned.repositories.filter((r) => r.untag.length > 0),
    );
    const after = await reg.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: OWNER });
    assert.deepEqual(json(after).tags, ['latest', 'pulled']);
    const byDigest = await reg.inject({
      method: 'GET',
      url: `/v2/team/app/manifests/${pulled.digest}`,
      headers: OWNER,
    });
    assert.equal(byDigest.statusCode, 200);
    const events = (await reg.services.metadata.pendingEvents(100_000)).slice(before).map((e) => e.event);
    assert.deepEqual(
      events.map(
        (e) => `${e.type} ${e.target.repository}:${e.target.tag ?? ''} ${e.actor?.kind}/${e.actor?.name}`,
      ),
      ['tag.deleted team/app:stale system/retention:team', 'retention.completed team: system/retention:team'],
    );

    const removed = await call('DELETE', '/namespaces/team/retention', OWNER);
    assert.equal(removed.statusCode, 204);
    assertError(await call('DELETE', '/namespaces/team/retention', OWNER), 404, 'NAME_UNKNOWN');
    assertError(
      await call('POST', '/namespaces/team/retention/run', OWNER, { dryRun: true }),
      404,
      'NAME_UNKNOWN',
    );
    const audit = await reg.services.auth.store.queryAudit({ action: 'retention.', limit: 10 });
    assert.deepEqual(audit.items.map((a) => `${a.action} ${a.actor} ${a.target} ${a.success}`).reverse(), [
      'retention.set owner team true',
      'retention.run owner team true',
      'retention.remove owner team true',
    ]);
  });

  it('refuses developers (audited), invalid policies naming the field, and a run without dryRun', async () => {
    assertError(await call('PUT', '/namespaces/team/retention', DEV, POLICY), 403, 'DENIED');
    assertError(await call('GET', '/namespaces/team/retention', DEV), 403, 'DENIED');
    assertError(await call('POST', '/namespaces/team/retention/run', DEV, { dryRun: true }), 403, 'DENIED');
    const denied = await reg.services.auth.store.queryAudit({
      action: 'retention.set',
      success: false,
      limit: 5,
    });
    assert.equal(denied.items.length, 1);

    const bad = await call('PUT', '/namespaces/team/retention', ADMIN, {
      rules: [{ kind: 'keepLastPushed', count: -1 }],
    });
    assertError(bad, 400, 'UNSUPPORTED');
    assert.match(bad.body, /rules\.0\.count/);
    assertError(await call('PUT', '/namespaces/team/retention', ADMIN, { rules: [] }), 400, 'UNSUPPORTED');
    assertError(await call('PUT', '/namespaces/Bad_NS/retention', ADMIN, POLICY), 400, 'UNSUPPORTED');

    const ok = await call('PUT', '/namespaces/team/retention', ADMIN, POLICY);
    assert.equal(ok.statusCode, 200, 'a system administrator may');
    assertError(await call('POST', '/namespaces/team/retention/run', ADMIN, {}), 400, 'UNSUPPORTED');
  });
});
