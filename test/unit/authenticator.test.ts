import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../../src/auth/audit.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { LoginLimiter } from '../../src/auth/login-limiter.ts';
import { hashPassword, hashSecret } from '../../src/auth/passwords.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { RegistryError } from '../../src/oci/errors.ts';

describe('Authenticator', () => {
  let metadata: KyselyMetadataStore;
  let auth: Authenticator;

  before(async () => {
    metadata = createSqliteStore(':memory:');
    await metadata.migrate();
    const store = metadata.authStore();
    await store.createUser({
      username: 'dev',
      passwordHash: await hashPassword('correct horse'),
      isAdmin: false,
    });
    await store.createUser({
      username: 'ops',
      passwordHash: await hashPassword('battery staple'),
      isAdmin: false,
    });
    await store.createRobot({
      name: 'robot$ci',
      description: '',
      secretHash: hashSecret('robot-secret'),
      expiresAt: null,
      createdBy: null,
    });
    auth = new Authenticator(store, null, new LoginLimiter(3, 60_000), new AuditLog(store), 60_000);
  });
  after(() => metadata.close());

  it('audits every successful token login, also when the credentials are cached', async () => {
    const ctx = { sourceAddr: '10.1.1.1', via: 'token', auditSuccess: true };
    for (let i = 0; i < 3; i++) assert.equal((await auth.login('dev', 'correct horse', ctx))?.name, 'dev');
    const events = await metadata.authStore().queryAudit({ actor: 'dev', action: 'login', limit: 10 });
    assert.equal(events.items.length, 3);
    assert.ok(events.items.every((e) => e.success && e.sourceAddr === '10.1.1.1'));
  });

  it('authenticates robots by secret and refuses wrong ones', async () => {
    const ctx = { sourceAddr: '10.1.1.2', via: 'basic' };
    assert.deepEqual(await auth.login('robot$ci', 'robot-secret', ctx), {
      kind: 'robot',
      name: 'robot$ci',
      isAdmin: false,
    });
    assert.equal(await auth.login('robot$ci', 'nope', ctx), null);
    assert.equal(await auth.login('robot$other', 'robot-secret', ctx), null);
  });

  it('limits failed logins per account and per address with 429 and Retry-After', async () => {
    const ctx = { sourceAddr: '10.9.9.9', via: 'basic' };
    for (let i = 0; i < 3; i++) assert.equal(await auth.login('ops', `wrong ${i}`, ctx), null);
    // Even the right password is refused for the locked account, from another address too.
    await assert.rejects(
      auth.login('ops', 'battery staple', { ...ctx, sourceAddr: '10.9.9.8' }),
      (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.status, 429);
        assert.ok(Number(e.headers['Retry-After']) > 0);
        return true;
      },
    );
    await assert.rejects(
      auth.login('someone', 'x', ctx),
      /too many failed logins/,
      'the address is limited too',
    );
    const failures = await metadata.authStore().queryAudit({ action: 'login', success: false, limit: 20 });
    assert.ok(failures.items.some((e) => e.actor === 'ops' && e.sourceAddr === '10.9.9.9'));
  });
});
