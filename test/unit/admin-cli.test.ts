/**
 * The administration commands, run as the real CLI (`node --import tsx src/main.ts ...`) on a temporary data
 * directory: users, robots (the secret is printed once and authenticates), teams, namespaces, members, rules,
 * signing keys and the audit log, as tables and as JSON; and the exit codes of failures (1 for a refused or
 * invalid operation, 2 for a configuration error).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashSecret, verifyPassword } from '../../src/auth/passwords.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { runBerth, succeeded, type Run } from '../helpers/cli.ts';

const berth = runBerth;

const ok = succeeded;

/** Asserts a failure: the exit code, nothing on stdout, a `berth ...:` message on stderr matching `message`. */
function fails(r: Run, status: number, message: RegExp): void {
  assert.equal(r.status, status, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^berth [a-z -]+: /);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('berth admin CLI', () => {
  let data: string;
  let services: Services;
  let robotSecret = '';
  let ruleId = 0;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('users: add (a generated password printed once, or one from stdin), list as a table and JSON, set-admin', async () => {
    const [aliceRun, bobRun] = await Promise.all([
      berth(data, ['users', 'add', 'alice', '--admin', '--email', 'alice@example.com']),
      berth(data, ['users', 'add', 'bob', '--password-stdin'], { input: 'bob-secret-pw\n' }),
    ]);
    const alice = ok(aliceRun, 'add alice');
    assert.match(alice, /Created administrator alice\./);
    const password = /Password \(shown only now\): (\S+)/.exec(alice)?.[1] as string;
    assert.ok(password && password.length >= 20, alice);
    assert.equal(occurrences(alice, password), 1);
    const stored = await services.auth.store.getUser('alice');
    assert.equal(stored?.isAdmin, true);
    assert.equal(stored?.email, 'alice@example.com');
    assert.ok(await verifyPassword(password, stored?.passwordHash as string));
    assert.equal(ok(bobRun, 'add bob'), 'Created user bob.\n', 'a given password is not printed');
    assert.ok(
      await verifyPassword(
        'bob-secret-pw',
        (await services.auth.store.getUser('bob'))?.passwordHash as string,
      ),
    );

    const [tableRun, jsonRun, pageRun, adminRun] = await Promise.all([
      berth(data, ['users', 'list']),
      berth(data, ['users', 'list', '--json']),
      berth(data, ['users', 'list', '--json', '--limit', '1']),
      berth(data, ['users', 'set-admin', 'bob']),
    ]);
    const lines = ok(tableRun, 'list').trim().split('\n');
    assert.match(lines[0] as string, /^USERNAME\s+ADMIN\s+DISABLED\s+PASSWORD\s+EMAIL\s+CREATED$/);
    assert.match(lines[1] as string, /^alice\s+yes\s+no\s+yes\s+alice@example\.com\s+\d{4}-/);
    assert.match(lines[2] as string, /^bob\s+(yes|no)\s+no\s+yes\s+-\s+\d{4}-/);
    const json = JSON.parse(ok(jsonRun, 'list --json')) as {
      items: Record<string, unknown>[];
      next: string | null;
    };
    assert.deepEqual(
      json.items.map((u) => u.username),
      ['alice', 'bob'],
    );
    assert.equal(json.next, null);
    assert.ok(json.items.every((u) => !('passwordHash' in u) && !('password' in u)));
    assert.deepEqual(JSON.parse(ok(pageRun, '--limit')).next, 'alice');
    assert.match(ok(adminRun, 'set-admin'), /bob is now an administrator/);
    assert.equal((await services.auth.store.getUser('bob'))?.isAdmin, true);
  });

  it('users passwd, disable, enable and delete; the last administrator is kept', async () => {
    const [passwdRun, carolRun] = await Promise.all([
      berth(data, ['users', 'passwd', 'bob']),
      berth(data, ['users', 'add', 'carol', '--password-stdin'], { input: 'carol-first-pw' }),
    ]);
    const password = /Password \(shown only now\): (\S+)/.exec(ok(passwdRun, 'passwd'))?.[1] as string;
    assert.ok(
      await verifyPassword(password, (await services.auth.store.getUser('bob'))?.passwordHash as string),
    );
    ok(carolRun, 'add carol');
    const [disableRun, deleteRun] = await Promise.all([
      berth(data, ['users', 'disable', 'bob']),
      berth(data, ['users', 'delete', 'carol']),
    ]);
    ok(disableRun, 'disable');
    assert.equal((await services.auth.store.getUser('bob'))?.disabled, true);
    assert.match(ok(deleteRun, 'delete'), /Deleted user carol/);
    assert.equal(await services.auth.store.getUser('carol'), null);
    ok(await berth(data, ['users', 'enable', 'bob']), 'enable');
    assert.equal((await services.auth.store.getUser('bob'))?.disabled, false);
    ok(await berth(data, ['users', 'set-admin', 'bob', 'false']), 'demote bob');
    fails(await berth(data, ['users', 'delete', 'alice']), 1, /last enabled administrator/);
    assert.equal((await services.auth.store.getUser('alice'))?.isAdmin, true);
  });

  it('robots: add prints the secret once with the login name and it authenticates; list; rotate, revoke, delete', async () => {
    const [ciRun, tmpRun] = await Promise.all([
      berth(data, ['robots', 'add', 'ci', '--expires', '30d', '--description', 'CI builds']),
      berth(data, ['robots', 'add', 'robot$tmp']),
    ]);
    const out = ok(ciRun, 'robots add');
    ok(tmpRun, 'robots add tmp');
    assert.match(out, /Login name: robot\$ci/);
    robotSecret = /Secret:\s+(\S+)/.exec(out)?.[1] as string;
    assert.ok(robotSecret && robotSecret.length >= 40, out);
    assert.equal(occurrences(out, robotSecret), 1, 'the secret is printed exactly once');
    const robot = await services.auth.store.getRobot('robot$ci');
    assert.equal(robot?.secretHash, hashSecret(robotSecret));
    assert.equal(robot?.description, 'CI builds');
    const days = ((robot?.expiresAt?.getTime() ?? 0) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, String(days));
    const principal = await services.auth.authenticator.login('robot$ci', robotSecret, {
      sourceAddr: '127.0.0.1',
      via: 'test',
    });
    assert.deepEqual(principal, { kind: 'robot', name: 'robot$ci', isAdmin: false });

    const [listRun, jsonRun, rotateRun] = await Promise.all([
      berth(data, ['robots', 'list']),
      berth(data, ['robots', 'list', '--json']),
      berth(data, ['robots', 'rotate', 'tmp', '--json']),
    ]);
    const list = ok(listRun, 'robots list');
    assert.match(list, /^NAME\s+STATUS\s+EXPIRES/);
    assert.match(list, /robot\$ci\s+active\s+\d{4}-/);
    const json = ok(jsonRun, 'robots list --json');
    assert.ok(!json.includes(robotSecret) && !json.includes('secretHash'));
    assert.equal((JSON.parse(json) as { items: { name: string }[] }).items[0]?.name, 'robot$ci');
    const rotated = JSON.parse(ok(rotateRun, 'rotate')) as { name: string; secret: string };
    assert.equal(rotated.name, 'robot$tmp');
    assert.equal((await services.auth.store.getRobot('robot$tmp'))?.secretHash, hashSecret(rotated.secret));
    const revoked = JSON.parse(ok(await berth(data, ['robots', 'revoke', 'tmp', '--json']), 'revoke')) as {
      status: string;
    };
    assert.equal(revoked.status, 'revoked');
    ok(await berth(data, ['robots', 'delete', 'robot$tmp']), 'delete');
    assert.equal(await services.auth.store.getRobot('robot$tmp'), null);
  });

  it('teams, namespaces, members and rules', async () => {
    const created = await Promise.all([
      berth(data, ['teams', 'add', 'devs', '--description', 'developers']),
      berth(data, ['namespaces', 'add', 'team', '--public']),
    ]);
    created.forEach((r) => ok(r, 'add'));
    assert.equal((await services.auth.store.getNamespace('team'))?.visibility, 'public');
    const changes = await Promise.all([
      berth(data, ['teams', 'add-member', 'devs', 'bob']),
      berth(data, ['namespaces', 'set', 'team', '--private', '--description', 'the team']),
      berth(data, ['members', 'set', 'team', 'user', 'bob', 'developer']),
      berth(data, ['members', 'set', 'team', 'robot', 'ci', 'reader']),
      berth(data, ['members', 'set', 'team', 'team', 'devs', 'maintainer']),
      berth(data, ['rules', 'add', 'team', 'app/*', 'user', 'bob', 'maintainer', '--json']),
    ]);
    changes.forEach((r) => ok(r, 'change'));
    assert.deepEqual(await services.auth.store.listTeamMembers('devs'), ['bob']);
    const ns = await services.auth.store.getNamespace('team');
    assert.equal(ns?.visibility, 'private');
    assert.equal(ns?.description, 'the team');
    const added = JSON.parse((changes[5] as Run).stdout) as { id: number; pattern: string };
    assert.equal(added.pattern, 'app/*');
    ruleId = added.id;

    const [teamMembers, nsList, memberTable, memberJson, ruleTable] = await Promise.all([
      berth(data, ['teams', 'members', 'devs', '--json']),
      berth(data, ['namespaces', 'list']),
      berth(data, ['members', 'list', 'team']),
      berth(data, ['members', 'list', 'team', '--json']),
      berth(data, ['rules', 'list', 'team']),
    ]);
    assert.deepEqual(JSON.parse(ok(teamMembers, 'team members')), { items: ['bob'], next: null });
    assert.match(
      ok(nsList, 'ns list'),
      /^NAME\s+VISIBILITY\s+CREATED\s+DESCRIPTION\nteam\s+private\s+\S+\s+the team\n$/,
    );
    assert.equal(
      ok(memberTable, 'members list'),
      [
        'KIND   PRINCIPAL  ROLE',
        'robot  robot$ci   reader',
        'team   devs       maintainer',
        'user   bob        developer',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(ok(memberJson, 'members --json')) as { items: unknown[] };
    assert.equal(json.items.length, 3);
    assert.deepEqual(json.items[0], {
      namespace: 'team',
      kind: 'robot',
      principal: 'robot$ci',
      role: 'reader',
    });
    assert.match(
      ok(ruleTable, 'rules list'),
      new RegExp(
        `^ID\\s+PATTERN\\s+KIND\\s+PRINCIPAL\\s+ROLE\\n${ruleId}\\s+app/\\*\\s+user\\s+bob\\s+maintainer\\n$`,
      ),
    );
    // The rule's role is live for the authorizer.
    const actions = await services.auth.authorizer.repositoryActions(
      { kind: 'user', name: 'bob', isAdmin: false },
      'team/app/web',
    );
    assert.ok(actions.has('delete'));

    const [removeRun, deleteRun] = await Promise.all([
      berth(data, ['members', 'remove', 'team', 'team', 'devs']),
      berth(data, ['rules', 'delete', String(ruleId)]),
    ]);
    ok(removeRun, 'members remove');
    assert.match(ok(deleteRun, 'rules delete'), /Deleted rule \d+ of team/);
    assert.equal((await services.auth.store.listMembers('team')).length, 2);
    assert.deepEqual(await services.auth.store.listRules('team'), []);
  });

  it('keys rotate, list and prune', async () => {
    const out = ok(await berth(data, ['keys', 'rotate']), 'rotate');
    const kid = /New signing key (\S+)\./.exec(out)?.[1] as string;
    assert.ok(kid, out);
    const again = JSON.parse(ok(await berth(data, ['keys', 'rotate', '--json']), 'rotate --json')) as {
      kid: string;
      active: boolean;
    };
    assert.equal(again.active, true);
    const [jsonRun, tableRun, pruneRun] = await Promise.all([
      berth(data, ['keys', 'list', '--json']),
      berth(data, ['keys', 'list']),
      berth(data, ['keys', 'prune']),
    ]);
    const list = JSON.parse(ok(jsonRun, 'keys list')) as {
      items: { kid: string; active: boolean; retiredAt: string | null }[];
    };
    assert.deepEqual(
      list.items.map((k) => [k.kid, k.active, k.retiredAt !== null]),
      [
        [again.kid, true, false],
        [kid, false, true],
      ],
    );
    assert.doesNotMatch(JSON.stringify(list), /privateJwk|"d":/);
    assert.match(
      ok(tableRun, 'keys table'),
      /^KID\s+ALGORITHM\s+STATE\s+CREATED\s+RETIRED\n\S+\s+ES256\s+signing/,
    );
    assert.match(ok(pruneRun, 'prune'), /No key to prune/);
  });

  it('audit: every change as the system, with filters, the cursor, a table and JSON', async () => {
    const all = JSON.parse(ok(await berth(data, ['audit', '--json', '--limit', '1000']), 'audit')) as {
      events: {
        id: number;
        actor: string | null;
        actorKind: string;
        action: string;
        target: string;
        detail: { via?: string };
      }[];
      next: string | null;
    };
    assert.equal(all.next, null);
    const actions = new Set(all.events.map((e) => e.action));
    for (const a of [
      'user.create',
      'user.update',
      'user.delete',
      'robot.create',
      'robot.rotate',
      'robot.revoke',
      'robot.delete',
      'team.create',
      'team.member.add',
      'namespace.create',
      'namespace.update',
      'member.set',
      'member.remove',
      'rule.add',
      'rule.delete',
      'key.rotate',
      'key.prune',
    ]) {
      assert.ok(actions.has(a), `${a} recorded`);
    }
    const changes = all.events.filter((e) => e.action !== 'login');
    assert.ok(changes.every((e) => e.actor === null && e.actorKind === 'system' && e.detail?.via === 'cli'));
    assert.ok(
      !all.events.some((e) => e.action === 'user.delete' && e.target === 'alice'),
      'refused: not recorded',
    );

    const [usersRun, targetRun, noneRun, pageRun, olderRun] = await Promise.all([
      berth(data, ['audit', '--action', 'user.', '--json']),
      berth(data, ['audit', '--target', 'team', '--json']),
      berth(data, ['audit', '--since', '2001-01-01', '--until', '2001-02-01', '--json']),
      berth(data, ['audit', '--limit', '2']),
      berth(data, [
        'audit',
        '--before',
        String(all.events[1]?.id),
        '--limit',
        '1',
        '--since',
        '1h',
        '--json',
      ]),
    ]);
    const users = JSON.parse(ok(usersRun, 'action prefix')) as { events: { action: string }[] };
    assert.ok(users.events.length > 0 && users.events.every((e) => e.action.startsWith('user.')));
    const target = JSON.parse(ok(targetRun, 'target')) as { events: { target: string }[] };
    assert.ok(target.events.length >= 5 && target.events.every((e) => e.target === 'team'));
    assert.deepEqual((JSON.parse(ok(noneRun, 'time')) as { events: unknown[] }).events, []);
    const page = ok(pageRun, 'page');
    const lines = page.trim().split('\n');
    assert.match(lines[0] as string, /^ID\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OK\s+SOURCE\s+DETAIL$/);
    assert.equal(lines.length, 4, page);
    assert.match(lines[1] as string, /^\d+\s+\d{4}-\S+\s+\(system\)\s+/);
    assert.equal(/older events: --before (\d+)/.exec(page)?.[1], String(all.events[1]?.id));
    const older = JSON.parse(ok(olderRun, 'before')) as { events: { id: number }[]; next: string | null };
    assert.deepEqual(
      older.events.map((e) => e.id),
      [all.events[2]?.id],
    );
    assert.equal(older.next, String(all.events[2]?.id));
  });

  it('users locks lists failed-login locks and users unlock lifts them, by name or by address', async () => {
    const store = services.auth.store;
    const now = Date.now();
    for (let i = 0; i < 10; i++) {
      await store.recordLoginFailure({ account: 'dave', address: '192.0.2.7', at: new Date(now - i) });
      await store.recordLoginFailure({ account: 'dave', address: '192.0.2.8', at: new Date(now - i) });
    }
    for (let i = 0; i < 100; i++) {
      await store.recordLoginFailure({
        account: `guess${i}`,
        address: '198.51.100.1',
        at: new Date(now - i),
      });
    }
    const lines = ok(await berth(data, ['users', 'locks']), 'users locks')
      .trim()
      .split('\n');
    assert.match(lines[0] as string, /^LOGIN\s+ADDRESS\s+FAILURES\s+UNTIL$/);
    assert.match(lines[1] as string, /^dave\s+192\.0\.2\.7\s+10\s+\d{4}-/);
    assert.match(lines[2] as string, /^dave\s+192\.0\.2\.8\s+10\s+\d{4}-/);
    assert.match(lines[3] as string, /^\(every name\)\s+198\.51\.100\.1\s+100\s+\d{4}-/);
    assert.equal(lines.length, 4, 'guesses of one name each are no lock of their own');

    assert.equal(
      ok(await berth(data, ['users', 'unlock', 'dave', '--address', '192.0.2.7']), 'unlock pair'),
      'Unlocked dave from 192.0.2.7 (10 failed logins forgotten).\n',
    );
    const locks = JSON.parse(ok(await berth(data, ['users', 'locks', '--json']), 'locks --json')) as {
      items: { account: string | null; address: string }[];
    };
    assert.deepEqual(
      locks.items.map((l) => [l.account, l.address]),
      [
        ['dave', '192.0.2.8'],
        [null, '198.51.100.1'],
      ],
    );
    ok(await berth(data, ['users', 'unlock', '--address', '198.51.100.1']), 'unlock address');
    ok(await berth(data, ['users', 'unlock', 'dave']), 'unlock name');
    assert.equal(ok(await berth(data, ['users', 'locks']), 'locks'), 'No login is locked.\n');
    fails(await berth(data, ['users', 'unlock']), 1, /name a login name, or give --address/);
    const audit = await store.queryAudit({ action: 'login.unlock', limit: 10 });
    assert.deepEqual(
      audit.items.map((e) => e.target),
      ['dave', '198.51.100.1', 'dave'],
    );
  });

  it('failures: a message on stderr and exit 1; configuration errors exit 2', async () => {
    const bad = path.join(data, 'bad.yaml');
    await writeFile(bad, 'auth: [not, a, mapping\n');
    const unknownKey = path.join(data, 'unknown.yaml');
    await writeFile(unknownKey, 'nonsense: true\n');
    const [
      show,
      invalidName,
      role,
      rule,
      missing,
      expiry,
      empty,
      short,
      configMissing,
      configBad,
      configKey,
    ] = await Promise.all([
      berth(data, ['users', 'show', 'nobody']),
      berth(data, ['users', 'add', 'Not_Valid']),
      berth(data, ['members', 'set', 'team', 'user', 'bob', 'owner']),
      berth(data, ['rules', 'delete', 'abc']),
      berth(data, ['rules', 'delete', '999999']),
      berth(data, ['robots', 'add', 'late', '--expires', 'yesterday']),
      berth(data, ['users', 'add', 'empty', '--password-stdin'], { input: '' }),
      berth(data, ['users', 'add', 'short', '--password-stdin'], { input: 'short\n' }),
      berth(data, ['users', 'list', '--config', path.join(data, 'missing.yaml')], { noData: true }),
      berth(data, ['users', 'list', '--config', bad], { noData: true }),
      berth(data, ['audit', '--config', unknownKey], { noData: true }),
    ]);
    fails(show, 1, /user nobody does not exist/);
    fails(invalidName, 1, /invalid username/);
    fails(role, 1, /invalid role "owner"/);
    fails(rule, 1, /rule id/);
    fails(missing, 1, /rule 999999 does not exist/);
    fails(expiry, 1, /invalid expiry/);
    fails(empty, 1, /stdin is empty/);
    fails(short, 1, /at least 8/);
    fails(configMissing, 2, /cannot read config file/);
    fails(configBad, 2, /not valid YAML/);
    fails(configKey, 2, /unknown config key nonsense/);
    assert.equal(await services.auth.store.getUser('short'), null);
  });
});
