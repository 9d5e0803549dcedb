/** `berth users`, `berth robots` and `berth teams`. */
import type { Command } from 'commander';
import { invalid } from '../../admin/errors.ts';
import { parseExpiry } from '../../admin/validation.ts';
import type { RobotView, UserView } from '../../admin/views.ts';
import {
  booleanArg,
  collect,
  common,
  fields,
  paging,
  readStdin,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
  type PageFlags,
} from './common.ts';

function userFields(u: UserView): string {
  return fields([
    ['username', u.username],
    ['email', u.email],
    ['admin', u.isAdmin],
    ['disabled', u.disabled],
    ['password', u.hasPassword ? 'set' : 'none (client certificates only)'],
    ['created', u.createdAt],
    ['updated', u.updatedAt],
  ]);
}

function robotFields(r: RobotView): string {
  return fields([
    ['name', r.name],
    ['description', r.description],
    ['status', r.status],
    ['expires', r.expiresAt ?? 'never'],
    ['revoked', r.revokedAt],
    ['created by', r.createdBy],
    ['created', r.createdAt],
    ['last used', r.lastUsedAt],
  ]);
}

/** The secret, once, with how to use it. */
function secretText(robot: RobotView, secret: string): string {
  return [
    `Login name: ${robot.name}`,
    `Secret:     ${secret}`,
    '',
    'The secret is shown only now: store it (e.g. in a CI secret variable). Log in with:',
    `  echo "$SECRET" | docker login REGISTRY -u '${robot.name}' --password-stdin`,
    '',
  ].join('\n');
}

async function passwordInput(flags: { passwordStdin?: boolean }): Promise<string | undefined> {
  if (!flags.passwordStdin) return undefined;
  const password = await readStdin();
  if (password === '') throw invalid('--password-stdin: stdin is empty', 'password');
  return password;
}

async function setUser(
  ctx: Context,
  name: string,
  changes: { isAdmin?: boolean; disabled?: boolean; email?: string | null },
  message: string,
): Promise<void> {
  const user = await ctx.admin.updateUser(ctx.actor, name, changes);
  ctx.out(ctx.json ? toJson(user) : message);
}

function registerUsers(program: Command): void {
  const users = program.command('users').description('manage local users');

  common(users.command('add <name>'))
    .description('create a user; without --password-stdin a password is generated and printed once')
    .option('--admin', 'make the user a system administrator')
    .option('--password-stdin', 'read the password from stdin')
    .option('--without-password', 'no password: the user authenticates with a client certificate only')
    .option('--email <email>', 'email address')
    .action(
      async (
        name: string,
        flags: CommonFlags & {
          admin?: boolean;
          passwordStdin?: boolean;
          withoutPassword?: boolean;
          email?: string;
        },
      ) =>
        run('users add', flags, async (ctx) => {
          if (flags.withoutPassword && flags.passwordStdin)
            throw invalid('--password-stdin and --without-password exclude each other');
          const password = flags.withoutPassword ? null : await passwordInput(flags);
          const r = await ctx.admin.createUser(ctx.actor, {
            username: name,
            ...(password !== undefined ? { password } : {}),
            email: flags.email ?? null,
            isAdmin: flags.admin === true,
          });
          if (ctx.json) {
            ctx.out(toJson(r.password === null ? r.user : { ...r.user, password: r.password }));
            return;
          }
          ctx.out(`Created ${r.user.isAdmin ? 'administrator' : 'user'} ${r.user.username}.`);
          if (r.password !== null) ctx.out(`Password (shown only now): ${r.password}`);
        }),
    );

  paging(common(users.command('list')))
    .description('list users')
    .action(async (flags: CommonFlags & PageFlags) =>
      run('users list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listUsers(ctx.actor, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['USERNAME', 'ADMIN', 'DISABLED', 'PASSWORD', 'EMAIL', 'CREATED'],
            r.items.map((u) => [u.username, u.isAdmin, u.disabled, u.hasPassword, u.email, u.createdAt]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(users.command('show <name>'))
    .description('show a user')
    .action(async (name: string, flags: CommonFlags) =>
      run('users show', flags, async (ctx) => {
        const user = await ctx.admin.getUser(ctx.actor, name);
        ctx.out(ctx.json ? toJson(user) : userFields(user));
      }),
    );

  common(users.command('passwd <name>'))
    .description(
      "set a user's password (generated and printed once without --password-stdin); revokes their refresh tokens",
    )
    .option('--password-stdin', 'read the password from stdin')
    .action(async (name: string, flags: CommonFlags & { passwordStdin?: boolean }) =>
      run('users passwd', flags, async (ctx) => {
        const password = await passwordInput(flags);
        const r = await ctx.admin.setPassword(ctx.actor, name, { password });
        if (ctx.json) {
          ctx.out(toJson(r.password === null ? r.user : { ...r.user, password: r.password }));
          return;
        }
        ctx.out(`Changed the password of ${name}.`);
        if (r.password !== null) ctx.out(`Password (shown only now): ${r.password}`);
      }),
    );

  common(users.command('delete <name>'))
    .description('delete a user with their memberships and refresh tokens')
    .action(async (name: string, flags: CommonFlags) =>
      run('users delete', flags, async (ctx) => {
        await ctx.admin.deleteUser(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ deleted: name }) : `Deleted user ${name}.`);
      }),
    );

  common(users.command('set-admin <name> [value]'))
    .description('make a user a system administrator (value true, the default) or not (false)')
    .action(async (name: string, value: string | undefined, flags: CommonFlags) =>
      run('users set-admin', flags, async (ctx) => {
        const isAdmin = value === undefined ? true : booleanArg(value);
        await setUser(
          ctx,
          name,
          { isAdmin },
          `${name} is ${isAdmin ? 'now' : 'no longer'} an administrator.`,
        );
      }),
    );

  common(users.command('disable <name>'))
    .description('disable a user (they cannot log in; their refresh tokens are revoked)')
    .action(async (name: string, flags: CommonFlags) =>
      run('users disable', flags, (ctx) => setUser(ctx, name, { disabled: true }, `Disabled ${name}.`)),
    );

  common(users.command('enable <name>'))
    .description('enable a disabled user')
    .action(async (name: string, flags: CommonFlags) =>
      run('users enable', flags, (ctx) => setUser(ctx, name, { disabled: false }, `Enabled ${name}.`)),
    );

  common(users.command('locks'))
    .description('list login names and addresses refused after too many failed logins')
    .action(async (flags: CommonFlags) =>
      run('users locks', flags, async (ctx) => {
        const r = await ctx.admin.listLoginLocks(ctx.actor);
        if (ctx.json) return ctx.out(toJson(r));
        if (r.items.length === 0) return ctx.out('No login is locked.');
        ctx.out(
          table(
            ['LOGIN', 'ADDRESS', 'FAILURES', 'UNTIL'],
            r.items.map((l) => [l.account ?? '(every name)', l.address, l.failures, l.until]),
          ),
        );
      }),
    );

  common(users.command('unlock [name]'))
    .description(
      'lift the failed-login lock of a login name (user or robot$...) from every address, or from --address only; without a name, lift the lock of --address for every name',
    )
    .option('--address <addr>', 'the client address')
    .action(async (name: string | undefined, flags: CommonFlags & { address?: string }) =>
      run('users unlock', flags, async (ctx) => {
        if (name === undefined && flags.address === undefined)
          throw invalid('name a login name, or give --address', 'name');
        const forgotten = await ctx.admin.unlockLogins(ctx.actor, {
          ...(name !== undefined ? { account: name } : {}),
          ...(flags.address !== undefined ? { address: flags.address } : {}),
        });
        if (ctx.json) return ctx.out(toJson({ forgotten }));
        const who = [name, flags.address && `from ${flags.address}`].filter(Boolean).join(' ');
        ctx.out(`Unlocked ${who} (${forgotten} failed login${forgotten === 1 ? '' : 's'} forgotten).`);
      }),
    );
}

function registerRobots(program: Command): void {
  const robots = program.command('robots').description('manage robot accounts (CI credentials)');

  common(robots.command('add <name>'))
    .description('create robot$NAME and print its secret once')
    .option('--expires <when>', 'expiry: a duration (30d, 12h), a date-time, or never', 'never')
    .option('--description <text>', 'what the robot is for')
    .action(async (name: string, flags: CommonFlags & { expires: string; description?: string }) =>
      run('robots add', flags, async (ctx) => {
        const { robot, secret } = await ctx.admin.createRobot(ctx.actor, {
          name,
          description: flags.description ?? '',
          expiresAt: parseExpiry(flags.expires, 'expires'),
        });
        if (ctx.json) return ctx.out(toJson({ ...robot, secret }));
        ctx.out(
          `Created robot ${robot.name}${robot.expiresAt ? ` (expires ${robot.expiresAt.toISOString()})` : ''}.`,
        );
        ctx.out(secretText(robot, secret));
      }),
    );

  paging(common(robots.command('list')))
    .description('list robot accounts')
    .action(async (flags: CommonFlags & PageFlags) =>
      run('robots list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listRobots(ctx.actor, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['NAME', 'STATUS', 'EXPIRES', 'LAST USED', 'CREATED BY', 'DESCRIPTION'],
            r.items.map((x) => [
              x.name,
              x.status,
              x.expiresAt ?? 'never',
              x.lastUsedAt,
              x.createdBy,
              x.description,
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(robots.command('show <name>'))
    .description('show a robot account')
    .action(async (name: string, flags: CommonFlags) =>
      run('robots show', flags, async (ctx) => {
        const robot = await ctx.admin.getRobot(ctx.actor, name);
        ctx.out(ctx.json ? toJson(robot) : robotFields(robot));
      }),
    );

  common(robots.command('rotate <name>'))
    .description('replace the secret of a robot and print the new one once')
    .option('--expires <when>', 'also set a new expiry: a duration (30d), a date-time, or never')
    .action(async (name: string, flags: CommonFlags & { expires?: string }) =>
      run('robots rotate', flags, async (ctx) => {
        const { robot, secret } = await ctx.admin.rotateRobot(
          ctx.actor,
          name,
          flags.expires === undefined ? {} : { expiresAt: parseExpiry(flags.expires, 'expires') },
        );
        if (ctx.json) return ctx.out(toJson({ ...robot, secret }));
        ctx.out(`Rotated the secret of ${robot.name}; the old one no longer works.`);
        ctx.out(secretText(robot, secret));
      }),
    );

  common(robots.command('revoke <name>'))
    .description('revoke a robot account for good (it stays listed)')
    .action(async (name: string, flags: CommonFlags) =>
      run('robots revoke', flags, async (ctx) => {
        const robot = await ctx.admin.revokeRobot(ctx.actor, name);
        ctx.out(ctx.json ? toJson(robot) : `Revoked ${robot.name}.`);
      }),
    );

  common(robots.command('delete <name>'))
    .description('delete a robot account with its memberships')
    .action(async (name: string, flags: CommonFlags) =>
      run('robots delete', flags, async (ctx) => {
        await ctx.admin.deleteRobot(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ deleted: name }) : `Deleted robot ${name}.`);
      }),
    );
}

function registerTeams(program: Command): void {
  const teams = program.command('teams').description('manage teams of users');

  common(teams.command('add <name>'))
    .description('create a team')
    .option('--description <text>', 'what the team is')
    .action(async (name: string, flags: CommonFlags & { description?: string }) =>
      run('teams add', flags, async (ctx) => {
        const team = await ctx.admin.createTeam(ctx.actor, { name, description: flags.description ?? '' });
        ctx.out(ctx.json ? toJson(team) : `Created team ${team.name}.`);
      }),
    );

  paging(common(teams.command('list')))
    .description('list teams')
    .action(async (flags: CommonFlags & PageFlags) =>
      run('teams list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listTeams(ctx.actor, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['NAME', 'CREATED', 'DESCRIPTION'],
            r.items.map((t) => [t.name, t.createdAt, t.description]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(teams.command('delete <name>'))
    .description('delete a team with its memberships')
    .action(async (name: string, flags: CommonFlags) =>
      run('teams delete', flags, async (ctx) => {
        await ctx.admin.deleteTeam(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ deleted: name }) : `Deleted team ${name}.`);
      }),
    );

  common(teams.command('add-member <team> <user>'))
    .description('add a user to a team')
    .action(async (team: string, user: string, flags: CommonFlags) =>
      run('teams add-member', flags, async (ctx) => {
        await ctx.admin.addTeamMember(ctx.actor, team, user);
        ctx.out(ctx.json ? toJson({ team, user }) : `Added ${user} to team ${team}.`);
      }),
    );

  common(teams.command('remove-member <team> <user>'))
    .description('remove a user from a team')
    .action(async (team: string, user: string, flags: CommonFlags) =>
      run('teams remove-member', flags, async (ctx) => {
        await ctx.admin.removeTeamMember(ctx.actor, team, user);
        ctx.out(ctx.json ? toJson({ team, removed: user }) : `Removed ${user} from team ${team}.`);
      }),
    );

  paging(common(teams.command('members <team>')))
    .description('list the members of a team')
    .action(async (team: string, flags: CommonFlags & PageFlags) =>
      run('teams members', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listTeamMembers(ctx.actor, team, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['USERNAME'],
            r.items.map((u) => [u]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );
}

export function registerAccountCommands(program: Command): void {
  registerUsers(program);
  registerRobots(program);
  registerTeams(program);
}
