/**
 * The contract test suite of `AuthStore` (see `../auth-store.ts`), run against every implementation.
 *
 * Decisions the contract leaves open, pinned here:
 * - Reads about an absent principal or namespace (`membershipsOf`, `rulesOf`, `listMembers`, `listRules`,
 *   `listTeamMembers`, `teamsOf`) return [] rather than throwing; so do `removeMember`/`removeTeamMember` (false).
 * - `listMembers` sorts kinds byte-wise (`robot` < `team` < `user`), then principals byte-wise.
 * - `membershipsOf` is sorted by namespace, kind, principal; `listRules` by id (creation order); `rulesOf` by
 *   namespace, then id. A user's membership through a team names the team as principal (kind `team`).
 * - `setMember` on an existing (namespace, kind, principal) changes the role in place: still one member.
 * - `revokeRefreshToken` returns false when the token is absent or already revoked (its revokedAt is kept);
 *   `revokeRefreshTokensOf` counts only tokens it revoked now.
 * - Deleting a user or robot keeps its refresh tokens, revoked; tokens of the other kind with the same subject
 *   name are untouched. Robots created by a deleted user keep `createdBy`.
 * - `touchRobot` never moves `lastUsedAt` backwards and ignores unknown robots.
 * - `updateRobot`/`updateNamespace` without changes return the current record (null when absent).
 * - `queryAudit`: `since` is inclusive, `until` exclusive (on the event's `time`).
 * - `retireSigningKey` keeps the first retiredAt; `listSigningKeys` is newest first by createdAt.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConflictError, NotFoundError } from '../auth-store.ts';
import type {
  AuditEvent,
  AuditEventInput,
  AuditQuery,
  AuthStore,
  MemberKind,
  MemberRecord,
  RefreshTokenRecord,
  Role,
} from '../auth-store.ts';
import type { Page, PageOptions } from '../store.ts';

/** What the suite needs per test: a fresh, empty, ready (migrated) store and a way to dispose of it. */
export type AuthStoreFactory = () => Promise<{ store: AuthStore; cleanup(): Promise<void> }>;

/** Names whose byte-wise order differs from a locale-aware or case-insensitive one. */
const NAMES = ['b', 'B', 'a', 'a-b', 'a.b', 'a0', 'a_b', 'Z', 'ä', 'a$b'];
// Byte-wise: uppercase before lowercase, '$' < '-' < '.' < '0' < '_', and non-ASCII last.
const SORTED = ['B', 'Z', 'a', 'a$b', 'a-b', 'a.b', 'a0', 'a_b', 'b', 'ä'];

const T0 = Date.UTC(2024, 0, 1);

function byteSorted(names: readonly string[]): string[] {
  return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Asserts `date` is a Date within [from, to] (epoch ms). */
function assertWithin(date: Date | null | undefined, from: number, to: number, what: string): void {
  assert.ok(date instanceof Date, `${what} is a Date`);
  assert.ok(date.getTime() >= from && date.getTime() <= to, `${what} ${date.toISOString()} within the call`);
}

function member(namespace: string, kind: MemberKind, principal: string, role: Role): MemberRecord {
  return { namespace, kind, principal, role };
}

/** Registers the AuthStore contract tests under `describe(name)`; `factory` gives each test its own store. */
export function runAuthStoreSuite(name: string, factory: AuthStoreFactory): void {
  describe(name, () => {
    let store: AuthStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    const user = (username: string, isAdmin = false) =>
      store.createUser({ username, passwordHash: `hash:${username}`, isAdmin });
    const robot = (robotName: string) =>
      store.createRobot({
        name: robotName,
        description: `robot ${robotName}`,
        secretHash: `secret:${robotName}`,
        expiresAt: null,
        createdBy: null,
      });
    const team = (teamName: string) => store.createTeam({ name: teamName, description: `team ${teamName}` });
    const namespace = (nsName: string, visibility: 'public' | 'private' = 'private') =>
      store.createNamespace({ name: nsName, visibility, description: `ns ${nsName}` });
    const token = (id: string, subjectKind: 'user' | 'robot', subject: string) =>
      store.createRefreshToken({
        id,
        secretHash: `secret:${id}`,
        subjectKind,
        subject,
        clientId: 'docker',
        expiresAt: new Date(T0 + 86_400_000),
      });

    /** Every page of `list`, following `after` with `key`; asserts only the last page has hasMore false. */
    async function allPages<T>(
      list: (options: PageOptions) => Promise<Page<T>>,
      key: (item: T) => string,
      limit: number,
    ): Promise<string[][]> {
      const pages: string[][] = [];
      let after: string | undefined;
      for (;;) {
        const page = await list(after === undefined ? { limit } : { limit, after });
        const keys = page.items.map(key);
        pages.push(keys);
        if (!page.hasMore) return pages;
        assert.equal(keys.length, limit, 'a page followed by more items must be full');
        after = keys.at(-1);
        assert.ok(pages.length < 100, 'pagination does not terminate');
      }
    }

    /** Checks a name-sorted list over NAMES: order, pages of 3, exclusive `after`, limit 0. */
    async function checkNameList<T>(list: (o: PageOptions) => Promise<Page<T>>, key: (item: T) => string) {
      assert.deepEqual(byteSorted(NAMES), SORTED);
      const all = await list({ limit: 100 });
      assert.deepEqual(all.items.map(key), SORTED);
      assert.equal(all.hasMore, false);
      assert.deepEqual(await allPages(list, key, 3), [
        SORTED.slice(0, 3),
        SORTED.slice(3, 6),
        SORTED.slice(6, 9),
        SORTED.slice(9),
      ]);
      // Exclusive `after`, which need not exist; an exactly full last page has nothing more.
      const afterA = await list({ limit: 2, after: 'a' });
      assert.deepEqual(afterA.items.map(key), ['a$b', 'a-b']);
      assert.equal(afterA.hasMore, true);
      assert.deepEqual((await list({ limit: 2, after: 'a.a' })).items.map(key), ['a.b', 'a0']);
      const tail = await list({ limit: 2, after: 'a_b' });
      assert.deepEqual(tail.items.map(key), ['b', 'ä']);
      assert.equal(tail.hasMore, false);
      assert.deepEqual(await list({ limit: 5, after: 'ä' }), { items: [], hasMore: false });
      assert.deepEqual(await list({ limit: 0 }), { items: [], hasMore: true });
      assert.deepEqual(await list({ limit: 0, after: 'ä' }), { items: [], hasMore: false });
    }

    // --- users -----------------------------------------------------------------------------------

    describe('users', () => {
      it('creates a user and reads it back', async () => {
        const before = Date.now();
        const created = await store.createUser({
          username: 'alice',
          passwordHash: '$argon2id$hash',
          email: 'alice@example.com',
          isAdmin: true,
        });
        const after = Date.now();
        assert.equal(created.username, 'alice');
        assert.equal(created.passwordHash, '$argon2id$hash');
        assert.equal(created.email, 'alice@example.com');
        assert.equal(created.isAdmin, true);
        assert.equal(created.disabled, false);
        assertWithin(created.createdAt, before, after, 'createdAt');
        assert.equal(created.updatedAt.getTime(), created.createdAt.getTime());
        assert.deepEqual(await store.getUser('alice'), created);
      });

      it('defaults email to null and allows a null password hash', async () => {
        const created = await store.createUser({ username: 'sso', passwordHash: null, isAdmin: false });
        assert.equal(created.email, null);
        assert.equal(created.passwordHash, null);
        assert.equal(created.isAdmin, false);
        assert.deepEqual(await store.getUser('sso'), created);
      });

      it('rejects a taken username with ConflictError; names are case-sensitive', async () => {
        await user('alice');
        await assert.rejects(user('alice'), ConflictError);
        await assert.rejects(
          store.createUser({ username: 'alice', passwordHash: null, isAdmin: true }),
          ConflictError,
        );
        const upper = await user('Alice');
        assert.equal(upper.username, 'Alice');
        assert.equal((await store.getUser('alice'))?.passwordHash, 'hash:alice', 'the first one is intact');
        assert.equal(await store.getUser('ALICE'), null);
        assert.equal(await store.getUser('nobody'), null);
      });

      it('concurrent creation of one username: exactly one succeeds, the other gets ConflictError', async () => {
        const results = await Promise.allSettled([user('race'), user('race')]);
        const fulfilled = results.filter((r) => r.status === 'fulfilled');
        const rejected = results.filter((r) => r.status === 'rejected');
        assert.equal(fulfilled.length, 1);
        assert.equal(rejected.length, 1);
        assert.ok(rejected[0]?.reason instanceof ConflictError, `got ${String(rejected[0]?.reason)}`);
        assert.equal((await store.listUsers({ limit: 10 })).items.length, 1);
      });

      it('lists users byte-wise and paginates', async () => {
        for (const n of NAMES) await user(n);
        await checkNameList(
          (o) => store.listUsers(o),
          (u) => u.username,
        );
        const page = await store.listUsers({ limit: 1, after: 'a0' });
        assert.deepEqual(page.items, [await store.getUser('a_b')], 'list items are full records');
      });

      it('updates only the given fields and touches updatedAt', async () => {
        const created = await store.createUser({
          username: 'bob',
          passwordHash: 'h1',
          email: 'bob@example.com',
          isAdmin: false,
        });
        await sleep(15);
        const updated = await store.updateUser('bob', { isAdmin: true });
        assert.ok(updated);
        assert.equal(updated.isAdmin, true);
        assert.equal(updated.passwordHash, 'h1');
        assert.equal(updated.email, 'bob@example.com');
        assert.equal(updated.disabled, false);
        assert.equal(updated.createdAt.getTime(), created.createdAt.getTime());
        assert.ok(updated.updatedAt > created.updatedAt, 'updatedAt moved forward');
        assert.deepEqual(await store.getUser('bob'), updated);

        const cleared = await store.updateUser('bob', { passwordHash: null, email: null, disabled: true });
        assert.equal(cleared?.passwordHash, null);
        assert.equal(cleared?.email, null);
        assert.equal(cleared?.disabled, true);
        assert.equal(cleared?.isAdmin, true);
        const again = await store.updateUser('bob', { passwordHash: 'h2', disabled: false, isAdmin: false });
        assert.equal(again?.passwordHash, 'h2');
        assert.equal(again?.disabled, false);
        assert.equal(again?.isAdmin, false);
        assert.deepEqual(await store.getUser('bob'), again);
      });

      it('updating an absent user returns null and creates nothing', async () => {
        assert.equal(await store.updateUser('ghost', { isAdmin: true }), null);
        assert.equal(await store.getUser('ghost'), null);
      });

      it('deletes a user once', async () => {
        await user('alice');
        await user('bob');
        assert.equal(await store.deleteUser('alice'), true);
        assert.equal(await store.deleteUser('alice'), false);
        assert.equal(await store.deleteUser('nobody'), false);
        assert.equal(await store.getUser('alice'), null);
        assert.deepEqual(
          (await store.listUsers({ limit: 10 })).items.map((u) => u.username),
          ['bob'],
        );
        // The name is free again.
        assert.equal((await user('alice')).username, 'alice');
      });

      it('countAdmins counts enabled administrators only', async () => {
        assert.equal(await store.countAdmins(), 0);
        await user('root', true);
        await user('admin2', true);
        await user('plain');
        assert.equal(await store.countAdmins(), 2);
        await store.updateUser('admin2', { disabled: true });
        assert.equal(await store.countAdmins(), 1);
        await store.updateUser('plain', { isAdmin: true, disabled: true });
        assert.equal(await store.countAdmins(), 1, 'a disabled admin does not count');
        await store.updateUser('plain', { disabled: false });
        assert.equal(await store.countAdmins(), 2);
        await store.updateUser('root', { isAdmin: false });
        assert.equal(await store.countAdmins(), 1);
        await store.deleteUser('plain');
        assert.equal(await store.countAdmins(), 0);
      });
    });

    // --- robots ----------------------------------------------------------------------------------

    describe('robots', () => {
      it('creates a robot and reads it back', async () => {
        const expiresAt = new Date(T0 + 123);
        const before = Date.now();
        const created = await store.createRobot({
          name: 'robot$ci',
          description: 'CI builder',
          secretHash: 'sha256:abc',
          expiresAt,
          createdBy: 'alice',
        });
        const after = Date.now();
        assert.equal(created.name, 'robot$ci');
        assert.equal(created.description, 'CI builder');
        assert.equal(created.secretHash, 'sha256:abc');
        assert.deepEqual(created.expiresAt, expiresAt);
        assert.equal(created.revokedAt, null);
        assert.equal(created.createdBy, 'alice');
        assert.equal(created.lastUsedAt, null);
        assertWithin(created.createdAt, before, after, 'createdAt');
        assert.deepEqual(await store.getRobot('robot$ci'), created);
        assert.equal(await store.getRobot('robot$CI'), null);
        assert.equal(await store.getRobot('nothing'), null);
      });

      it('rejects a taken robot name with ConflictError', async () => {
        await robot('robot$ci');
        await assert.rejects(robot('robot$ci'), ConflictError);
        assert.equal((await store.getRobot('robot$ci'))?.description, 'robot robot$ci');
      });

      it('lists robots byte-wise and paginates', async () => {
        for (const n of NAMES) await robot(n);
        await checkNameList(
          (o) => store.listRobots(o),
          (r) => r.name,
        );
      });

      it('updates the given fields; absent robots give null', async () => {
        const created = await store.createRobot({
          name: 'robot$x',
          description: 'old',
          secretHash: 's1',
          expiresAt: new Date(T0),
          createdBy: null,
        });
        const revokedAt = new Date(T0 + 5000);
        const updated = await store.updateRobot('robot$x', { secretHash: 's2', revokedAt });
        assert.deepEqual(updated, { ...created, secretHash: 's2', revokedAt });
        const more = await store.updateRobot('robot$x', {
          expiresAt: null,
          revokedAt: null,
          description: 'new',
        });
        assert.deepEqual(more, { ...created, secretHash: 's2', expiresAt: null, description: 'new' });
        assert.deepEqual(await store.getRobot('robot$x'), more);
        assert.deepEqual(await store.updateRobot('robot$x', {}), more);
        assert.equal(await store.updateRobot('robot$none', { description: 'x' }), null);
        assert.equal(await store.updateRobot('robot$none', {}), null);
        assert.equal(await store.getRobot('robot$none'), null);
      });

      it('touchRobot records the last use, never backwards', async () => {
        await robot('robot$a');
        await robot('robot$b');
        await store.touchRobot('robot$a', new Date(T0 + 2000));
        assert.deepEqual((await store.getRobot('robot$a'))?.lastUsedAt, new Date(T0 + 2000));
        assert.equal((await store.getRobot('robot$b'))?.lastUsedAt, null, 'other robots are untouched');
        await store.touchRobot('robot$a', new Date(T0 + 1000));
        assert.deepEqual((await store.getRobot('robot$a'))?.lastUsedAt, new Date(T0 + 2000));
        await store.touchRobot('robot$a', new Date(T0 + 3000));
        assert.deepEqual((await store.getRobot('robot$a'))?.lastUsedAt, new Date(T0 + 3000));
        await store.touchRobot('robot$unknown', new Date(T0));
        assert.equal(await store.getRobot('robot$unknown'), null);
      });

      it('deletes a robot once', async () => {
        await robot('robot$a');
        assert.equal(await store.deleteRobot('robot$a'), true);
        assert.equal(await store.deleteRobot('robot$a'), false);
        assert.equal(await store.getRobot('robot$a'), null);
        assert.equal((await robot('robot$a')).lastUsedAt, null, 'the name is free again');
      });

      it('a robot outlives the user who created it', async () => {
        await user('alice');
        await store.createRobot({
          name: 'robot$x',
          description: '',
          secretHash: 's',
          expiresAt: null,
          createdBy: 'alice',
        });
        await store.deleteUser('alice');
        assert.equal((await store.getRobot('robot$x'))?.createdBy, 'alice');
      });
    });

    // --- teams -----------------------------------------------------------------------------------

    describe('teams', () => {
      it('creates, reads, lists and deletes teams', async () => {
        const before = Date.now();
        const created = await store.createTeam({ name: 'devs', description: 'Developers' });
        const after = Date.now();
        assert.equal(created.name, 'devs');
        assert.equal(created.description, 'Developers');
        assertWithin(created.createdAt, before, after, 'createdAt');
        assert.deepEqual(await store.getTeam('devs'), created);
        assert.equal(await store.getTeam('Devs'), null);
        await assert.rejects(team('devs'), ConflictError);
        assert.equal(await store.deleteTeam('devs'), true);
        assert.equal(await store.deleteTeam('devs'), false);
        assert.equal(await store.getTeam('devs'), null);
      });

      it('lists teams byte-wise and paginates', async () => {
        for (const n of NAMES) await team(n);
        await checkNameList(
          (o) => store.listTeams(o),
          (t) => t.name,
        );
      });

      it('manages team members: idempotent add, sorted lists, remove', async () => {
        await team('devs');
        await team('ops');
        for (const u of ['carol', 'alice', 'Bob']) await user(u);
        await store.addTeamMember('devs', 'carol');
        await store.addTeamMember('devs', 'alice');
        await store.addTeamMember('devs', 'Bob');
        await store.addTeamMember('devs', 'alice');
        await store.addTeamMember('ops', 'alice');
        assert.deepEqual(await store.listTeamMembers('devs'), ['Bob', 'alice', 'carol']);
        assert.deepEqual(await store.listTeamMembers('ops'), ['alice']);
        assert.deepEqual(await store.teamsOf('alice'), ['devs', 'ops']);
        assert.deepEqual(await store.teamsOf('carol'), ['devs']);
        assert.deepEqual(await store.teamsOf('nobody'), []);
        assert.deepEqual(await store.listTeamMembers('nothing'), []);

        assert.equal(await store.removeTeamMember('devs', 'alice'), true);
        assert.equal(await store.removeTeamMember('devs', 'alice'), false);
        assert.equal(await store.removeTeamMember('devs', 'nobody'), false);
        assert.equal(await store.removeTeamMember('nothing', 'carol'), false);
        assert.deepEqual(await store.listTeamMembers('devs'), ['Bob', 'carol']);
        assert.deepEqual(await store.teamsOf('alice'), ['ops']);
      });

      it('adding a member throws NotFoundError when the team or user is absent', async () => {
        await team('devs');
        await user('alice');
        await assert.rejects(store.addTeamMember('devs', 'nobody'), NotFoundError);
        await assert.rejects(store.addTeamMember('nothing', 'alice'), NotFoundError);
        await assert.rejects(store.addTeamMember('devs', 'Alice'), NotFoundError);
        assert.deepEqual(await store.listTeamMembers('devs'), []);
        assert.equal(await store.getTeam('nothing'), null, 'no team was created');
      });

      it('deleting a user removes them from their teams', async () => {
        await team('devs');
        await user('alice');
        await user('bob');
        await store.addTeamMember('devs', 'alice');
        await store.addTeamMember('devs', 'bob');
        await store.deleteUser('alice');
        assert.deepEqual(await store.listTeamMembers('devs'), ['bob']);
        await user('alice');
        assert.deepEqual(await store.teamsOf('alice'), [], 'a new user of the same name is in no team');
      });

      it('deleting a team removes its members, memberships and rules', async () => {
        await team('devs');
        await user('alice');
        await namespace('acme');
        await store.addTeamMember('devs', 'alice');
        await store.setMember('acme', 'team', 'devs', 'developer');
        await store.addRule({
          namespace: 'acme',
          pattern: 'app/**',
          kind: 'team',
          principal: 'devs',
          role: 'admin',
        });
        assert.equal((await store.membershipsOf('user', 'alice')).length, 1);
        assert.equal((await store.rulesOf('user', 'alice')).length, 1);

        assert.equal(await store.deleteTeam('devs'), true);
        assert.deepEqual(await store.teamsOf('alice'), []);
        assert.deepEqual(await store.listMembers('acme'), []);
        assert.deepEqual(await store.listRules('acme'), []);
        assert.deepEqual(await store.membershipsOf('user', 'alice'), []);
        assert.deepEqual(await store.rulesOf('user', 'alice'), []);
        assert.ok(await store.getUser('alice'), 'the users stay');
        assert.ok(await store.getNamespace('acme'), 'the namespace stays');

        await team('devs');
        assert.deepEqual(await store.listTeamMembers('devs'), [], 'a new team of the same name is empty');
        assert.deepEqual(await store.listMembers('acme'), []);
      });
    });

    // --- namespaces ------------------------------------------------------------------------------

    describe('namespaces', () => {
      it('creates, reads, updates and deletes namespaces', async () => {
        const before = Date.now();
        const created = await store.createNamespace({
          name: 'acme',
          visibility: 'public',
          description: 'ACME',
        });
        const after = Date.now();
        assert.deepEqual(
          { ...created, createdAt: undefined },
          { name: 'acme', visibility: 'public', description: 'ACME', createdAt: undefined },
        );
        assertWithin(created.createdAt, before, after, 'createdAt');
        assert.deepEqual(await store.getNamespace('acme'), created);
        assert.equal(await store.getNamespace('ACME'), null);
        await assert.rejects(namespace('acme'), ConflictError);

        const updated = await store.updateNamespace('acme', { visibility: 'private' });
        assert.deepEqual(updated, { ...created, visibility: 'private' });
        const described = await store.updateNamespace('acme', { description: 'new' });
        assert.deepEqual(described, { ...created, visibility: 'private', description: 'new' });
        assert.deepEqual(await store.updateNamespace('acme', {}), described);
        assert.deepEqual(await store.getNamespace('acme'), described);
        assert.equal(await store.updateNamespace('none', { visibility: 'public' }), null);
        assert.equal(await store.updateNamespace('none', {}), null);

        assert.equal(await store.deleteNamespace('acme'), true);
        assert.equal(await store.deleteNamespace('acme'), false);
        assert.equal(await store.getNamespace('acme'), null);
      });

      it('lists namespaces byte-wise and paginates', async () => {
        for (const n of NAMES) await namespace(n);
        await checkNameList(
          (o) => store.listNamespaces(o),
          (n) => n.name,
        );
      });

      it('publicNamespaces lists the public ones, sorted, following visibility changes', async () => {
        assert.deepEqual(await store.publicNamespaces(), []);
        await namespace('zeta', 'public');
        await namespace('alpha', 'public');
        await namespace('Beta', 'public');
        await namespace('secret', 'private');
        assert.deepEqual(await store.publicNamespaces(), ['Beta', 'alpha', 'zeta']);
        await store.updateNamespace('secret', { visibility: 'public' });
        await store.updateNamespace('alpha', { visibility: 'private' });
        assert.deepEqual(await store.publicNamespaces(), ['Beta', 'secret', 'zeta']);
        await store.deleteNamespace('zeta');
        assert.deepEqual(await store.publicNamespaces(), ['Beta', 'secret']);
      });
    });

    // --- members ---------------------------------------------------------------------------------

    describe('namespace members', () => {
      beforeEach(async () => {
        await namespace('acme');
        await namespace('other');
        for (const u of ['alice', 'bob', 'ci']) await user(u);
        for (const t of ['devs', 'ci']) await team(t);
        for (const r of ['robot$ci', 'ci']) await robot(r);
      });

      it('sets members of every kind, listed by kind then principal', async () => {
        assert.deepEqual(
          await store.setMember('acme', 'user', 'bob', 'reader'),
          member('acme', 'user', 'bob', 'reader'),
        );
        await store.setMember('acme', 'user', 'alice', 'admin');
        await store.setMember('acme', 'team', 'devs', 'developer');
        await store.setMember('acme', 'robot', 'robot$ci', 'maintainer');
        // One name, three principals: they are distinct members.
        await store.setMember('acme', 'user', 'ci', 'reader');
        await store.setMember('acme', 'team', 'ci', 'developer');
        await store.setMember('acme', 'robot', 'ci', 'admin');
        await store.setMember('other', 'user', 'alice', 'reader');
        assert.deepEqual(await store.listMembers('acme'), [
          member('acme', 'robot', 'ci', 'admin'),
          member('acme', 'robot', 'robot$ci', 'maintainer'),
          member('acme', 'team', 'ci', 'developer'),
          member('acme', 'team', 'devs', 'developer'),
          member('acme', 'user', 'alice', 'admin'),
          member('acme', 'user', 'bob', 'reader'),
          member('acme', 'user', 'ci', 'reader'),
        ]);
        assert.deepEqual(await store.listMembers('other'), [member('other', 'user', 'alice', 'reader')]);
        assert.deepEqual(await store.listMembers('nothing'), []);
      });

      it('setMember on an existing member changes its role in place', async () => {
        await store.setMember('acme', 'user', 'alice', 'reader');
        await store.setMember('acme', 'team', 'ci', 'reader');
        assert.deepEqual(
          await store.setMember('acme', 'user', 'alice', 'maintainer'),
          member('acme', 'user', 'alice', 'maintainer'),
        );
        assert.deepEqual(await store.listMembers('acme'), [
          member('acme', 'team', 'ci', 'reader'),
          member('acme', 'user', 'alice', 'maintainer'),
        ]);
        await store.setMember('acme', 'user', 'alice', 'reader');
        assert.deepEqual(await store.membershipsOf('user', 'alice'), [
          member('acme', 'user', 'alice', 'reader'),
        ]);
      });

      it('setMember throws NotFoundError for an absent namespace or principal', async () => {
        await assert.rejects(store.setMember('nothing', 'user', 'alice', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('acme', 'user', 'nobody', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('acme', 'team', 'nobody', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('acme', 'robot', 'nobody', 'reader'), NotFoundError);
        // The principal must exist as the given kind.
        await assert.rejects(store.setMember('acme', 'robot', 'alice', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('acme', 'team', 'robot$ci', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('acme', 'user', 'devs', 'reader'), NotFoundError);
        await assert.rejects(store.setMember('Acme', 'user', 'alice', 'reader'), NotFoundError);
        assert.deepEqual(await store.listMembers('acme'), []);
        assert.equal(await store.getNamespace('nothing'), null);
      });

      it('removeMember removes exactly that member', async () => {
        await store.setMember('acme', 'user', 'ci', 'reader');
        await store.setMember('acme', 'team', 'ci', 'reader');
        await store.setMember('other', 'user', 'ci', 'reader');
        assert.equal(await store.removeMember('acme', 'robot', 'ci'), false, 'robot ci is not a member');
        assert.equal(await store.removeMember('acme', 'user', 'ci'), true);
        assert.equal(await store.removeMember('acme', 'user', 'ci'), false);
        assert.equal(await store.removeMember('nothing', 'user', 'ci'), false);
        assert.equal(await store.removeMember('acme', 'user', 'nobody'), false);
        assert.deepEqual(await store.listMembers('acme'), [member('acme', 'team', 'ci', 'reader')]);
        assert.deepEqual(await store.listMembers('other'), [member('other', 'user', 'ci', 'reader')]);
      });

      it('membershipsOf a user includes those through their teams, in one sorted list', async () => {
        await store.addTeamMember('devs', 'alice');
        await store.addTeamMember('ci', 'alice');
        await store.addTeamMember('devs', 'bob');
        await store.setMember('other', 'user', 'alice', 'admin');
        await store.setMember('acme', 'user', 'alice', 'reader');
        await store.setMember('acme', 'team', 'devs', 'developer');
        await store.setMember('acme', 'team', 'ci', 'maintainer');
        await store.setMember('other', 'user', 'bob', 'reader');
        // Same names as alice's team, other kinds: they must not leak into alice's memberships.
        await store.setMember('other', 'robot', 'ci', 'reader');
        await store.setMember('other', 'user', 'ci', 'reader');

        assert.deepEqual(await store.membershipsOf('user', 'alice'), [
          member('acme', 'team', 'ci', 'maintainer'),
          member('acme', 'team', 'devs', 'developer'),
          member('acme', 'user', 'alice', 'reader'),
          member('other', 'user', 'alice', 'admin'),
        ]);
        assert.deepEqual(await store.membershipsOf('user', 'bob'), [
          member('acme', 'team', 'devs', 'developer'),
          member('other', 'user', 'bob', 'reader'),
        ]);
        assert.deepEqual(await store.membershipsOf('user', 'ci'), [member('other', 'user', 'ci', 'reader')]);
        assert.deepEqual(await store.membershipsOf('user', 'nobody'), []);

        await store.removeTeamMember('devs', 'alice');
        assert.deepEqual(
          (await store.membershipsOf('user', 'alice')).map((m) => `${m.kind}:${m.principal}`),
          ['team:ci', 'user:alice', 'user:alice'],
        );
      });

      it('membershipsOf a robot lists its own memberships only', async () => {
        await store.setMember('acme', 'robot', 'robot$ci', 'developer');
        await store.setMember('other', 'robot', 'robot$ci', 'reader');
        await store.setMember('acme', 'user', 'ci', 'admin');
        await store.setMember('acme', 'team', 'ci', 'admin');
        await store.setMember('other', 'robot', 'ci', 'maintainer');
        assert.deepEqual(await store.membershipsOf('robot', 'robot$ci'), [
          member('acme', 'robot', 'robot$ci', 'developer'),
          member('other', 'robot', 'robot$ci', 'reader'),
        ]);
        assert.deepEqual(await store.membershipsOf('robot', 'ci'), [
          member('other', 'robot', 'ci', 'maintainer'),
        ]);
        assert.deepEqual(await store.membershipsOf('robot', 'alice'), []);
      });

      it('deleting a user removes their memberships and rules', async () => {
        await store.setMember('acme', 'user', 'alice', 'admin');
        await store.setMember('acme', 'user', 'bob', 'reader');
        await store.addRule({
          namespace: 'acme',
          pattern: '*',
          kind: 'user',
          principal: 'alice',
          role: 'admin',
        });
        await store.deleteUser('alice');
        assert.deepEqual(await store.listMembers('acme'), [member('acme', 'user', 'bob', 'reader')]);
        assert.deepEqual(await store.listRules('acme'), []);
        await user('alice');
        assert.deepEqual(
          await store.membershipsOf('user', 'alice'),
          [],
          'nothing carries over to a new alice',
        );
        assert.deepEqual(await store.rulesOf('user', 'alice'), []);
      });

      it('deleting a robot removes its memberships and rules', async () => {
        await store.setMember('acme', 'robot', 'ci', 'developer');
        await store.setMember('acme', 'user', 'ci', 'reader');
        await store.addRule({
          namespace: 'acme',
          pattern: 'x',
          kind: 'robot',
          principal: 'ci',
          role: 'admin',
        });
        await store.addRule({
          namespace: 'acme',
          pattern: 'y',
          kind: 'user',
          principal: 'ci',
          role: 'admin',
        });
        await store.deleteRobot('ci');
        assert.deepEqual(await store.listMembers('acme'), [member('acme', 'user', 'ci', 'reader')]);
        assert.deepEqual(
          (await store.listRules('acme')).map((r) => `${r.kind}:${r.principal}:${r.pattern}`),
          ['user:ci:y'],
        );
        assert.deepEqual(await store.membershipsOf('robot', 'ci'), []);
      });

      it('deleting a namespace removes its members and rules, not the principals', async () => {
        await store.setMember('acme', 'user', 'alice', 'admin');
        await store.setMember('acme', 'team', 'devs', 'reader');
        await store.setMember('other', 'user', 'alice', 'reader');
        await store.addRule({
          namespace: 'acme',
          pattern: '*',
          kind: 'user',
          principal: 'alice',
          role: 'admin',
        });
        await store.addRule({
          namespace: 'other',
          pattern: '*',
          kind: 'user',
          principal: 'alice',
          role: 'reader',
        });
        assert.equal(await store.deleteNamespace('acme'), true);
        assert.deepEqual(await store.membershipsOf('user', 'alice'), [
          member('other', 'user', 'alice', 'reader'),
        ]);
        assert.deepEqual(
          (await store.rulesOf('user', 'alice')).map((r) => r.namespace),
          ['other'],
        );
        assert.ok(await store.getUser('alice'));
        assert.ok(await store.getTeam('devs'));
        await namespace('acme');
        assert.deepEqual(await store.listMembers('acme'), [], 'a new namespace of the same name is empty');
        assert.deepEqual(await store.listRules('acme'), []);
      });
    });

    // --- rules -----------------------------------------------------------------------------------

    describe('repository rules', () => {
      beforeEach(async () => {
        await namespace('acme');
        await namespace('other');
        await user('alice');
        await user('bob');
        await team('devs');
        await robot('robot$ci');
      });

      it('adds rules with ids, lists them in creation order, deletes them', async () => {
        const r1 = await store.addRule({
          namespace: 'acme',
          pattern: 'app/**',
          kind: 'user',
          principal: 'alice',
          role: 'developer',
        });
        assert.equal(typeof r1.id, 'number');
        assert.deepEqual(r1, {
          id: r1.id,
          namespace: 'acme',
          pattern: 'app/**',
          kind: 'user',
          principal: 'alice',
          role: 'developer',
        });
        const r2 = await store.addRule({
          namespace: 'acme',
          pattern: '*',
          kind: 'team',
          principal: 'devs',
          role: 'reader',
        });
        const r3 = await store.addRule({
          namespace: 'acme',
          pattern: 'ci/*',
          kind: 'robot',
          principal: 'robot$ci',
          role: 'maintainer',
        });
        const r4 = await store.addRule({
          namespace: 'other',
          pattern: 'x',
          kind: 'user',
          principal: 'bob',
          role: 'admin',
        });
        assert.equal(new Set([r1.id, r2.id, r3.id, r4.id]).size, 4, 'ids are distinct');
        assert.deepEqual(await store.listRules('acme'), [r1, r2, r3]);
        assert.deepEqual(await store.listRules('other'), [r4]);
        assert.deepEqual(await store.listRules('nothing'), []);

        assert.equal(await store.deleteRule(r2.id), true);
        assert.equal(await store.deleteRule(r2.id), false);
        assert.equal(await store.deleteRule(r4.id + 1000), false);
        assert.deepEqual(await store.listRules('acme'), [r1, r3]);
      });

      it('addRule throws NotFoundError for an absent namespace or principal', async () => {
        const rule = {
          namespace: 'acme',
          pattern: '*',
          kind: 'user',
          principal: 'alice',
          role: 'reader',
        } as const;
        await assert.rejects(store.addRule({ ...rule, namespace: 'nothing' }), NotFoundError);
        await assert.rejects(store.addRule({ ...rule, principal: 'nobody' }), NotFoundError);
        await assert.rejects(store.addRule({ ...rule, kind: 'team', principal: 'alice' }), NotFoundError);
        await assert.rejects(store.addRule({ ...rule, kind: 'robot', principal: 'devs' }), NotFoundError);
        assert.deepEqual(await store.listRules('acme'), []);
      });

      it('rulesOf a user includes their teams’ rules; a robot gets its own', async () => {
        await store.addTeamMember('devs', 'alice');
        const own = await store.addRule({
          namespace: 'other',
          pattern: 'a',
          kind: 'user',
          principal: 'alice',
          role: 'admin',
        });
        const viaTeam = await store.addRule({
          namespace: 'acme',
          pattern: 'b/**',
          kind: 'team',
          principal: 'devs',
          role: 'developer',
        });
        const own2 = await store.addRule({
          namespace: 'acme',
          pattern: 'c',
          kind: 'user',
          principal: 'alice',
          role: 'reader',
        });
        const bobs = await store.addRule({
          namespace: 'acme',
          pattern: 'd',
          kind: 'user',
          principal: 'bob',
          role: 'reader',
        });
        const robots = await store.addRule({
          namespace: 'acme',
          pattern: 'e',
          kind: 'robot',
          principal: 'robot$ci',
          role: 'developer',
        });
        assert.deepEqual(await store.rulesOf('user', 'alice'), [viaTeam, own2, own]);
        assert.deepEqual(await store.rulesOf('user', 'bob'), [bobs]);
        assert.deepEqual(await store.rulesOf('robot', 'robot$ci'), [robots]);
        assert.deepEqual(await store.rulesOf('user', 'nobody'), []);
        assert.deepEqual(await store.rulesOf('robot', 'alice'), []);

        await store.addTeamMember('devs', 'bob');
        assert.deepEqual(await store.rulesOf('user', 'bob'), [viaTeam, bobs]);
        await store.removeTeamMember('devs', 'alice');
        assert.deepEqual(await store.rulesOf('user', 'alice'), [own2, own]);
      });
    });

    // --- signing keys ----------------------------------------------------------------------------

    describe('signing keys', () => {
      const key = (kid: string, createdAt: number) => ({
        kid,
        algorithm: 'ES256',
        privateJwk: JSON.stringify({ kty: 'EC', kid, d: 'secret' }),
        publicJwk: JSON.stringify({ kty: 'EC', kid }),
        createdAt: new Date(createdAt),
      });

      it('stores keys, lists them newest first, rejects a taken kid', async () => {
        await store.addSigningKey(key('k-old', T0));
        await store.addSigningKey(key('k-new', T0 + 2000));
        await store.addSigningKey(key('k-mid', T0 + 1000));
        await assert.rejects(store.addSigningKey(key('k-mid', T0 + 5000)), ConflictError);
        assert.deepEqual(await store.listSigningKeys(), [
          { ...key('k-new', T0 + 2000), retiredAt: null },
          { ...key('k-mid', T0 + 1000), retiredAt: null },
          { ...key('k-old', T0), retiredAt: null },
        ]);
      });

      it('retires a key once and deletes keys', async () => {
        await store.addSigningKey(key('k1', T0));
        await store.addSigningKey(key('k2', T0 + 1000));
        assert.equal(await store.retireSigningKey('k1', new Date(T0 + 500)), true);
        assert.equal(await store.retireSigningKey('k1', new Date(T0 + 900)), false, 'already retired');
        assert.equal(await store.retireSigningKey('nothing', new Date(T0)), false);
        assert.deepEqual(await store.listSigningKeys(), [
          { ...key('k2', T0 + 1000), retiredAt: null },
          { ...key('k1', T0), retiredAt: new Date(T0 + 500) },
        ]);
        assert.equal(await store.deleteSigningKey('k1'), true);
        assert.equal(await store.deleteSigningKey('k1'), false);
        assert.deepEqual(
          (await store.listSigningKeys()).map((k) => k.kid),
          ['k2'],
        );
        assert.equal(
          await store.retireSigningKey('k1', new Date(T0 + 900)),
          false,
          'a deleted key is absent',
        );
      });
    });

    // --- refresh tokens --------------------------------------------------------------------------

    describe('refresh tokens', () => {
      it('stores a token and reads it back; ids are unique', async () => {
        const before = Date.now();
        await token('t1', 'user', 'alice');
        const after = Date.now();
        const record = await store.getRefreshToken('t1');
        assert.ok(record);
        assertWithin(record.createdAt, before, after, 'createdAt');
        assert.deepEqual(record, {
          id: 't1',
          secretHash: 'secret:t1',
          subjectKind: 'user',
          subject: 'alice',
          clientId: 'docker',
          createdAt: record.createdAt,
          expiresAt: new Date(T0 + 86_400_000),
          revokedAt: null,
        } satisfies RefreshTokenRecord);
        await assert.rejects(token('t1', 'robot', 'x'), ConflictError);
        assert.equal((await store.getRefreshToken('t1'))?.subject, 'alice');
        assert.equal(await store.getRefreshToken('T1'), null);
        assert.equal(await store.getRefreshToken('nothing'), null);
      });

      it('revokes a token once', async () => {
        await token('t1', 'user', 'alice');
        await token('t2', 'user', 'alice');
        const before = Date.now();
        assert.equal(await store.revokeRefreshToken('t1'), true);
        const after = Date.now();
        const revoked = await store.getRefreshToken('t1');
        assertWithin(revoked?.revokedAt, before, after, 'revokedAt');
        await sleep(10);
        assert.equal(await store.revokeRefreshToken('t1'), false);
        assert.deepEqual(await store.getRefreshToken('t1'), revoked, 'the first revocation time stays');
        assert.equal(await store.revokeRefreshToken('nothing'), false);
        assert.equal((await store.getRefreshToken('t2'))?.revokedAt, null);
      });

      it('revokeRefreshTokensOf revokes and counts the subject’s live tokens only', async () => {
        await token('a1', 'user', 'alice');
        await token('a2', 'user', 'alice');
        await token('a3', 'user', 'alice');
        await token('b1', 'user', 'bob');
        await token('r1', 'robot', 'alice');
        await store.revokeRefreshToken('a3');
        assert.equal(await store.revokeRefreshTokensOf('user', 'alice'), 2);
        for (const id of ['a1', 'a2', 'a3']) {
          assert.ok((await store.getRefreshToken(id))?.revokedAt instanceof Date, `${id} revoked`);
        }
        assert.equal((await store.getRefreshToken('b1'))?.revokedAt, null);
        assert.equal(
          (await store.getRefreshToken('r1'))?.revokedAt,
          null,
          'a robot named alice is another subject',
        );
        assert.equal(await store.revokeRefreshTokensOf('user', 'alice'), 0);
        assert.equal(await store.revokeRefreshTokensOf('robot', 'alice'), 1);
        assert.equal(await store.revokeRefreshTokensOf('user', 'nobody'), 0);
      });

      it('deleting a user or robot revokes its tokens', async () => {
        await user('alice');
        await user('bob');
        await robot('ci');
        await token('u1', 'user', 'alice');
        await token('u2', 'user', 'alice');
        await token('b1', 'user', 'bob');
        await token('r1', 'robot', 'ci');
        await token('x1', 'robot', 'alice');
        await token('x2', 'user', 'ci');

        const before = Date.now();
        assert.equal(await store.deleteUser('alice'), true);
        const after = Date.now();
        for (const id of ['u1', 'u2']) {
          assertWithin((await store.getRefreshToken(id))?.revokedAt, before, after, `${id} revokedAt`);
        }
        assert.equal((await store.getRefreshToken('b1'))?.revokedAt, null);
        assert.equal((await store.getRefreshToken('x1'))?.revokedAt, null);

        assert.equal(await store.deleteRobot('ci'), true);
        assert.ok((await store.getRefreshToken('r1'))?.revokedAt instanceof Date);
        assert.equal((await store.getRefreshToken('x2'))?.revokedAt, null);
        assert.equal((await store.getRefreshToken('b1'))?.revokedAt, null);
      });
    });

    // --- audit log -------------------------------------------------------------------------------

    describe('audit log', () => {
      const event = (fields: Partial<AuditEventInput> & { time: Date }): AuditEventInput => ({
        actor: 'alice',
        actorKind: 'user',
        action: 'push',
        target: 'acme/app:v1',
        sourceAddr: '192.0.2.1',
        success: true,
        detail: null,
        ...fields,
      });
      /** The events of `page` without their ids, for comparison with inputs. */
      const withoutIds = (page: Page<AuditEvent>): AuditEventInput[] =>
        page.items.map(({ id: _id, ...rest }) => rest);

      it('appends events and returns them newest first with every field', async () => {
        const first = event({
          time: new Date(T0),
          detail: { nested: { list: [1, 'two', null] }, flag: true },
          sourceAddr: '2001:db8::1',
        });
        const second = event({
          time: new Date(T0 + 1),
          actor: null,
          actorKind: 'system',
          action: 'gc.run',
          target: null,
          sourceAddr: null,
          success: false,
        });
        await store.appendAudit(first);
        await store.appendAudit(second);
        const page = await store.queryAudit({ limit: 10 });
        assert.equal(page.hasMore, false);
        assert.deepEqual(withoutIds(page), [second, first]);
        const [newer, older] = page.items;
        assert.ok(newer && older && newer.id > older.id, 'newer events have larger ids');
        assert.ok(Number.isSafeInteger(older.id));
      });

      it('orders by id, not by time', async () => {
        await store.appendAudit(event({ time: new Date(T0 + 5000), action: 'late-clock' }));
        await store.appendAudit(event({ time: new Date(T0), action: 'early-clock' }));
        assert.deepEqual(
          (await store.queryAudit({ limit: 10 })).items.map((e) => e.action),
          ['early-clock', 'late-clock'],
        );
      });

      describe('filters', () => {
        // i: time T0 + i s; actors alternate; actions and targets vary; every third fails.
        const EVENTS: AuditEventInput[] = [
          event({ time: new Date(T0 + 0), actor: 'alice', action: 'login', target: null }),
          event({ time: new Date(T0 + 1000), actor: 'bob', action: 'push', target: 'acme/app:v1' }),
          event({
            time: new Date(T0 + 2000),
            actor: 'alice',
            action: 'user.create',
            target: 'carol',
            success: false,
          }),
          event({ time: new Date(T0 + 3000), actor: 'bob', action: 'user.delete', target: 'carol' }),
          event({ time: new Date(T0 + 4000), actor: 'alice', action: 'push', target: 'acme/app:v2' }),
          event({
            time: new Date(T0 + 5000),
            actor: 'robot$ci',
            actorKind: 'robot',
            action: 'pull',
            target: 'acme/application:x',
            success: false,
          }),
          event({ time: new Date(T0 + 6000), actor: 'alice', action: 'user', target: 'acme/app' }),
          event({
            time: new Date(T0 + 7000),
            actor: null,
            actorKind: 'system',
            action: 'users.purge',
            target: null,
          }),
          event({
            time: new Date(T0 + 8000),
            actor: 'bob',
            action: 'member.set',
            target: 'acme',
            success: false,
          }),
        ];

        beforeEach(async () => {
          for (const e of EVENTS) await store.appendAudit(e);
        });

        /** Inputs of EVENTS matching `keep`, newest first. */
        const expected = (keep: (e: AuditEventInput, i: number) => boolean) => EVENTS.filter(keep).reverse();
        const query = async (q: Omit<AuditQuery, 'limit'>) =>
          withoutIds(await store.queryAudit({ limit: 100, ...q }));

        it('no filter returns everything', async () => {
          assert.deepEqual(
            await query({}),
            expected(() => true),
          );
        });

        it('actor (exact)', async () => {
          assert.deepEqual(
            await query({ actor: 'alice' }),
            expected((e) => e.actor === 'alice'),
          );
          assert.deepEqual(
            await query({ actor: 'robot$ci' }),
            expected((e) => e.actor === 'robot$ci'),
          );
          assert.deepEqual(await query({ actor: 'Alice' }), []);
          assert.deepEqual(await query({ actor: 'ali' }), []);
        });

        it('action: exact, or a prefix ending with a dot', async () => {
          assert.deepEqual(
            await query({ action: 'push' }),
            expected((e) => e.action === 'push'),
          );
          assert.deepEqual(
            await query({ action: 'user' }),
            expected((e) => e.action === 'user'),
          );
          assert.deepEqual(
            await query({ action: 'user.' }),
            expected((e) => e.action.startsWith('user.')),
          );
          assert.equal((await query({ action: 'user.' })).length, 2, 'not "user" nor "users.purge"');
          assert.deepEqual(await query({ action: 'User.' }), []);
          assert.deepEqual(await query({ action: 'us' }), [], 'no prefix match without the dot');
        });

        it('target: exact, or a prefix ending with a star', async () => {
          assert.deepEqual(
            await query({ target: 'carol' }),
            expected((e) => e.target === 'carol'),
          );
          assert.deepEqual(
            await query({ target: 'acme/app' }),
            expected((e) => e.target === 'acme/app'),
          );
          assert.deepEqual(
            await query({ target: 'acme/app*' }),
            expected((e) => e.target?.startsWith('acme/app') === true),
          );
          assert.deepEqual(
            await query({ target: 'acme/app:*' }),
            expected((e) => e.target?.startsWith('acme/app:') === true),
          );
          assert.equal((await query({ target: '*' })).length, EVENTS.filter((e) => e.target !== null).length);
          assert.deepEqual(await query({ target: 'ACME/*' }), []);
        });

        it('success', async () => {
          assert.deepEqual(
            await query({ success: false }),
            expected((e) => !e.success),
          );
          assert.deepEqual(
            await query({ success: true }),
            expected((e) => e.success),
          );
        });

        it('since (inclusive) and until (exclusive)', async () => {
          assert.deepEqual(
            await query({ since: new Date(T0 + 6000) }),
            expected((e) => e.time.getTime() >= T0 + 6000),
          );
          assert.deepEqual(
            await query({ until: new Date(T0 + 2000) }),
            expected((e) => e.time.getTime() < T0 + 2000),
          );
          assert.deepEqual(await query({ since: new Date(T0 + 2000), until: new Date(T0 + 4000) }), [
            EVENTS[3],
            EVENTS[2],
          ]);
          assert.deepEqual(await query({ since: new Date(T0 + 9000) }), []);
        });

        it('before (id cursor)', async () => {
          const all = (await store.queryAudit({ limit: 100 })).items;
          const pivot = all[3];
          assert.ok(pivot);
          const older = await store.queryAudit({ limit: 100, before: pivot.id });
          assert.deepEqual(older.items, all.slice(4));
          assert.deepEqual((await store.queryAudit({ limit: 100, before: all.at(-1)?.id ?? 0 })).items, []);
        });

        it('every filter combined', async () => {
          assert.deepEqual(
            await query({ actor: 'alice', action: 'push', success: true }),
            expected((e) => e.actor === 'alice' && e.action === 'push' && e.success),
          );
          assert.deepEqual(await query({ actor: 'bob', action: 'user.', target: 'carol', success: true }), [
            EVENTS[3],
          ]);
          assert.deepEqual(await query({ actor: 'alice', action: 'user.', success: true }), []);
          assert.deepEqual(
            await query({
              target: 'acme*',
              success: false,
              since: new Date(T0 + 1000),
              until: new Date(T0 + 8000),
            }),
            [EVENTS[5]],
          );
          const all = (await store.queryAudit({ limit: 100 })).items;
          const cursor = all.find((e) => e.action === 'user')?.id;
          assert.deepEqual(await query({ actor: 'alice', target: 'acme/*', before: cursor }), [EVENTS[4]]);
        });

        it('limit 0 returns nothing but reports matches', async () => {
          assert.deepEqual(await store.queryAudit({ limit: 0 }), { items: [], hasMore: true });
          assert.deepEqual(await store.queryAudit({ limit: 0, actor: 'nobody' }), {
            items: [],
            hasMore: false,
          });
        });
      });

      it('pages through 25 events with limit 10 using `before`', async () => {
        for (let i = 0; i < 25; i++) {
          await store.appendAudit(event({ time: new Date(T0 + i), action: 'push', target: `acme/app:${i}` }));
          await store.appendAudit(event({ time: new Date(T0 + i), action: 'pull', target: `acme/app:${i}` }));
        }
        const pages: Page<AuditEvent>[] = [];
        let before: number | undefined;
        for (;;) {
          const page = await store.queryAudit({ limit: 10, action: 'push', before });
          pages.push(page);
          if (!page.hasMore) break;
          before = page.items.at(-1)?.id;
          assert.ok(pages.length < 10, 'pagination does not terminate');
        }
        assert.deepEqual(
          pages.map((p) => [p.items.length, p.hasMore]),
          [
            [10, true],
            [10, true],
            [5, false],
          ],
        );
        const items = pages.flatMap((p) => p.items);
        assert.deepEqual(
          items.map((e) => e.target),
          Array.from({ length: 25 }, (_, i) => `acme/app:${24 - i}`),
        );
        assert.ok(items.every((e) => e.action === 'push'));
        const ids = items.map((e) => e.id);
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => b - a),
          'ids strictly descending',
        );
        assert.equal(new Set(ids).size, 25);
        // An exactly full last page has nothing more.
        const last = await store.queryAudit({ limit: 5, action: 'push', before: pages[1]?.items.at(-1)?.id });
        assert.equal(last.items.length, 5);
        assert.equal(last.hasMore, false);
      });

      it('prefix filters treat LIKE and GLOB wildcards in the data and the query literally', async () => {
        const targets = [
          'team/app%x',
          'team/app_y',
          'team/appZ',
          'team/ap',
          'team\\app',
          'Team/app1',
          'team/a*b',
          'team/a?c',
          'team/[x]',
          'team/a\\b',
        ];
        for (const [i, target] of targets.entries()) {
          await store.appendAudit(event({ time: new Date(T0 + i), target }));
        }
        await store.appendAudit(event({ time: new Date(T0), action: 'user_create', target: null }));
        await store.appendAudit(event({ time: new Date(T0), action: 'user%x.y', target: null }));
        await store.appendAudit(event({ time: new Date(T0), action: 'USER.create', target: null }));
        await store.appendAudit(event({ time: new Date(T0), action: 'user.create', target: null }));

        const targetsOf = async (target: string) =>
          (await store.queryAudit({ limit: 100, target })).items.map((e) => e.target).reverse();
        assert.deepEqual(await targetsOf('team/app*'), ['team/app%x', 'team/app_y', 'team/appZ']);
        assert.deepEqual(await targetsOf('team/app%*'), ['team/app%x']);
        assert.deepEqual(await targetsOf('team/app_*'), ['team/app_y']);
        assert.deepEqual(await targetsOf('team\\*'), ['team\\app']);
        assert.deepEqual(await targetsOf('team/a\\*'), ['team/a\\b']);
        assert.deepEqual(await targetsOf('team/a**'), ['team/a*b']);
        assert.deepEqual(await targetsOf('team/a?*'), ['team/a?c']);
        assert.deepEqual(await targetsOf('team/[*'), ['team/[x]']);
        assert.deepEqual(await targetsOf('%*'), []);
        assert.deepEqual(await targetsOf('_eam/*'), []);
        assert.deepEqual(await targetsOf('team/ap'), ['team/ap'], 'without a star: exact');
        assert.deepEqual(await targetsOf('team/a*b'), ['team/a*b'], 'a star inside: exact');
        assert.deepEqual(await targetsOf('team/app%x'), ['team/app%x']);
        assert.deepEqual(await targetsOf('team/app%'), []);

        const actionsOf = async (action: string) =>
          (await store.queryAudit({ limit: 100, action })).items.map((e) => e.action).reverse();
        assert.deepEqual(await actionsOf('user.'), ['user.create']);
        assert.deepEqual(await actionsOf('user%.'), []);
        assert.deepEqual(await actionsOf('user%x.'), ['user%x.y']);
        assert.deepEqual(await actionsOf('user_'), [], 'no dot: exact, and _ is no wildcard');
        assert.deepEqual(await actionsOf('user_create'), ['user_create']);
        assert.deepEqual(await actionsOf('user%x.y'), ['user%x.y']);
      });
    });

    describe('failed logins', () => {
      const fail = (account: string, address: string, at: number) =>
        store.recordLoginFailure({ account, address, at: new Date(T0 + at) });
      const times = (dates: Date[]) => dates.map((d) => d.getTime() - T0);

      it('counts recent failures per account and address, and per address', async () => {
        await fail('alice', '10.0.0.1', 1);
        await fail('alice', '10.0.0.1', 3);
        await fail('alice', '10.0.0.2', 2);
        await fail('bob', '10.0.0.1', 4);
        await fail('Alice', '10.0.0.1', 5);
        const since = new Date(T0 + 2);
        assert.deepEqual(
          times(await store.recentLoginFailures({ account: 'alice', address: '10.0.0.1', since, limit: 10 })),
          [3],
          'only that pair, at or after since, case-sensitive',
        );
        assert.deepEqual(
          times(await store.recentLoginFailures({ address: '10.0.0.1', since: new Date(T0), limit: 10 })),
          [5, 4, 3, 1],
          'every account from the address, newest first',
        );
        assert.deepEqual(
          times(await store.recentLoginFailures({ address: '10.0.0.1', since: new Date(T0), limit: 2 })),
          [5, 4],
        );
        assert.deepEqual(
          times(await store.recentLoginFailures({ address: '10.0.0.3', since: new Date(T0), limit: 2 })),
          [],
        );
      });

      it('lists the groups that reach a count', async () => {
        for (let i = 0; i < 3; i++) await fail('alice', '10.0.0.1', i);
        await fail('bob', '10.0.0.1', 10);
        await fail('carol', '10.0.0.2', 11);
        await fail('carol', '10.0.0.2', 12);
        await fail('old', '10.0.0.9', -100);
        await fail('old', '10.0.0.9', -99);
        const groups = await store.loginFailureGroups({ since: new Date(T0), perPair: 2, perAddress: 4 });
        assert.deepEqual(
          groups.map((g) => [g.account, g.address, g.failures, g.last.getTime() - T0]),
          [
            [null, '10.0.0.1', 4, 10],
            ['alice', '10.0.0.1', 3, 2],
            ['carol', '10.0.0.2', 2, 12],
          ],
        );
      });

      it('forgets failures by account, address, both, or age', async () => {
        await fail('alice', '10.0.0.1', 1);
        await fail('alice', '10.0.0.2', 2);
        await fail('bob', '10.0.0.1', 3);
        await fail('bob', '10.0.0.2', 4);
        await fail('carol', '10.0.0.3', 5);
        const all = async (address: string) =>
          (await store.recentLoginFailures({ address, since: new Date(0), limit: 100 })).length;
        assert.equal(await store.clearLoginFailures({ account: 'alice', address: '10.0.0.1' }), 1);
        assert.equal(await all('10.0.0.1'), 1);
        assert.equal(await all('10.0.0.2'), 2, 'the same account from another address stays');
        assert.equal(await store.clearLoginFailures({ account: 'alice' }), 1);
        assert.equal(await store.clearLoginFailures({ address: '10.0.0.2' }), 1);
        assert.equal(await store.clearLoginFailures({ before: new Date(T0 + 5) }), 1);
        assert.equal(await all('10.0.0.1'), 0);
        assert.equal(await all('10.0.0.3'), 1);
        assert.equal(await store.clearLoginFailures({ account: 'nobody' }), 0);
        await assert.rejects(store.clearLoginFailures({}), RangeError, 'no filter is refused, never "all"');
      });
    });
  });
}
