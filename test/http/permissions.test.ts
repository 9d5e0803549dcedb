/**
 * The access-control permission matrix over HTTP (docs/configuration.md "Access control", WIRE.md "Token auth").
 *
 * Principals: a system admin, a namespace admin, a maintainer, a developer, a reader, a team member (maintainer
 * through the team), a robot with the developer role, a user with only a repository rule (developer on `app-*`),
 * an unrelated user, and anonymous callers (without credentials, and with an anonymous token). Each acts on two
 * repositories of a private namespace (`team`) and two of a public one (`pub`); one of each matches the rule.
 *
 * Every cell is one test whose label names the caller, the action, the repository and the expected answer:
 * allowed -> the action's 2xx; anonymous without credentials -> 401 UNAUTHORIZED with the Bearer challenge naming
 * the scope; a token lacking the scope the role would allow -> 401 with `error="insufficient_scope"`; an
 * authenticated caller whose role does not allow it -> 403 DENIED naming the repository.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Role } from '../../src/metadata/auth-store.ts';
import {
  assertError,
  createTestRegistry,
  descriptorOf,
  json,
  OCI_MANIFEST,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import {
  addNamespace,
  addRobot,
  addUser,
  basic,
  bearer,
  decodeJwt,
  getToken,
  invalidate,
  parseChallenge,
  pushBlobAs,
  pushImageAs,
  putManifestAs,
  tokenRequest,
  uniqueManifest,
  type Headers,
  type SeededImage,
} from '../helpers/auth.ts';

const REALM = 'http://localhost:80/auth/token';
const SERVICE = 'berth';

type Who =
  | 'sysadmin'
  | 'nsadmin'
  | 'maintainer'
  | 'developer'
  | 'reader'
  | 'teammember'
  | 'robot'
  | 'ruleuser'
  | 'outsider';

const WHO: readonly Who[] = [
  'sysadmin',
  'nsadmin',
  'maintainer',
  'developer',
  'reader',
  'teammember',
  'robot',
  'ruleuser',
  'outsider',
];

/** Login names and passwords. */
const LOGIN: Record<Who, [string, string]> = {
  sysadmin: ['root', 'root-pw-1'],
  nsadmin: ['nadia', 'nadia-pw-1'],
  maintainer: ['mona', 'mona-pw-1'],
  developer: ['dave', 'dave-pw-1'],
  reader: ['rita', 'rita-pw-1'],
  teammember: ['tess', 'tess-pw-1'],
  robot: ['robot$ci', 'robot-secret-1'],
  ruleuser: ['rudy', 'rudy-pw-1'],
  outsider: ['olga', 'olga-pw-1'],
};

const PRIVATE_NS = 'team';
const PUBLIC_NS = 'pub';
const REPOS = ['team/app-web', 'team/lib', 'pub/app-web', 'pub/lib'] as const;
type Repo = (typeof REPOS)[number];

type Perm = 'pull' | 'push' | 'delete' | 'overwrite';

const ROLE_PERMS: Record<Role | 'sysadmin', readonly Perm[]> = {
  reader: ['pull'],
  developer: ['pull', 'push'],
  maintainer: ['pull', 'push', 'delete', 'overwrite'],
  admin: ['pull', 'push', 'delete', 'overwrite'],
  sysadmin: ['pull', 'push', 'delete', 'overwrite'],
};

/** The role each principal holds on a repository (the same in both namespaces). */
function roleOf(who: Who | 'anonymous', repo: Repo): Role | 'sysadmin' | null {
  switch (who) {
    case 'sysadmin':
      return 'sysadmin';
    case 'nsadmin':
      return 'admin';
    case 'maintainer':
    case 'teammember':
      return 'maintainer';
    case 'developer':
    case 'robot':
      return 'developer';
    case 'reader':
      return 'reader';
    case 'ruleuser':
      return repo.split('/')[1]?.startsWith('app-') ? 'developer' : null;
    default:
      return null;
  }
}

function may(who: Who | 'anonymous', repo: Repo, perm: Perm): boolean {
  const role = roleOf(who, repo);
  if (role !== null && ROLE_PERMS[role].includes(perm)) return true;
  return perm === 'pull' && repo.startsWith(`${PUBLIC_NS}/`);
}

/** Repository fixtures: an image at `base` and a referrer of it. */
interface Fixture {
  readonly base: SeededImage;
}

interface Env {
  reg: TestRegistry;
  root: Headers;
  fixtures: Map<Repo, Fixture>;
  next(): number;
}

interface ActionSpec {
  readonly name: string;
  /** Every permission the action needs. */
  readonly needs: readonly Perm[];
  /** The permission checked before the handler runs (what a token must carry). */
  readonly gate: 'pull' | 'push' | 'delete';
  readonly success: number;
  /** Runs the action (after setting up its own fixture as root) with `headers`. */
  run(env: Env, repo: Repo, headers: Headers): Promise<Response & { verify?: () => Promise<void> }>;
}

/** The scope Docker asks for (and Berth's challenge names) for each gate. */
function scopeOf(gate: ActionSpec['gate'], repo: string): string {
  return gate === 'pull'
    ? `repository:${repo}:pull`
    : gate === 'push'
      ? `repository:${repo}:pull,push`
      : `repository:${repo}:delete`;
}

/** A scope that lacks the gate's action. */
function lackingScopeOf(gate: ActionSpec['gate'], repo: string): string {
  return gate === 'pull'
    ? 'registry:catalog:*'
    : gate === 'push'
      ? `repository:${repo}:pull`
      : `repository:${repo}:pull,push`;
}

function pathOf(location: unknown): string {
  const u = new URL(String(location), 'http://localhost');
  return `${u.pathname}${u.search}`;
}

async function manifestDigestAt(env: Env, repo: string, reference: string): Promise<string | null> {
  const res = await env.reg.inject({
    method: 'HEAD',
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { ...env.root, accept: OCI_MANIFEST },
  });
  return res.statusCode === 200 ? String(res.headers['docker-content-digest']) : null;
}

const ACTIONS: readonly ActionSpec[] = [
  {
    name: 'manifest GET',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) =>
      env.reg.inject({ method: 'GET', url: `/v2/${repo}/manifests/base`, headers }),
  },
  {
    name: 'manifest HEAD',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) =>
      env.reg.inject({ method: 'HEAD', url: `/v2/${repo}/manifests/base`, headers }),
  },
  {
    name: 'blob GET',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) =>
      env.reg.inject({
        method: 'GET',
        url: `/v2/${repo}/blobs/${env.fixtures.get(repo)!.base.layer.digest}`,
        headers,
      }),
  },
  {
    name: 'blob HEAD',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) =>
      env.reg.inject({
        method: 'HEAD',
        url: `/v2/${repo}/blobs/${env.fixtures.get(repo)!.base.layer.digest}`,
        headers,
      }),
  },
  {
    name: 'tags/list',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) => env.reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list`, headers }),
  },
  {
    name: 'referrers',
    needs: ['pull'],
    gate: 'pull',
    success: 200,
    run: (env, repo, headers) =>
      env.reg.inject({
        method: 'GET',
        url: `/v2/${repo}/referrers/${env.fixtures.get(repo)!.base.digest}`,
        headers,
      }),
  },
  {
    name: 'blob upload (POST, PATCH, PUT)',
    needs: ['push'],
    gate: 'push',
    success: 201,
    async run(env, repo, headers) {
      const bytes = randomBytes(40);
      const start = await env.reg.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/`, headers });
      if (start.statusCode !== 202) return start;
      const patch = await env.reg.inject({
        method: 'PATCH',
        url: pathOf(start.headers.location),
        headers: {
          ...headers,
          'content-type': 'application/octet-stream',
          'content-range': `0-${bytes.length - 1}`,
        },
        payload: bytes,
      });
      if (patch.statusCode !== 202) return patch;
      const u = new URL(String(patch.headers.location), 'http://localhost');
      u.searchParams.set('digest', sha256(bytes));
      return env.reg.inject({ method: 'PUT', url: `${u.pathname}${u.search}`, headers });
    },
  },
  {
    name: 'manifest PUT (new tag)',
    needs: ['push'],
    gate: 'push',
    success: 201,
    async run(env, repo, headers) {
      const { base } = env.fixtures.get(repo)!;
      const tag = `new-${env.next()}`;
      const res = await putManifestAs(env.reg, headers, repo, tag, uniqueManifest(base.config, base.layer));
      return Object.assign(res, {
        verify: async () => {
          const expected = res.statusCode === 201 ? res.headers['docker-content-digest'] : null;
          assert.equal(await manifestDigestAt(env, repo, tag), expected ?? null, 'tag state after the PUT');
        },
      });
    },
  },
  {
    name: 'overwrite (PUT moving an existing tag)',
    needs: ['push', 'overwrite'],
    gate: 'push',
    success: 201,
    async run(env, repo, headers) {
      const { base } = env.fixtures.get(repo)!;
      const tag = `ow-${env.next()}`;
      const first = await putManifestAs(
        env.reg,
        env.root,
        repo,
        tag,
        uniqueManifest(base.config, base.layer),
      );
      assert.equal(first.statusCode, 201, first.body);
      const before = String(first.headers['docker-content-digest']);
      const res = await putManifestAs(env.reg, headers, repo, tag, uniqueManifest(base.config, base.layer));
      return Object.assign(res, {
        verify: async () => {
          const expected = res.statusCode === 201 ? String(res.headers['docker-content-digest']) : before;
          assert.equal(await manifestDigestAt(env, repo, tag), expected, 'tag target after the PUT');
        },
      });
    },
  },
  {
    name: 'manifest DELETE (by digest)',
    needs: ['delete'],
    gate: 'delete',
    success: 202,
    async run(env, repo, headers) {
      const { base } = env.fixtures.get(repo)!;
      const bytes = uniqueManifest(base.config, base.layer);
      const digest = sha256(bytes);
      assert.equal((await putManifestAs(env.reg, env.root, repo, digest, bytes)).statusCode, 201);
      const res = await env.reg.inject({ method: 'DELETE', url: `/v2/${repo}/manifests/${digest}`, headers });
      return Object.assign(res, {
        verify: async () => {
          const gone = res.statusCode === 202;
          assert.equal(await manifestDigestAt(env, repo, digest), gone ? null : digest, 'manifest after');
        },
      });
    },
  },
  {
    name: 'tag DELETE',
    needs: ['delete'],
    gate: 'delete',
    success: 202,
    async run(env, repo, headers) {
      const { base } = env.fixtures.get(repo)!;
      const tag = `del-${env.next()}`;
      const put = await putManifestAs(env.reg, env.root, repo, tag, uniqueManifest(base.config, base.layer));
      assert.equal(put.statusCode, 201);
      const digest = String(put.headers['docker-content-digest']);
      const res = await env.reg.inject({ method: 'DELETE', url: `/v2/${repo}/manifests/${tag}`, headers });
      return Object.assign(res, {
        verify: async () => {
          const gone = res.statusCode === 202;
          assert.equal(await manifestDigestAt(env, repo, tag), gone ? null : digest, 'tag after');
        },
      });
    },
  },
  {
    name: 'blob DELETE',
    needs: ['delete'],
    gate: 'delete',
    success: 202,
    async run(env, repo, headers) {
      const digest = await pushBlobAs(env.reg, env.root, repo, randomBytes(33));
      const res = await env.reg.inject({ method: 'DELETE', url: `/v2/${repo}/blobs/${digest}`, headers });
      return Object.assign(res, {
        verify: async () => {
          const head = await env.reg.inject({
            method: 'HEAD',
            url: `/v2/${repo}/blobs/${digest}`,
            headers: env.root,
          });
          assert.equal(head.statusCode, res.statusCode === 202 ? 404 : 200, 'blob after');
        },
      });
    },
  },
];

/** How the caller presents itself. */
type Mode =
  | { kind: 'token'; who: Who }
  | { kind: 'basic'; who: Who }
  | { kind: 'lacking-scope'; who: Who }
  | { kind: 'anonymous' }
  | { kind: 'anonymous-token' };

type Expected =
  | { status: number; code: null }
  | { status: 401; code: 'UNAUTHORIZED'; scope: string; error: 'insufficient_scope' | null }
  | { status: 403; code: 'DENIED' };

function expectedFor(mode: Mode, repo: Repo, action: ActionSpec): Expected {
  const subject = 'who' in mode ? mode.who : 'anonymous';
  const allowed = action.needs.every((p) => may(subject, repo, p));
  const scope = scopeOf(action.gate, repo);
  switch (mode.kind) {
    case 'token':
    case 'basic':
      return allowed ? { status: action.success, code: null } : { status: 403, code: 'DENIED' };
    case 'anonymous':
      return allowed
        ? { status: action.success, code: null }
        : { status: 401, code: 'UNAUTHORIZED', scope, error: null };
    case 'anonymous-token':
      return allowed
        ? { status: action.success, code: null }
        : { status: 401, code: 'UNAUTHORIZED', scope, error: 'insufficient_scope' };
    case 'lacking-scope':
      return may(subject, repo, action.gate)
        ? { status: 401, code: 'UNAUTHORIZED', scope, error: 'insufficient_scope' }
        : { status: 403, code: 'DENIED' };
  }
}

function describeExpected(e: Expected): string {
  if (e.code === null) return `${e.status}`;
  if (e.code === 'DENIED') return '403 DENIED';
  return `401 UNAUTHORIZED${e.error ? ` (${e.error})` : ''}`;
}

function modeLabel(mode: Mode): string {
  switch (mode.kind) {
    case 'token':
      return `bearer token: ${mode.who}`;
    case 'basic':
      return `Basic on /v2: ${mode.who}`;
    case 'lacking-scope':
      return `token lacking the scope: ${mode.who}`;
    case 'anonymous':
      return 'anonymous, no credentials';
    case 'anonymous-token':
      return 'anonymous token';
  }
}

function challengeOf(scope: string | null, error: string | null = null): string {
  let h = `Bearer realm="${REALM}",service="${SERVICE}"`;
  if (scope !== null) h += `,scope="${scope}"`;
  if (error !== null) h += `,error="${error}"`;
  return h;
}

function assertOutcome(res: Response, e: Expected, repo: string): void {
  if (e.code === null) {
    assert.equal(res.statusCode, e.status, `expected ${e.status}, got ${res.statusCode} ${res.body}`);
    return;
  }
  assertError(res, e.status, e.code);
  if (e.code === 'UNAUTHORIZED') {
    assert.equal(res.headers['www-authenticate'], challengeOf(e.scope, e.error));
  } else {
    assert.equal(res.headers['www-authenticate'], undefined, 'no challenge on 403');
    if (res.raw.req.method !== 'HEAD') {
      const message = json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '';
      assert.ok(message.includes(repo), `message names ${repo}: ${message}`);
    }
  }
}

/** Builds the shared fixture: users, team, robot, namespaces, roles, a rule, and an image per repository. */
async function setup(overrides: Record<string, unknown> = {}): Promise<Env> {
  const reg = await createTestRegistry({ 'auth.mode': 'token', ...overrides });
  const store = reg.services.auth.store;
  for (const who of WHO) {
    const [name, password] = LOGIN[who];
    if (who === 'robot') await addRobot(reg, name, password);
    else await addUser(reg, name, password, { admin: who === 'sysadmin' });
  }
  await store.createTeam({ name: 'builders', description: '' });
  await store.addTeamMember('builders', LOGIN.teammember[0]);
  for (const [ns, visibility] of [
    [PRIVATE_NS, 'private'],
    [PUBLIC_NS, 'public'],
  ] as const) {
    await addNamespace(reg, ns, visibility, [
      ['user', LOGIN.nsadmin[0], 'admin'],
      ['user', LOGIN.maintainer[0], 'maintainer'],
      ['user', LOGIN.developer[0], 'developer'],
      ['user', LOGIN.reader[0], 'reader'],
      ['team', 'builders', 'maintainer'],
      ['robot', LOGIN.robot[0], 'developer'],
    ]);
    await store.addRule({
      namespace: ns,
      pattern: 'app-*',
      kind: 'user',
      principal: LOGIN.ruleuser[0],
      role: 'developer',
    });
  }
  const root = basic(...LOGIN.sysadmin);
  const fixtures = new Map<Repo, Fixture>();
  for (const repo of REPOS) {
    const base = await pushImageAs(reg, root, repo, 'base');
    // A referrer, so the referrers listing has something to show.
    await pushImageAs(reg, root, repo, null, { subject: descriptorOf(base.bytes, OCI_MANIFEST) });
    fixtures.set(repo, { base });
  }
  let counter = 0;
  return { reg, root, fixtures, next: () => ++counter };
}

describe('permission matrix (auth.mode token)', () => {
  let env: Env;
  const tokens = new Map<string, string>();

  /** A token for `who` with `scope`, from GET /auth/token with Basic credentials (cached per scope). */
  const tokenFor = async (who: Who | null, scope: string): Promise<string> => {
    const key = `${who ?? ''} ${scope}`;
    let token = tokens.get(key);
    if (token === undefined) {
      token = await getToken(env.reg, who === null ? {} : basic(...LOGIN[who]), [scope]);
      tokens.set(key, token);
    }
    return token;
  };

  const headersFor = async (mode: Mode, repo: Repo, action: ActionSpec): Promise<Headers> => {
    switch (mode.kind) {
      case 'token':
        return bearer(await tokenFor(mode.who, scopeOf(action.gate, repo)));
      case 'lacking-scope':
        return bearer(await tokenFor(mode.who, lackingScopeOf(action.gate, repo)));
      case 'basic':
        return basic(...LOGIN[mode.who]);
      case 'anonymous':
        return {};
      case 'anonymous-token':
        return bearer(await tokenFor(null, scopeOf(action.gate, repo)));
    }
  };

  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.reg.dispose();
  });

  const modes: Mode[] = [
    ...WHO.map((who): Mode => ({ kind: 'token', who })),
    ...WHO.map((who): Mode => ({ kind: 'basic', who })),
    { kind: 'anonymous' },
    { kind: 'anonymous-token' },
    ...WHO.map((who): Mode => ({ kind: 'lacking-scope', who })),
  ];
  for (const mode of modes) {
    describe(modeLabel(mode), () => {
      for (const repo of REPOS) {
        for (const action of ACTIONS) {
          const expected = expectedFor(mode, repo, action);
          it(`${action.name} on ${repo} -> ${describeExpected(expected)}`, async () => {
            const res = await action.run(env, repo, await headersFor(mode, repo, action));
            assertOutcome(res, expected, repo);
            await res.verify?.();
          });
        }
      }
    });
  }

  describe('catalog and search show only what the caller may pull', () => {
    const visibleTo = (who: Who | 'anonymous'): string[] => REPOS.filter((r) => may(who, r, 'pull')).sort();

    for (const who of WHO) {
      const expected = visibleTo(who);
      it(`catalog, bearer token: ${who} -> ${JSON.stringify(expected)}`, async () => {
        const res = await env.reg.inject({
          method: 'GET',
          url: '/v2/_catalog',
          headers: bearer(await tokenFor(who, 'registry:catalog:*')),
        });
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(json(res), { repositories: expected });
      });
      it(`catalog, Basic: ${who} -> ${JSON.stringify(expected)}`, async () => {
        const res = await env.reg.inject({
          method: 'GET',
          url: '/v2/_catalog',
          headers: basic(...LOGIN[who]),
        });
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(json(res), { repositories: expected });
      });
      it(`catalog, token without registry:catalog:*: ${who} -> 401 insufficient_scope`, async () => {
        const res = await env.reg.inject({
          method: 'GET',
          url: '/v2/_catalog',
          headers: bearer(await tokenFor(who, 'repository:pub/lib:pull')),
        });
        assertError(res, 401, 'UNAUTHORIZED');
        assert.equal(
          res.headers['www-authenticate'],
          challengeOf('registry:catalog:*', 'insufficient_scope'),
        );
      });
      it(`search, bearer token: ${who} -> ${JSON.stringify(expected)}`, async () => {
        const res = await env.reg.inject({
          method: 'GET',
          url: '/v1/search?q=',
          headers: bearer(await tokenFor(who, 'registry:catalog:search')),
        });
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(
          json<{ results: { name: string }[] }>(res).results.map((r) => r.name),
          expected,
        );
      });
      it(`search, Basic: ${who} -> ${JSON.stringify(expected)}`, async () => {
        const res = await env.reg.inject({
          method: 'GET',
          url: '/v1/search?q=',
          headers: basic(...LOGIN[who]),
        });
        assert.equal(res.statusCode, 200, res.body);
        const body = json<{ num_results: number; results: { name: string }[] }>(res);
        assert.deepEqual(
          body.results.map((r) => r.name),
          expected,
        );
        assert.equal(body.num_results, expected.length);
      });
    }
    it('catalog, anonymous without credentials -> 401 with the registry:catalog:* challenge', async () => {
      const res = await env.reg.inject({ method: 'GET', url: '/v2/_catalog' });
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], challengeOf('registry:catalog:*'));
    });
    it('catalog, anonymous token -> the public namespace only', async () => {
      const res = await env.reg.inject({
        method: 'GET',
        url: '/v2/_catalog',
        headers: bearer(await tokenFor(null, 'registry:catalog:*')),
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(json(res), { repositories: visibleTo('anonymous') });
    });
    it('search, anonymous without credentials -> the public namespace only', async () => {
      const res = await env.reg.inject({ method: 'GET', url: '/v1/search?q=' });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(
        json<{ results: { name: string }[] }>(res).results.map((r) => r.name),
        visibleTo('anonymous'),
      );
    });
    it('catalog pagination counts only visible repositories (n=1 for the rule user)', async () => {
      const headers = basic(...LOGIN.ruleuser);
      const first = await env.reg.inject({ method: 'GET', url: '/v2/_catalog?n=1', headers });
      assert.deepEqual(json(first), { repositories: ['pub/app-web'] });
      assert.equal(first.headers.link, '</v2/_catalog?last=pub%2Fapp-web&n=1>; rel="next"');
      const second = await env.reg.inject({
        method: 'GET',
        url: '/v2/_catalog?n=1&last=pub/app-web',
        headers,
      });
      assert.deepEqual(json(second), { repositories: ['pub/lib'] });
      const third = await env.reg.inject({ method: 'GET', url: '/v2/_catalog?n=1&last=pub/lib', headers });
      assert.deepEqual(json(third), { repositories: ['team/app-web'] });
      assert.equal(third.headers.link, undefined, 'team/lib is not visible, so nothing remains');
    });
  });

  describe('base endpoint /v2/', () => {
    it('anonymous -> 401 with the Bearer challenge without scope', async () => {
      const res = await env.reg.inject({ method: 'GET', url: '/v2/' });
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], challengeOf(null));
    });
    for (const who of WHO) {
      it(`${who} with a token without scope -> 200`, async () => {
        const token = await getToken(env.reg, basic(...LOGIN[who]), []);
        const res = await env.reg.inject({ method: 'GET', url: '/v2/', headers: bearer(token) });
        assert.equal(res.statusCode, 200, res.body);
      });
      it(`${who} with Basic -> 200`, async () => {
        const res = await env.reg.inject({ method: 'GET', url: '/v2/', headers: basic(...LOGIN[who]) });
        assert.equal(res.statusCode, 200, res.body);
      });
    }
    it('wrong Basic password on /v2 -> 401 with the Bearer challenge', async () => {
      const res = await env.reg.inject({ method: 'GET', url: '/v2/', headers: basic('dave', 'nope') });
      assertError(res, 401, 'UNAUTHORIZED');
      assert.equal(parseChallenge(res.headers['www-authenticate']).scheme, 'Bearer');
    });
  });
});

describe('personal namespaces', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'token' });
    await addUser(reg, 'alice', 'alice-pw');
    await addUser(reg, 'bob', 'bob-pw');
  });
  after(async () => {
    await reg.dispose();
  });

  it('alice pushes, overwrites and deletes in alice/* without any namespace record', async () => {
    const alice = basic('alice', 'alice-pw');
    const img = await pushImageAs(reg, alice, 'alice/tools/cli', 'v1');
    const moved = await putManifestAs(
      reg,
      alice,
      'alice/tools/cli',
      'v1',
      uniqueManifest(img.config, img.layer),
    );
    assert.equal(moved.statusCode, 201, moved.body);
    const del = await reg.inject({
      method: 'DELETE',
      url: `/v2/alice/tools/cli/manifests/${img.digest}`,
      headers: alice,
    });
    assert.equal(del.statusCode, 202, del.body);
  });

  it('alice gets every action in a token for alice/x, bob none', async () => {
    const scope = 'repository:alice/x:*';
    const aliceToken = await tokenRequest(reg, basic('alice', 'alice-pw'), [scope]);
    const bobToken = await tokenRequest(reg, basic('bob', 'bob-pw'), [scope]);
    const access = (res: Response): unknown =>
      JSON.parse(
        Buffer.from(json<{ token: string }>(res).token.split('.')[1] as string, 'base64url').toString(),
      ).access;
    assert.deepEqual(access(aliceToken), [
      { type: 'repository', name: 'alice/x', actions: ['pull', 'push', 'delete'] },
    ]);
    assert.deepEqual(access(bobToken), []);
  });

  it('bob may not pull or push in alice/* -> 403 DENIED', async () => {
    const bob = basic('bob', 'bob-pw');
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/alice/tools/cli/tags/list', headers: bob }),
      403,
      'DENIED',
    );
    assertError(
      await reg.inject({ method: 'POST', url: '/v2/alice/new/blobs/uploads/', headers: bob }),
      403,
      'DENIED',
    );
  });

  it('a namespace named like a user is not theirs for a robot of similar name', async () => {
    await addRobot(reg, 'robot$alice', 'robot-alice-secret');
    const res = await reg.inject({
      method: 'POST',
      url: '/v2/alice/new/blobs/uploads/',
      headers: basic('robot$alice', 'robot-alice-secret'),
    });
    assertError(res, 403, 'DENIED');
  });
});

describe('auth.personalNamespaces: false', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'token', 'auth.personalNamespaces': false });
    await addUser(reg, 'alice', 'alice-pw');
  });
  after(async () => {
    await reg.dispose();
  });

  it('alice has no rights in alice/* -> 403 DENIED, and her token grants nothing there', async () => {
    const res = await reg.inject({
      method: 'POST',
      url: '/v2/alice/x/blobs/uploads/',
      headers: basic('alice', 'alice-pw'),
    });
    assertError(res, 403, 'DENIED');
    const token = await tokenRequest(reg, basic('alice', 'alice-pw'), ['repository:alice/x:*']);
    assert.deepEqual(decodeJwt(json<{ token: string }>(token).token).payload.access, []);
  });
});

describe('account state is checked live', () => {
  let env: Env;
  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.reg.dispose();
  });

  const assertInvalidToken = (res: Response): void => {
    assertError(res, 401, 'UNAUTHORIZED');
    const challenge = parseChallenge(res.headers['www-authenticate']);
    assert.equal(challenge.params.error, 'invalid_token');
  };

  it("a disabled user's still-valid token is refused at once, as are new tokens and Basic", async () => {
    const { reg } = env;
    const repo = 'team/app-web';
    const { base } = env.fixtures.get(repo)!;
    const mona = basic(...LOGIN.maintainer);
    const token = await getToken(reg, mona, [`repository:${repo}:pull,push`]);
    // Works before.
    const ok = await putManifestAs(reg, bearer(token), repo, 'base', uniqueManifest(base.config, base.layer));
    assert.equal(ok.statusCode, 201, ok.body);

    await reg.services.auth.store.updateUser('mona', { disabled: true });
    invalidate(reg);
    try {
      assertInvalidToken(
        await putManifestAs(reg, bearer(token), repo, 'base', uniqueManifest(base.config, base.layer)),
      );
      assertInvalidToken(
        await reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list`, headers: bearer(token) }),
      );
      assertInvalidToken(await reg.inject({ method: 'GET', url: '/v2/_catalog', headers: bearer(token) }));
      const fresh = await tokenRequest(reg, mona, [`repository:${repo}:pull`]);
      assertError(fresh, 401, 'UNAUTHORIZED');
      const viaBasic = await reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list`, headers: mona });
      assertError(viaBasic, 401, 'UNAUTHORIZED');
    } finally {
      await reg.services.auth.store.updateUser('mona', { disabled: false });
      invalidate(reg);
    }
  });

  it("a deleted user's token is refused, and a recreated user of that name gets no rights from it", async () => {
    const { reg } = env;
    await addUser(reg, 'temp', 'temp-pw-1');
    await reg.services.auth.store.setMember('team', 'user', 'temp', 'developer');
    const token = await getToken(reg, basic('temp', 'temp-pw-1'), ['repository:team/lib:pull,push']);
    const tags = () => reg.inject({ method: 'GET', url: '/v2/team/lib/tags/list', headers: bearer(token) });
    assert.equal((await tags()).statusCode, 200);
    await reg.services.auth.store.deleteUser('temp');
    invalidate(reg);
    assertInvalidToken(await tags());
    await addUser(reg, 'temp', 'temp-pw-2');
    invalidate(reg);
    assertError(await tags(), 403, 'DENIED');
  });

  it('a token loses at once what a removed membership granted, and the denied push is audited', async () => {
    const { reg } = env;
    const repo = 'team/lib';
    const { base } = env.fixtures.get(repo)!;
    await addUser(reg, 'leaver', 'leaver-pw-1');
    await reg.services.auth.store.setMember('team', 'user', 'leaver', 'developer');
    const token = await getToken(reg, basic('leaver', 'leaver-pw-1'), [`repository:${repo}:pull,push`]);
    const push = () =>
      putManifestAs(
        reg,
        bearer(token),
        repo,
        `leaver-${randomBytes(4).toString('hex')}`,
        uniqueManifest(base.config, base.layer),
      );
    assert.equal((await push()).statusCode, 201);

    await reg.services.auth.store.setMember('team', 'user', 'leaver', 'reader');
    invalidate(reg);
    assertError(await push(), 403, 'DENIED');
    const pull = await reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list`, headers: bearer(token) });
    assert.equal(pull.statusCode, 200, 'pull is still granted by both');

    await reg.services.auth.store.removeMember('team', 'user', 'leaver');
    invalidate(reg);
    assertError(
      await reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list`, headers: bearer(token) }),
      403,
      'DENIED',
    );
    const denials = await reg.services.auth.store.queryAudit({ actor: 'leaver', success: false, limit: 10 });
    assert.equal(denials.items.length, 1, 'pull denials are not audited');
    assert.equal(denials.items[0]?.action, 'push');
    assert.match(String(denials.items[0]?.target), /^team\/lib:leaver-/);
  });

  it('another instance, which nobody told, applies a removal within auth.cacheTtl', async () => {
    const { reg } = env;
    const second = await createTestRegistry(
      { 'auth.mode': 'token', 'auth.cacheTtl': '200ms' },
      { dataDir: reg.dataDir },
    );
    try {
      await addUser(reg, 'mover', 'mover-pw-1');
      await reg.services.auth.store.setMember('team', 'user', 'mover', 'reader');
      const token = await getToken(reg, basic('mover', 'mover-pw-1'), ['repository:team/lib:pull']);
      const pull = () =>
        second.inject({ method: 'GET', url: '/v2/team/lib/tags/list', headers: bearer(token) });
      assert.equal((await pull()).statusCode, 200);
      await reg.services.auth.store.removeMember('team', 'user', 'mover');
      let status = 200;
      for (let i = 0; i < 100 && status === 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await pull()).statusCode;
      }
      assert.equal(status, 403, 'refused once the cached roles expired');
    } finally {
      await second.close();
    }
  });

  it('a revoked robot cannot get tokens nor use Basic', async () => {
    const { reg } = env;
    await addRobot(reg, 'robot$revoked', 'revoked-secret');
    await reg.services.auth.store.setMember('team', 'robot', 'robot$revoked', 'developer');
    const creds = basic('robot$revoked', 'revoked-secret');
    assert.equal((await tokenRequest(reg, creds, ['repository:team/lib:pull'])).statusCode, 200);
    await reg.services.auth.store.updateRobot('robot$revoked', { revokedAt: new Date() });
    invalidate(reg);
    assertError(await tokenRequest(reg, creds, ['repository:team/lib:pull']), 401, 'UNAUTHORIZED');
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/team/lib/tags/list', headers: creds }),
      401,
      'UNAUTHORIZED',
    );
  });

  it("a revoked robot's still-valid token is refused", async () => {
    const { reg } = env;
    await addRobot(reg, 'robot$maint', 'maint-secret');
    await reg.services.auth.store.setMember('team', 'robot', 'robot$maint', 'maintainer');
    const repo = 'team/lib';
    const { base } = env.fixtures.get(repo)!;
    const token = await getToken(reg, basic('robot$maint', 'maint-secret'), [`repository:${repo}:pull,push`]);
    const ok = await putManifestAs(reg, bearer(token), repo, 'base', uniqueManifest(base.config, base.layer));
    assert.equal(ok.statusCode, 201, ok.body);
    await reg.services.auth.store.updateRobot('robot$maint', { revokedAt: new Date() });
    invalidate(reg);
    const denied = await putManifestAs(
      reg,
      bearer(token),
      repo,
      'base',
      uniqueManifest(base.config, base.layer),
    );
    assertInvalidToken(denied);
  });

  it('an expired robot cannot get tokens nor use Basic', async () => {
    const { reg } = env;
    await addRobot(reg, 'robot$old', 'old-secret', { expiresAt: new Date(Date.now() - 1000) });
    await reg.services.auth.store.setMember('team', 'robot', 'robot$old', 'reader');
    const creds = basic('robot$old', 'old-secret');
    assertError(await tokenRequest(reg, creds, ['repository:team/lib:pull']), 401, 'UNAUTHORIZED');
    assertError(
      await reg.inject({ method: 'GET', url: '/v2/team/lib/tags/list', headers: creds }),
      401,
      'UNAUTHORIZED',
    );
  });

  it('a role change takes effect for Basic callers once caches are invalidated', async () => {
    const { reg } = env;
    const rita = basic(...LOGIN.reader);
    assertError(
      await reg.inject({ method: 'POST', url: '/v2/team/lib/blobs/uploads/', headers: rita }),
      403,
      'DENIED',
    );
    await reg.services.auth.store.setMember('team', 'user', 'rita', 'developer');
    invalidate(reg);
    const res = await reg.inject({ method: 'POST', url: '/v2/team/lib/blobs/uploads/', headers: rita });
    assert.equal(res.statusCode, 202, res.body);
    await reg.services.auth.store.setMember('team', 'user', 'rita', 'reader');
    invalidate(reg);
  });
});

describe('cross-repository mount', () => {
  let env: Env;
  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.reg.dispose();
  });

  const mount = (
    env: Env,
    target: string,
    digest: string,
    from: string,
    headers: Headers,
  ): Promise<Response> =>
    env.reg.inject({
      method: 'POST',
      url: `/v2/${target}/blobs/uploads/?mount=${digest}&from=${from}`,
      headers,
    });

  // The developer may push team/* and pub/*; the rule user may push only */app-*, and pull pub/* and team/app-*.
  const cases: { who: Who; target: Repo; from: Repo; via: 'token' | 'basic'; status: 201 | 202 }[] = [
    { who: 'developer', target: 'team/lib', from: 'team/app-web', via: 'basic', status: 201 },
    { who: 'developer', target: 'team/lib', from: 'team/app-web', via: 'token', status: 201 },
    { who: 'ruleuser', target: 'team/app-web', from: 'team/lib', via: 'basic', status: 202 },
    { who: 'ruleuser', target: 'team/app-web', from: 'team/lib', via: 'token', status: 202 },
    { who: 'ruleuser', target: 'team/app-web', from: 'pub/lib', via: 'basic', status: 201 },
    { who: 'ruleuser', target: 'team/app-web', from: 'pub/lib', via: 'token', status: 201 },
  ];
  for (const c of cases) {
    it(`${c.via} ${c.who}: mount into ${c.target} from ${c.from} -> ${c.status}`, async () => {
      const digest = await pushBlobAs(env.reg, env.root, c.from, randomBytes(50));
      const headers =
        c.via === 'basic'
          ? basic(...LOGIN[c.who])
          : bearer(
              await getToken(env.reg, basic(...LOGIN[c.who]), [
                `repository:${c.target}:pull,push`,
                `repository:${c.from}:pull`,
              ]),
            );
      const res = await mount(env, c.target, digest, c.from, headers);
      assert.equal(res.statusCode, c.status, res.body);
      if (c.status === 202) {
        assert.match(String(res.headers.location), new RegExp(`/v2/${c.target}/blobs/uploads/`));
        const head = await env.reg.inject({
          method: 'HEAD',
          url: `/v2/${c.target}/blobs/${digest}`,
          headers: env.root,
        });
        assert.equal(head.statusCode, 404, 'the blob was not mounted');
      }
    });
  }

  it('the challenge for a mount asks for pull on `from` too', async () => {
    const digest = await pushBlobAs(env.reg, env.root, 'team/app-web', randomBytes(50));
    const res = await mount(env, 'team/lib', digest, 'team/app-web', {});
    assertError(res, 401, 'UNAUTHORIZED');
    const challenge = parseChallenge(res.headers['www-authenticate']);
    assert.equal(challenge.params.scope, 'repository:team/lib:pull,push repository:team/app-web:pull');
    // A token for exactly what the challenge asked mounts.
    const token = await getToken(env.reg, basic(...LOGIN.developer), challenge.params.scope!.split(' '));
    assert.equal((await mount(env, 'team/lib', digest, 'team/app-web', bearer(token))).statusCode, 201);
  });

  it('a token without pull on `from` is sent back for one when the role allows it, else falls back to 202', async () => {
    const digest = await pushBlobAs(env.reg, env.root, 'team/app-web', randomBytes(50));
    const token = await getToken(env.reg, basic(...LOGIN.developer), ['repository:team/lib:pull,push']);
    const res = await mount(env, 'team/lib', digest, 'team/app-web', bearer(token));
    assertError(res, 401, 'UNAUTHORIZED');
    const challenge = parseChallenge(res.headers['www-authenticate']);
    assert.equal(challenge.params.error, 'insufficient_scope');
    assert.equal(challenge.params.scope, 'repository:team/lib:pull,push repository:team/app-web:pull');

    // The rule user may push team/app-* but not pull team/lib: its token cannot get better, so no loop.
    const fromLib = await pushBlobAs(env.reg, env.root, 'team/lib', randomBytes(50));
    const rudy = await getToken(env.reg, basic(...LOGIN.ruleuser), ['repository:team/app-web:pull,push']);
    assert.equal((await mount(env, 'team/app-web', fromLib, 'team/lib', bearer(rudy))).statusCode, 202);
  });

  it('a mount without `from` is not attempted under access control (202)', async () => {
    const digest = await pushBlobAs(env.reg, env.root, 'team/app-web', randomBytes(50));
    const res = await env.reg.inject({
      method: 'POST',
      url: `/v2/team/lib/blobs/uploads/?mount=${digest}`,
      headers: basic(...LOGIN.developer),
    });
    assert.equal(res.statusCode, 202, res.body);
  });

  it('a mount into a repository the caller cannot push is 403, whatever `from`', async () => {
    const digest = await pushBlobAs(env.reg, env.root, 'pub/lib', randomBytes(50));
    const res = await mount(env, 'team/lib', digest, 'pub/lib', basic(...LOGIN.reader));
    assertError(res, 403, 'DENIED');
  });
});

describe('auth.mode basic', () => {
  let env: Env;
  before(async () => {
    env = await setup({ 'auth.mode': 'basic' });
  });
  after(async () => {
    await env.reg.dispose();
  });
  const BASIC_CHALLENGE = `Basic realm="${SERVICE}",charset="UTF-8"`;

  const cases: {
    label: string;
    method: 'GET' | 'POST';
    url: string;
    headers: () => Headers;
    status: number;
  }[] = [
    { label: 'anonymous GET /v2/', method: 'GET', url: '/v2/', headers: () => ({}), status: 401 },
    {
      label: 'anonymous pull from the private namespace',
      method: 'GET',
      url: '/v2/team/lib/tags/list',
      headers: () => ({}),
      status: 401,
    },
    {
      label: 'anonymous pull from the public namespace',
      method: 'GET',
      url: '/v2/pub/lib/tags/list',
      headers: () => ({}),
      status: 200,
    },
    {
      label: 'anonymous push to the public namespace',
      method: 'POST',
      url: '/v2/pub/lib/blobs/uploads/',
      headers: () => ({}),
      status: 401,
    },
    { label: 'anonymous catalog', method: 'GET', url: '/v2/_catalog', headers: () => ({}), status: 401 },
    {
      label: 'wrong password',
      method: 'GET',
      url: '/v2/',
      headers: () => basic('dave', 'wrong'),
      status: 401,
    },
    {
      label: 'a bearer token (no token service in basic mode)',
      method: 'GET',
      url: '/v2/',
      headers: () => bearer('abc.def.ghi'),
      status: 401,
    },
    {
      label: 'developer GET /v2/',
      method: 'GET',
      url: '/v2/',
      headers: () => basic(...LOGIN.developer),
      status: 200,
    },
    {
      label: 'developer push',
      method: 'POST',
      url: '/v2/team/lib/blobs/uploads/',
      headers: () => basic(...LOGIN.developer),
      status: 202,
    },
    {
      label: 'reader push',
      method: 'POST',
      url: '/v2/team/lib/blobs/uploads/',
      headers: () => basic(...LOGIN.reader),
      status: 403,
    },
    {
      label: 'outsider pull from the private namespace',
      method: 'GET',
      url: '/v2/team/lib/tags/list',
      headers: () => basic(...LOGIN.outsider),
      status: 403,
    },
    {
      label: 'robot pull from the private namespace',
      method: 'GET',
      url: '/v2/team/lib/tags/list',
      headers: () => basic(...LOGIN.robot),
      status: 200,
    },
  ];
  for (const c of cases) {
    it(`${c.label} -> ${c.status}${c.status === 401 ? ' with the Basic challenge' : ''}`, async () => {
      const res = await env.reg.inject({ method: c.method, url: c.url, headers: c.headers() });
      if (c.status === 401) {
        assertError(res, 401, 'UNAUTHORIZED');
        assert.equal(res.headers['www-authenticate'], BASIC_CHALLENGE);
      } else if (c.status === 403) {
        assertError(res, 403, 'DENIED');
      } else {
        assert.equal(res.statusCode, c.status, res.body);
      }
    });
  }

  it('catalog with Basic lists what the caller may pull', async () => {
    const res = await env.reg.inject({
      method: 'GET',
      url: '/v2/_catalog',
      headers: basic(...LOGIN.outsider),
    });
    assert.deepEqual(json(res), { repositories: ['pub/app-web', 'pub/lib'] });
  });

  it('there is no token endpoint', async () => {
    const res = await env.reg.inject({ method: 'GET', url: '/auth/token?service=berth' });
    assert.equal(res.statusCode, 404);
  });
});

describe('auth.mode none stays fully open', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('GET /v2/ answers 200 without a challenge', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['www-authenticate'], undefined);
  });

  it('anonymous push, overwrite, pull, catalog, search, mount and delete all succeed', async () => {
    const img = await pushImageAs(reg, {}, 'any/repo', 'v1');
    const moved = await putManifestAs(reg, {}, 'any/repo', 'v1', uniqueManifest(img.config, img.layer));
    assert.equal(moved.statusCode, 201);
    assert.equal((await reg.inject({ method: 'GET', url: '/v2/any/repo/tags/list' })).statusCode, 200);
    assert.deepEqual(json(await reg.inject({ method: 'GET', url: '/v2/_catalog' })), {
      repositories: ['any/repo'],
    });
    const search = await reg.inject({ method: 'GET', url: '/v1/search?q=repo' });
    assert.equal(json<{ num_results: number }>(search).num_results, 1);
    const mount = await reg.inject({
      method: 'POST',
      url: `/v2/other/repo/blobs/uploads/?mount=${img.layer.digest}&from=any/repo`,
    });
    assert.equal(mount.statusCode, 201);
    const del = await reg.inject({ method: 'DELETE', url: `/v2/any/repo/manifests/${img.digest}` });
    assert.equal(del.statusCode, 202);
    const blobDel = await reg.inject({ method: 'DELETE', url: `/v2/any/repo/blobs/${img.layer.digest}` });
    assert.equal(blobDel.statusCode, 202);
  });

  it('credentials of any kind are ignored', async () => {
    for (const headers of [basic('nobody', 'x'), bearer('garbage'), { authorization: 'Weird x' }]) {
      const res = await reg.inject({ method: 'GET', url: '/v2/', headers });
      assert.equal(res.statusCode, 200);
    }
  });

  it('there is no token endpoint', async () => {
    assert.equal((await reg.inject({ method: 'GET', url: '/auth/token' })).statusCode, 404);
  });
});
