/**
 * The client address behind reverse proxies (`http.trustedProxies`): whose `X-Forwarded-For` is believed, how a
 * chain of proxies is read, and where the address goes (the audit log of a failed login, the failed-login
 * limiter per address); forwarded URL headers only from trusted proxies once a list is configured.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createServices } from '../../src/container.ts';
import { createProcessLogger } from '../../src/http/process-logger.ts';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import { basic } from '../helpers/auth.ts';

const PROXIES = ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'];

/** Fails a login as `username` from `remoteAddress` with `forwardedFor`; returns the audited source address. */
async function failedLoginAddress(
  reg: TestRegistry,
  username: string,
  remoteAddress: string,
  forwardedFor?: string,
): Promise<string | null> {
  const res = await reg.inject({
    method: 'GET',
    url: `/auth/token?service=${reg.config.auth.token.service}`,
    remoteAddress,
    headers: {
      ...basic(username, 'wrong'),
      ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
    },
  });
  assert.equal(res.statusCode, 401, res.body);
  const audit = await reg.services.auth.store.queryAudit({ action: 'login', actor: username, limit: 5 });
  assert.equal(audit.items.length, 1, `one audit entry for ${username}`);
  return audit.items[0]?.sourceAddr ?? null;
}

/** The token realm of the `/v2/` challenge (an absolute URL) for a request via `remoteAddress` with forwarded URL headers. */
async function realmSeenBy(reg: TestRegistry, remoteAddress: string): Promise<string | undefined> {
  const res = await reg.inject({
    method: 'GET',
    url: '/v2/',
    remoteAddress,
    headers: {
      host: 'internal:5000',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.example.com',
    },
  });
  assert.equal(res.statusCode, 401, res.body);
  return /realm="([^"]*)"/.exec(String(res.headers['www-authenticate']))?.[1];
}

describe('client address with trusted proxies', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({
      'auth.mode': 'token',
      'auth.maxFailedLogins': 2,
      'auth.maxFailedLoginsPerAddress': 2,
      'http.trustedProxies': PROXIES,
    });
  });
  after(() => reg.dispose());

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    assert.equal(await failedLoginAddress(reg, 'u1', '203.0.113.9', '198.51.100.1'), '203.0.113.9');
  });

  it('believes X-Forwarded-For from a trusted proxy (IPv4 range, single address, IPv6, IPv4-mapped)', async () => {
    assert.equal(await failedLoginAddress(reg, 'u2', '10.1.2.3', '198.51.100.2'), '198.51.100.2');
    assert.equal(await failedLoginAddress(reg, 'u3', '192.0.2.7', '198.51.100.3'), '198.51.100.3');
    assert.equal(
      await failedLoginAddress(reg, 'u4', '2001:db8::5', '2001:db8:ffff::1, 203.0.113.4'),
      '203.0.113.4',
    );
    assert.equal(await failedLoginAddress(reg, 'u5', '::ffff:10.0.0.1', '198.51.100.5'), '198.51.100.5');
    assert.equal(await failedLoginAddress(reg, 'u6', '192.0.2.8', '198.51.100.6'), '192.0.2.8');
  });

  it('takes the rightmost address not in the list from a chain of proxies; what the client prepends is ignored', async () => {
    // The client forged "1.1.1.1"; our outer proxy 10.9.9.9 appended the client's address, our inner proxy
    // 10.0.0.2 appended the outer one and connected to Berth.
    const chain = '1.1.1.1, 198.51.100.7, 10.9.9.9';
    assert.equal(await failedLoginAddress(reg, 'u7', '10.0.0.2', chain), '198.51.100.7');
    // A proxy outside the list in the middle of the chain is the client as far as Berth can tell.
    assert.equal(
      await failedLoginAddress(reg, 'u8', '10.0.0.2', '198.51.100.8, 203.0.113.50'),
      '203.0.113.50',
    );
    // Every address trusted: the leftmost one.
    assert.equal(await failedLoginAddress(reg, 'u9', '10.0.0.2', '10.0.0.9, 10.0.0.3'), '10.0.0.9');
  });

  it('limits failed logins per client address, not per proxy', async () => {
    const attempt = (username: string, client: string): Promise<number> =>
      reg
        .inject({
          method: 'GET',
          url: `/auth/token?service=${reg.config.auth.token.service}`,
          remoteAddress: '10.0.0.2',
          headers: { ...basic(username, 'wrong'), 'x-forwarded-for': client },
        })
        .then((res) => res.statusCode);
    assert.equal(await attempt('limit-a', '198.51.100.20'), 401);
    assert.equal(await attempt('limit-b', '198.51.100.20'), 401);
    // That address has reached its ceiling, on any account...
    assert.equal(await attempt('limit-c', '198.51.100.20'), 429);
    // ...while another client behind the same proxy has not.
    assert.equal(await attempt('limit-d', '198.51.100.21'), 401);
  });

  it('builds URLs from X-Forwarded-Proto/Host of a trusted proxy only', async () => {
    assert.equal(await realmSeenBy(reg, '10.0.0.2'), 'https://registry.example.com/auth/token');
    assert.equal(await realmSeenBy(reg, '203.0.113.9'), 'http://internal:5000/auth/token');
  });
});

describe('client address without trusted proxies (the default)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'token' });
  });
  after(() => reg.dispose());

  it('is the peer, whatever X-Forwarded-For says', async () => {
    assert.equal(await failedLoginAddress(reg, 'u1', '10.0.0.2', '198.51.100.1'), '10.0.0.2');
  });

  it('still honours X-Forwarded-Proto/Host for URLs from any peer (http.trustForwardedHeaders)', async () => {
    assert.equal(await realmSeenBy(reg, '203.0.113.9'), 'https://registry.example.com/auth/token');
  });
});

describe('the remote address in log lines', () => {
  it('is the address request.ip finds, for every shape of chain', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-remote-'));
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
        done();
      },
    });
    const config = loadConfig({
      env: {},
      overrides: { data: dir, 'auth.mode': 'token', 'http.trustedProxies': PROXIES },
    });
    const services = await createServices(config);
    const app = createApp(config, services, {
      backgroundJobs: false,
      logger: createProcessLogger(config, sink),
    });
    try {
      const cases: [peer: string, forwardedFor: string | undefined][] = [
        ['203.0.113.9', '198.51.100.1'],
        ['10.1.2.3', undefined],
        ['10.1.2.3', '198.51.100.2'],
        ['10.0.0.2', '1.1.1.1, 198.51.100.7, 10.9.9.9'],
        ['10.0.0.2', '198.51.100.8, 203.0.113.50'],
        ['10.0.0.2', '10.0.0.9, 10.0.0.3'],
        ['10.0.0.2', ' , 198.51.100.9 ,,'],
        ['2001:db8::5', '2001:db8:ffff::1, 203.0.113.4'],
        ['::ffff:10.0.0.1', '198.51.100.5'],
      ];
      for (const [i, [peer, forwardedFor]] of cases.entries()) {
        const username = `remote${i}`;
        const res = await app.inject({
          method: 'GET',
          url: '/v2/',
          remoteAddress: peer,
          headers: {
            ...basic(username, 'wrong'),
            ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
          },
        });
        assert.equal(res.statusCode, 401);
        const audit = await services.auth.store.queryAudit({ actor: username, limit: 1 });
        const access = lines.findLast((l) => l.msg === 'request');
        assert.ok(audit.items[0]?.sourceAddr, 'request.ip reached the audit log');
        assert.equal(access?.remote, audit.items[0]?.sourceAddr, `${peer} via ${forwardedFor}`);
      }
    } finally {
      await app.close();
      await services.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
