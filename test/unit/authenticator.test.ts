import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AuditLog } from '../../src/auth/audit.ts';
import { Authenticator, type AuthenticatorOptions } from '../../src/auth/authenticator.ts';
import { LoginLimiter } from '../../src/auth/login-limiter.ts';
import { hashPassword, hashSecret } from '../../src/auth/passwords.ts';
import type { AuthStore } from '../../src/metadata/auth-store.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { RegistryError } from '../../src/oci/errors.ts';

describe('Authenticator', () => {
  let metadata: KyselyMetadataStore;
  let store: AuthStore;
  let now = Date.UTC(2026, 0, 1);
  const limiter = () =>
    new LoginLimiter(store, { maxFailures: 3, maxFailuresPerAddress: 5, window: 60_000 }, () => now);
  const authenticator = (options: Partial<AuthenticatorOptions> = {}) =>
    new Authenticator(store, null, limiter(), new AuditLog(store), {
      cacheTtl: 60_000,
      loginAuditInterval: 0,
      ...options,
    });
  const auditOf = async (actor: string, success: boolean) =>
    (await store.queryAudit({ actor, action: 'login', success, limit: 50 })).items;

  before(async () => {
    metadata = createSqliteStore(':memory:');
    await metadata.migrate();
    store = metadata.authStore();
    await store.createUser({
      username: 'dev',
      passwordHash: await hashPassword('correct horse'),
      isAdmin: false,
    });
    await store.createUser({
      username: 'ops',
      passwordHash: await hashPassword('battery staple'),
      isAdmin: true,
    });
    await store.createUser({
      username: 'gone',
      passwordHash: await hashPassword('whatever pw'),
      isAdmin: false,
    });
    await store.updateUser('gone', { disabled: true });
    for (const [name, changes] of [
      ['robot$ci', {}],
      ['robot$old', { revokedAt: new Date(now - 1000) }],
      ['robot$late', { expiresAt: new Date(now - 1000) }],
    ] as const) {
      await store.createRobot({
        name,
        description: '',
        secretHash: hashSecret('robot-secret'),
        expiresAt: null,
        createdBy: null,
      });
      await store.updateRobot(name, changes);
    }
  });
  beforeEach(async () => {
    now += 3_600_000;
    await store.clearLoginFailures({ before: new Date(now + 1) });
  });
  after(() => metadata.close());

  it('audits a successful token login once per principal and address per interval, cached or not', async () => {
    const auth = authenticator({ loginAuditInterval: 3_600_000 });
    const ctx = { sourceAddr: '10.1.1.1', via: 'token', auditSuccess: true };
    for (let i = 0; i < 3; i++) assert.equal((await auth.login('dev', 'correct horse', ctx))?.name, 'dev');
    await auth.login('dev', 'correct horse', { ...ctx, sourceAddr: '10.1.1.2' });
    assert.deepEqual((await auditOf('dev', true)).map((e) => e.sourceAddr).sort(), ['10.1.1.1', '10.1.1.2']);

    const every = authenticator({ loginAuditInterval: 0 });
    for (let i = 0; i < 3; i++) await every.login('dev', 'correct horse', { ...ctx, sourceAddr: '10.1.1.3' });
    assert.equal((await auditOf('dev', true)).filter((e) => e.sourceAddr === '10.1.1.3').length, 3);
  });

  it('authenticates robots by secret and refuses wrong, revoked and expired ones, recording why', async () => {
    const auth = authenticator();
    const ctx = { sourceAddr: '10.1.2.1', via: 'basic' };
    assert.deepEqual(await auth.login('robot$ci', 'robot-secret', ctx), {
      kind: 'robot',
      name: 'robot$ci',
      isAdmin: false,
    });
    assert.equal(await auth.login('robot$ci', 'nope', ctx), null);
    assert.equal(await auth.login('robot$other', 'robot-secret', ctx), null);
    assert.equal(await auth.login('robot$old', 'robot-secret', ctx), null);
    assert.equal(await auth.login('robot$late', 'robot-secret', { ...ctx, sourceAddr: '10.1.2.2' }), null);
    const reason = async (actor: string) => (await auditOf(actor, false))[0]?.detail?.reason;
    assert.equal(await reason('robot$ci'), 'wrong password');
    assert.equal(await reason('robot$other'), 'unknown account');
    assert.equal(await reason('robot$old'), 'robot revoked');
    assert.equal(await reason('robot$late'), 'robot expired');
  });

  it('records why users fail, and tells the client nothing more than null', async () => {
    const auth = authenticator();
    const ctx = { sourceAddr: '10.1.3.1', via: 'basic' };
    assert.equal(await auth.login('dev', 'wrong horse', ctx), null);
    assert.equal(await auth.login('nobody', 'x', ctx), null);
    assert.equal(await auth.login('gone', 'whatever pw', ctx), null);
    assert.equal((await auditOf('dev', false))[0]?.detail?.reason, 'wrong password');
    assert.equal((await auditOf('nobody', false))[0]?.detail?.reason, 'unknown account');
    assert.equal((await auditOf('gone', false))[0]?.detail?.reason, 'user disabled');
  });

  it('locks a name from one address after maxFailures, not the name elsewhere nor other names', async () => {
    const auth = authenticator();
    const ctx = { sourceAddr: '10.9.9.9', via: 'basic' };
    for (let i = 0; i < 3; i++) assert.equal(await auth.login('ops', `wrong ${i}`, ctx), null);
    await assert.rejects(auth.login('ops', 'battery staple', ctx), (e: unknown) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.status, 429);
      assert.equal(e.headers['Retry-After'], '60');
      return true;
    });
    assert.equal(
      (await auth.login('ops', 'battery staple', { ...ctx, sourceAddr: '10.9.9.8' }))?.name,
      'ops',
    );
    assert.equal((await auth.login('dev', 'correct horse', ctx))?.name, 'dev');
    // The lock lifts when the oldest counted failure leaves the window.
    now += 60_001;
    assert.equal((await auth.login('ops', 'battery staple', ctx))?.name, 'ops');
  });

  it('a success forgives its pair: the next failures count from zero', async () => {
    const auth = authenticator({ cacheTtl: 1 });
    const ctx = { sourceAddr: '10.8.8.8', via: 'basic' };
    for (let i = 0; i < 2; i++) await auth.login('dev', 'nope', ctx);
    assert.equal((await auth.login('dev', 'correct horse', ctx))?.name, 'dev');
    for (let i = 0; i < 2; i++) await auth.login('dev', 'nope', ctx);
    assert.equal((await auth.login('dev', 'correct horse', ctx))?.name, 'dev');
  });

  it('refuses every name from an address past the address ceiling; an unlock lifts it', async () => {
    const auth = authenticator();
    const ctx = { sourceAddr: '10.7.7.7', via: 'basic' };
    for (let i = 0; i < 5; i++) assert.equal(await auth.login(`made-up-${i}`, 'x', ctx), null);
    await assert.rejects(auth.login('ops', 'battery staple', ctx), /too many failed logins/);
    assert.deepEqual(
      (await auth.limiter.locks()).map((l) => [l.account, l.address, l.failures, l.until.getTime() - now]),
      [[null, '10.7.7.7', 5, 60_000]],
    );
    assert.equal(await auth.limiter.unlock({ address: '10.7.7.7' }), 5);
    assert.equal((await auth.login('ops', 'battery staple', ctx))?.name, 'ops');
    await assert.rejects(auth.limiter.unlock({}), RangeError);
  });

  it('remembers account statuses for cacheTtl and forgets them on invalidate', async () => {
    const auth = authenticator();
    assert.deepEqual(await auth.activePrincipal('user', 'ops'), { kind: 'user', name: 'ops', isAdmin: true });
    await store.updateUser('ops', { disabled: true });
    try {
      assert.equal((await auth.activePrincipal('user', 'ops'))?.name, 'ops', 'cached');
      auth.invalidate();
      assert.equal(await auth.activePrincipal('user', 'ops'), null);
      assert.equal(await auth.activePrincipal('robot', 'robot$old'), null);
      assert.equal(await auth.activePrincipal('robot', 'robot$late'), null);
      assert.equal(await auth.activePrincipal('user', 'nobody'), null);
    } finally {
      await store.updateUser('ops', { disabled: false });
    }
  });
});
