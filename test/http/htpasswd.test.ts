/**
 * Users of an htpasswd file (`auth.htpasswd.path`, docs/configuration.md) over HTTP in `auth.mode: token`: bcrypt
 * entries as Apache's `htpasswd -B` writes them (`$2y$`) and as other tools do (`$2a$`, `$2b$`), comments and
 * non-bcrypt entries ignored, tokens from `/auth/token`, Basic on `/v2`, personal namespaces and public pulls, the
 * precedence of local users, re-reading the file when it changes, and a file that cannot be read at start or
 * later.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { Htpasswd } from '../../src/auth/htpasswd.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createServices } from '../../src/container.ts';
import { assertError, createTestRegistry, json, type TestRegistry } from '../helpers/app.ts';
import {
  addNamespace,
  addUser,
  basic,
  bearer,
  decodeJwt,
  getToken,
  invalidate,
  parseChallenge,
  pushImageAs,
  tokenRequest,
  type TokenResponse,
} from '../helpers/auth.ts';

/**
 * A `user:hash` line with a bcrypt hash and the given `$2?$` prefix (`htpasswd -B` writes `$2y$`). Cost 10 as
 * `htpasswd -B` uses; cost 4 for lines that are never checked (faster to make).
 */
function bcryptEntry(user: string, password: string, variant: 'a' | 'b' | 'y' = 'y', cost = 10): string {
  const hash = bcrypt.hashSync(password, cost).replace(/^\$2b\$/, `$2${variant}$`);
  return `${user}:${hash}`;
}

/** Apache's `{SHA}` entry (base64 of SHA-1), which Berth, like distribution, does not accept. */
function shaEntry(user: string, password: string): string {
  return `${user}:{SHA}${createHash('sha1').update(password).digest('base64')}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 6000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Writes `lines` to `file` atomically (a temp file renamed into place), as tools that edit htpasswd do. */
async function writeHtpasswd(file: string, lines: readonly string[]): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, lines.join('\n') + '\n');
  await rename(tmp, file);
}

const pushScope = (repo: string): string => `repository:${repo}:pull,push`;

describe('htpasswd users (auth.mode token)', () => {
  let work: string;
  let file: string;
  let reg: TestRegistry;
  const ROOT = basic('root', 'root-pw');

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'berth-htpasswd-'));
    file = path.join(work, 'htpasswd');
    await writeHtpasswd(file, [
      '# users of the CI cluster',
      bcryptEntry('hugo', 'hugo-pw', 'y'),
      bcryptEntry('bella', 'bella-pw', 'a'),
      `  ${bcryptEntry('carl', 'carl-pw', 'b')}  `,
      '',
      bcryptEntry('#commented', 'commented-pw', 'y', 4),
      `# ${bcryptEntry('ghost', 'ghost-pw', 'y', 4)}`,
      shaEntry('sha', 'sha-pw'),
      'apr:$apr1$abcdefgh$W1ABWZ0s0hSPv8yRbxA1u/',
      'plain:plain-pw',
      'nohash',
      // bcrypt-like, but not usable: a cost out of range, a salt outside bcrypt's alphabet, a truncated hash.
      bcryptEntry('badcost', 'badcost-pw', 'y', 4).replace(/\$04\$/, '$99$'),
      `badsalt:$2y$10$${'!'.repeat(53)}`,
      bcryptEntry('truncated', 'truncated-pw', 'y', 4).slice(0, -5),
      bcryptEntry('shadow', 'file-pw'),
    ]);
    reg = await createTestRegistry({
      'auth.mode': 'token',
      'auth.htpasswd.path': file,
      // Cached successes expire soon, so a change of the file shows right after the next recheck.
      'auth.cacheTtl': '200ms',
      // Polling for the reload fails logins on purpose; the limit is not what is tested here.
      'auth.maxFailedLogins': 1000,
    });
    await addUser(reg, 'root', 'root-pw', { admin: true });
    await addUser(reg, 'shadow', 'local-pw');
    await addUser(reg, 'dis', 'dis-pw');
    await reg.services.auth.store.updateUser('dis', { disabled: true });
    await addNamespace(reg, 'pub', 'public');
    await addNamespace(reg, 'team', 'private');
    await pushImageAs(reg, ROOT, 'pub/base', 'v1');
    await pushImageAs(reg, ROOT, 'team/secret', 'v1');
  });

  after(async () => {
    await reg?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a user of the file gets a token (Basic on GET /auth/token) for their personal namespace', async () => {
    const res = await tokenRequest(reg, basic('hugo', 'hugo-pw'), ['repository:hugo/app:*']);
    assert.equal(res.statusCode, 200, res.body);
    const { payload } = decodeJwt(json<TokenResponse>(res).token);
    assert.equal(payload.sub, 'hugo');
    assert.deepEqual(payload.access, [
      { type: 'repository', name: 'hugo/app', actions: ['pull', 'push', 'delete'] },
    ]);
  });

  it('pushes to their personal namespace and pulls it back with a token', async () => {
    const token = await getToken(reg, basic('hugo', 'hugo-pw'), [pushScope('hugo/app')]);
    const img = await pushImageAs(reg, bearer(token), 'hugo/app', 'v1');
    const pulled = await reg.inject({
      method: 'GET',
      url: '/v2/hugo/app/manifests/v1',
      headers: { ...bearer(token), accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(pulled.statusCode, 200, pulled.body);
    assert.equal(pulled.headers['docker-content-digest'], img.digest);
  });

  it('pulls a public namespace but gets no push there nor anything in a private one', async () => {
    const res = await tokenRequest(reg, basic('hugo', 'hugo-pw'), [
      pushScope('pub/base'),
      pushScope('team/secret'),
    ]);
    assert.equal(res.statusCode, 200, res.body);
    const token = json<TokenResponse>(res).token;
    assert.deepEqual(decodeJwt(token).payload.access, [
      { type: 'repository', name: 'pub/base', actions: ['pull'] },
    ]);
    const tags = await reg.inject({ method: 'GET', url: '/v2/pub/base/tags/list', headers: bearer(token) });
    assert.equal(tags.statusCode, 200, tags.body);
    assert.deepEqual(json(tags), { name: 'pub/base', tags: ['v1'] });
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/team/secret/tags/list', headers: bearer(token) }),
      403,
      'DENIED',
    );
  });

  it('accepts $2y$, $2a$ and $2b$ entries, and lines with surrounding blanks', async () => {
    for (const [user, password] of [
      ['hugo', 'hugo-pw'],
      ['bella', 'bella-pw'],
      ['carl', 'carl-pw'],
    ] as const) {
      const res = await tokenRequest(reg, basic(user, password), []);
      assert.equal(res.statusCode, 200, `${user}: ${res.body}`);
      assert.equal(decodeJwt(json<TokenResponse>(res).token).payload.sub, user);
    }
  });

  it('a wrong password, or an unknown user, is 401 at the token endpoint and on /v2', async () => {
    for (const creds of [basic('hugo', 'wrong'), basic('hugo', 'HUGO-PW'), basic('nobody', 'hugo-pw')]) {
      const res = await tokenRequest(reg, creds, [pushScope('hugo/app')]);
      assertError(res, 401, 'UNAUTHORIZED');
      assert.match(String(res.headers['www-authenticate']), /^Basic realm="berth"/);
      const v2 = await reg.inject({ method: 'GET', url: '/v2/hugo/app/tags/list', headers: creds });
      assertError(v2, 401, 'UNAUTHORIZED');
      assert.equal(parseChallenge(v2.headers['www-authenticate']).scheme, 'Bearer');
    }
  });

  it('ignores comments and entries that are not bcrypt ({SHA}, $apr1$, plain text, no hash)', async () => {
    for (const [user, password] of [
      ['#commented', 'commented-pw'],
      ['ghost', 'ghost-pw'],
      ['# ghost', 'ghost-pw'],
      ['sha', 'sha-pw'],
      ['apr', 'apr-pw'],
      ['plain', 'plain-pw'],
      ['nohash', ''],
    ] as const) {
      assertError(await tokenRequest(reg, basic(user, password), []), 401, 'UNAUTHORIZED');
    }
  });

  it('a malformed bcrypt entry is ignored: its user gets 401, not a server error', async () => {
    for (const [user, password] of [
      ['badcost', 'badcost-pw'],
      ['badsalt', 'x'],
      ['truncated', 'truncated-pw'],
    ] as const) {
      assertError(await tokenRequest(reg, basic(user, password), []), 401, 'UNAUTHORIZED');
    }
  });

  it('Basic credentials of a file user work directly on /v2 (push and pull)', async () => {
    const bella = basic('bella', 'bella-pw');
    const img = await pushImageAs(reg, bella, 'bella/tools', 'v1');
    const head = await reg.inject({
      method: 'HEAD',
      url: `/v2/bella/tools/manifests/${img.digest}`,
      headers: bella,
    });
    assert.equal(head.statusCode, 200);
    const pub = await reg.inject({ method: 'GET', url: '/v2/pub/base/manifests/v1', headers: bella });
    assert.equal(pub.statusCode, 200, pub.body);
    assertError(
      await reg.inject({ method: 'POST', url: '/v2/pub/base/blobs/uploads/', headers: bella }),
      403,
      'DENIED',
    );
    assertError(
      await reg.inject({
        method: 'POST',
        url: '/v2/bella/tools/blobs/uploads/',
        headers: basic('bella', 'x'),
      }),
      401,
      'UNAUTHORIZED',
    );
  });

  it('a local user of the same name takes precedence: its password works, the file one does not', async () => {
    const res = await tokenRequest(reg, basic('shadow', 'local-pw'), []);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(decodeJwt(json<TokenResponse>(res).token).payload.sub, 'shadow');
    assertError(await tokenRequest(reg, basic('shadow', 'file-pw'), []), 401, 'UNAUTHORIZED');
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/', headers: basic('shadow', 'file-pw') }),
      401,
      'UNAUTHORIZED',
    );
    // Disabled (as the admin API does it: caches invalidated), the local user stays in the way: the file's
    // entry does not take over.
    await reg.services.auth.store.updateUser('shadow', { disabled: true });
    invalidate(reg);
    try {
      assertError(await tokenRequest(reg, basic('shadow', 'file-pw'), []), 401, 'UNAUTHORIZED');
      assertError(await tokenRequest(reg, basic('shadow', 'local-pw'), []), 401, 'UNAUTHORIZED');
    } finally {
      await reg.services.auth.store.updateUser('shadow', { disabled: false });
      invalidate(reg);
    }
  });

  it('the time of a refusal does not tell a file user or a disabled local user from an unknown name', async () => {
    const auth = reg.services.auth.authenticator;
    const ctx = { sourceAddr: '10.7.7.7', via: 'basic' };
    const time = async (username: string, password: string): Promise<number> => {
      const started = performance.now();
      assert.equal(await auth.login(username, password, ctx), null);
      return performance.now() - started;
    };
    await time('warm-up', 'x'); // creates the dummy hash
    const unknown: number[] = [];
    const fileUser: number[] = [];
    const disabled: number[] = [];
    for (let i = 0; i < 4; i++) {
      unknown.push(await time(`nobody-${i}`, `wrong-${i}`));
      fileUser.push(await time('carl', `wrong-${i}`));
      disabled.push(await time('dis', 'dis-pw'));
    }
    // The fastest of a few tries is compared, which load on the machine hardly moves. A file user's wrong
    // password costs one bcrypt check (cost 10), about one scrypt check of an unknown name's dummy, not both;
    // a disabled user is refused after a dummy check too, not at once.
    const fastest = (times: number[]): number => Math.min(...times);
    const detail = `unknown ${unknown.map(Math.round).join(', ')} ms, file user ${fileUser.map(Math.round).join(', ')} ms, disabled ${disabled.map(Math.round).join(', ')} ms`;
    assert.ok(fastest(fileUser) < 1.4 * fastest(unknown), detail);
    assert.ok(fastest(disabled) > 0.6 * fastest(unknown), detail);
  });

  it('re-reads the file after it changes: a user added, a password changed, a user removed', async () => {
    const login = async (user: string, password: string): Promise<number> =>
      (await tokenRequest(reg, basic(user, password), [])).statusCode;
    assert.equal(await login('hugo', 'hugo-pw'), 200);
    assert.equal(await login('bella', 'bella-pw'), 200);
    assert.equal(await login('nina', 'nina-pw'), 401);

    await writeHtpasswd(file, [
      '# users of the CI cluster',
      bcryptEntry('bella', 'bella-new-pw', 'y'),
      bcryptEntry('carl', 'carl-pw', 'b'),
      bcryptEntry('nina', 'nina-pw', 'y'),
      bcryptEntry('shadow', 'file-pw'),
    ]);
    const started = Date.now();
    await eventually('the new user logs in', async () =>
      (await login('nina', 'nina-pw')) === 200 ? true : undefined,
    );
    // The file is checked at most every 2 s (by default): within that and a little more.
    assert.ok(Date.now() - started < 4000, `picked up after ${Date.now() - started} ms`);
    assert.equal(await login('bella', 'bella-new-pw'), 200, 'the new password works');
    assert.equal(await login('bella', 'bella-pw'), 401, 'the old password does not');
    assert.equal(await login('hugo', 'hugo-pw'), 401, 'the removed user cannot log in');
    assert.equal(await login('carl', 'carl-pw'), 200, 'an unchanged user still can');
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/', headers: basic('hugo', 'hugo-pw') }),
      401,
      'UNAUTHORIZED',
    );
    // The new user has a personal namespace at once.
    const token = await getToken(reg, basic('nina', 'nina-pw'), [pushScope('nina/app')]);
    await pushImageAs(reg, bearer(token), 'nina/app', 'v1');
  });
});

describe('an htpasswd file that cannot be read', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'berth-htpasswd-bad-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const configWith = (htpasswd: string): ReturnType<typeof loadConfig> =>
    loadConfig({
      env: {},
      overrides: { data: path.join(work, 'data'), 'auth.mode': 'token', 'auth.htpasswd.path': htpasswd },
    });

  it('missing at start: createServices rejects with an error naming the file', async () => {
    const missing = path.join(work, 'no-such-htpasswd');
    await assert.rejects(createServices(configWith(missing)), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /htpasswd/);
      assert.ok(e.message.includes(missing), e.message);
      assert.match(e.message, /ENOENT/);
      return true;
    });
  });

  it('a directory at start: createServices rejects with an error naming the file', async () => {
    const dir = path.join(work, 'htpasswd.d');
    await mkdir(dir);
    await assert.rejects(createServices(configWith(dir)), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /htpasswd/);
      assert.ok(e.message.includes(dir), e.message);
      return true;
    });
  });

  it('unreadable later: the previous entries stay, with a warning, until the file is back', async () => {
    const file = path.join(work, 'later');
    await writeHtpasswd(file, [bcryptEntry('hugo', 'hugo-pw', 'y', 4)]);
    const warnings: string[] = [];
    const htpasswd = new Htpasswd(file, (m) => warnings.push(m), 0);
    assert.equal(await htpasswd.verify('hugo', 'hugo-pw'), true);

    // Replaced by a directory: it stats, but cannot be read.
    await rm(file);
    await mkdir(file);
    assert.equal(await htpasswd.verify('hugo', 'hugo-pw'), true);
    assert.equal(htpasswd.has('hugo'), true);
    assert.ok(
      warnings.some((w) => w.includes(file) && /keeping the previous entries/.test(w)),
      warnings.join('\n'),
    );

    // Gone: the same.
    await rm(file, { recursive: true });
    assert.equal(await htpasswd.verify('hugo', 'hugo-pw'), true);

    // Back, with another user.
    await writeHtpasswd(file, [bcryptEntry('nina', 'nina-pw', 'y', 4)]);
    assert.equal(await htpasswd.verify('nina', 'nina-pw'), true);
    assert.equal(await htpasswd.verify('hugo', 'hugo-pw'), false);
  });

  it('warns about each ignored line, naming its number', async () => {
    const file = path.join(work, 'warnings');
    await writeHtpasswd(file, [
      '# comment',
      shaEntry('sha', 'x'),
      bcryptEntry('ok', 'ok-pw', 'y', 4),
      'nohash',
      bcryptEntry('cost3', 'x', 'y', 4).replace(/\$04\$/, '$03$'),
      bcryptEntry('short', 'x', 'y', 4).slice(0, -1),
      `${bcryptEntry('long', 'x', 'y', 4)}x`,
    ]);
    const warnings: string[] = [];
    const htpasswd = new Htpasswd(file, (m) => warnings.push(m));
    assert.equal(htpasswd.has('ok'), true);
    assert.equal(htpasswd.has('sha'), false);
    for (const user of ['sha', 'nohash', 'cost3', 'short', 'long'])
      assert.equal(htpasswd.has(user), false, user);
    assert.deepEqual(warnings, [
      'htpasswd line 2 is not a bcrypt entry; ignored',
      'htpasswd line 4 is not a bcrypt entry; ignored',
      'htpasswd line 5 is not a bcrypt entry; ignored',
      'htpasswd line 6 is not a bcrypt entry; ignored',
      'htpasswd line 7 is not a bcrypt entry; ignored',
    ]);
  });
});
