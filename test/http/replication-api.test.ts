/**
 * The replication admin API through the app: remote registries (credentials sealed, never returned), policies
 * (validation), running a policy, executions with their tasks, cancel and retry; system administrators only, and
 * every response as docs/api/openapi.yaml documents it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addUser, basic } from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';

const PASSWORD = 'remote-secret-Pa55word';

describe('replication admin API', () => {
  let reg: TestRegistry;
  const admin = basic('root', 'root-password-1');
  const user = basic('alice', 'alice-password-1');

  before(async () => {
    reg = await createTestRegistry({
      'auth.mode': 'basic',
      'secrets.key': 'http-test-secrets-key-0123456789',
    });
    await addUser(reg, 'root', 'root-password-1', { admin: true });
    await addUser(reg, 'alice', 'alice-password-1');
  });
  after(() => reg.dispose());

  async function call(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    headers = admin,
  ): Promise<Response> {
    const res = await reg.inject({
      method,
      url: `/api/v1${url}`,
      headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    conforms(method, `/api/v1${url}`, res);
    return res;
  }

  it('stores credentials sealed and never returns them', async () => {
    const created = await call('POST', '/replication/registries', {
      name: 'hub',
      url: 'https://registry.example.com/',
      username: 'bot',
      password: PASSWORD,
    });
    assert.equal(created.statusCode, 201, created.body);
    const body = json(created);
    assert.equal(body.url, 'https://registry.example.com');
    assert.equal(body.hasCredentials, true);
    assert.equal(body.username, 'bot');
    assert.ok(!created.body.includes(PASSWORD));

    for (const url of [
      '/replication/registries',
      '/replication/registries/hub',
      `/replication/registries/${body.id}`,
    ]) {
      const res = await call('GET', url);
      assert.equal(res.statusCode, 200);
      assert.ok(!res.body.includes(PASSWORD), `${url} leaks the password`);
      assert.ok(!res.body.includes('v1.'), `${url} shows the sealed value`);
    }

    const stored = await reg.services.replication.store.getRegistryByName('hub');
    assert.ok(stored?.sealedPassword);
    assert.notEqual(stored.sealedPassword, PASSWORD);
    assert.ok(!stored.sealedPassword.includes(PASSWORD));
    assert.equal(await reg.services.replication.secrets.open(stored.sealedPassword), PASSWORD);

    const audit = await call('GET', '/audit?action=replication.');
    assert.equal(audit.statusCode, 200);
    assert.match(audit.body, /replication\.registry\.create/);
    assert.ok(!audit.body.includes(PASSWORD), 'the audit log holds no password');
  });

  it('validates registries and changes them', async () => {
    const bad = [
      { name: 'x', url: 'ftp://example.com' },
      { name: 'x', url: 'https://example.com/v2/' },
      { name: 'Bad Name', url: 'https://example.com' },
      { name: 'x', url: 'https://example.com', password: 'p' },
      { name: 'x', url: 'https://example.com', concurrency: 0 },
    ];
    for (const input of bad) {
      const res = await call('POST', '/replication/registries', input);
      assert.equal(res.statusCode, 400, JSON.stringify(input));
    }
    const dup = await call('POST', '/replication/registries', { name: 'hub', url: 'https://example.com' });
    assert.equal(dup.statusCode, 409);

    const patched = await call('PATCH', '/replication/registries/hub', { password: null, concurrency: 8 });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(json(patched).hasCredentials, false);
    assert.equal(json(patched).concurrency, 8);
    const again = await call('PATCH', '/replication/registries/hub', { password: PASSWORD });
    assert.equal(json(again).hasCredentials, true);
    assert.equal((await call('GET', '/replication/registries/nope')).statusCode, 404);
  });

  it('validates policies and runs them as executions that can be canceled and retried', async () => {
    const bad = [
      { name: 'p', registry: 'nope' },
      { name: 'p', registry: 'hub', direction: 'sideways' },
      { name: 'p', registry: 'hub', trigger: 'schedule' },
      { name: 'p', registry: 'hub', trigger: 'schedule', schedule: 'not cron' },
      { name: 'p', registry: 'hub', direction: 'pull', trigger: 'event' },
      { name: 'p', registry: 'hub', bandwidthLimit: 10 },
      { name: 'p', registry: 'hub', rewrite: { addPrefix: 'Upper' } },
      { name: 'p', registry: 'hub', password: 'x' },
    ];
    for (const input of bad) {
      const res = await call('POST', '/replication/policies', input);
      assert.equal(res.statusCode, 400, `${JSON.stringify(input)}: ${res.body}`);
    }
    const created = await call('POST', '/replication/policies', {
      name: 'nightly',
      registry: 'hub',
      repositories: ['prod/**'],
      excludeTags: ['*-rc*'],
      rewrite: { addPrefix: 'mirror' },
      trigger: 'schedule',
      schedule: '0 3 * * *',
      bandwidthLimit: 1_048_576,
    });
    assert.equal(created.statusCode, 201, created.body);
    const policy = json<{ id: number; registry: { name: string }; rewrite: { addPrefix: string } }>(created);
    assert.equal(policy.registry.name, 'hub');
    assert.equal(policy.rewrite.addPrefix, 'mirror');

    const patched = await call('PATCH', '/replication/policies/nightly', {
      trigger: 'manual',
      enabled: false,
    });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.equal(json(patched).trigger, 'manual');
    assert.equal(json(patched).schedule, '0 3 * * *');
    assert.equal((await call('GET', '/replication/policies')).statusCode, 200);

    // A registry in use is not removed.
    assert.equal((await call('DELETE', '/replication/registries/hub')).statusCode, 409);

    const run = await call('POST', '/replication/policies/nightly/run');
    assert.equal(run.statusCode, 202, run.body);
    const execution = json<{ id: number; state: string; trigger: string; requestedBy: string }>(run);
    assert.equal(execution.state, 'queued');
    assert.equal(execution.trigger, 'manual');
    assert.equal(execution.requestedBy, 'user:root');
    // Queued on the job runner (no background jobs in this app: it stays queued).
    const jobs = await reg.services.jobs.list({ queue: 'replication', limit: 10 });
    assert.equal(jobs.items.length, 1);

    const list = await call('GET', '/replication/executions?policy=nightly');
    assert.equal(list.statusCode, 200);
    assert.deepEqual(
      json<{ items: { id: number }[] }>(list).items.map((e) => e.id),
      [execution.id],
    );
    const detail = await call('GET', `/replication/executions/${execution.id}?limit=10`);
    assert.equal(detail.statusCode, 200, detail.body);
    assert.deepEqual(json<{ tasks: { items: unknown[] } }>(detail).tasks.items, []);

    assert.equal((await call('POST', `/replication/executions/${execution.id}/retry`)).statusCode, 409);
    const canceled = await call('POST', `/replication/executions/${execution.id}/cancel`);
    assert.equal(canceled.statusCode, 200, canceled.body);
    assert.equal(json(canceled).state, 'canceled');
    assert.equal((await call('POST', `/replication/executions/${execution.id}/cancel`)).statusCode, 409);
    const retried = await call('POST', `/replication/executions/${execution.id}/retry`);
    assert.equal(retried.statusCode, 202, retried.body);
    assert.equal(json(retried).state, 'queued');
    assert.equal((await call('GET', '/replication/executions/999999')).statusCode, 404);

    assert.equal((await call('DELETE', '/replication/policies/nightly')).statusCode, 204);
    // The history stays, without the policy.
    const kept = await call('GET', `/replication/executions/${execution.id}`);
    assert.equal(json(kept).policyId, null);
    assert.equal(json(kept).policyName, 'nightly');
    assert.equal((await call('DELETE', '/replication/registries/hub')).statusCode, 204);
  });

  it('is for system administrators only', async () => {
    const routes: ['GET' | 'POST' | 'PATCH' | 'DELETE', string, unknown?][] = [
      ['GET', '/replication/registries'],
      ['POST', '/replication/registries', { name: 'r', url: 'https://example.com' }],
      ['GET', '/replication/registries/r'],
      ['PATCH', '/replication/registries/r', { insecure: true }],
      ['DELETE', '/replication/registries/r'],
      ['GET', '/replication/policies'],
      ['POST', '/replication/policies', { name: 'p', registry: 'r' }],
      ['GET', '/replication/policies/p'],
      ['PATCH', '/replication/policies/p', { enabled: false }],
      ['DELETE', '/replication/policies/p'],
      ['POST', '/replication/policies/p/run'],
      ['GET', '/replication/executions'],
      ['GET', '/replication/executions/1'],
      ['POST', '/replication/executions/1/retry'],
      ['POST', '/replication/executions/1/cancel'],
    ];
    for (const [method, url, body] of routes) {
      const res = await call(method, url, body, user);
      assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
      const anonymous = await reg.inject({ method, url: `/api/v1${url}` });
      assert.equal(anonymous.statusCode, 401, `${method} ${url} anonymously`);
    }
  });
});
