/** `berth namespaces`, `berth members` and `berth rules`. */
import type { Command } from 'commander';
import { invalid } from '../../admin/errors.ts';
import type { NamespaceView } from '../../admin/views.ts';
import {
  collect,
  common,
  fields,
  paging,
  positiveInt,
  run,
  table,
  toJson,
  type CommonFlags,
  type PageFlags,
} from './common.ts';

function namespaceFields(ns: NamespaceView): string {
  return fields([
    ['name', ns.name],
    ['visibility', ns.visibility],
    ['description', ns.description],
    ['created', ns.createdAt],
  ]);
}

type VisibilityFlags = { public?: boolean; private?: boolean; description?: string };

function visibilityOf(flags: VisibilityFlags): 'public' | 'private' | undefined {
  if (flags.public && flags.private) throw invalid('--public and --private exclude each other');
  return flags.public ? 'public' : flags.private ? 'private' : undefined;
}

function registerNamespaces(program: Command): void {
  const namespaces = program
    .command('namespaces')
    .description('manage namespaces (the first path component of repository names)');

  common(namespaces.command('add <name>'))
    .description('create a namespace (private unless --public)')
    .option('--public', 'anyone may pull, also without credentials')
    .option('--description <text>', 'what the namespace holds')
    .action(async (name: string, flags: CommonFlags & VisibilityFlags) =>
      run('namespaces add', flags, async (ctx) => {
        const ns = await ctx.admin.createNamespace(ctx.actor, {
          name,
          visibility: flags.public ? 'public' : 'private',
          description: flags.description ?? '',
        });
        ctx.out(ctx.json ? toJson(ns) : `Created ${ns.visibility} namespace ${ns.name}.`);
      }),
    );

  paging(common(namespaces.command('list')))
    .description('list namespaces')
    .action(async (flags: CommonFlags & PageFlags) =>
      run('namespaces list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listNamespaces(ctx.actor, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['NAME', 'VISIBILITY', 'CREATED', 'DESCRIPTION'],
            r.items.map((n) => [n.name, n.visibility, n.createdAt, n.description]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(namespaces.command('show <name>'))
    .description('show a namespace')
    .action(async (name: string, flags: CommonFlags) =>
      run('namespaces show', flags, async (ctx) => {
        const ns = await ctx.admin.getNamespace(ctx.actor, name);
        ctx.out(ctx.json ? toJson(ns) : namespaceFields(ns));
      }),
    );

  common(namespaces.command('set <name>'))
    .description('change the visibility or description of a namespace')
    .option('--public', 'anyone may pull, also without credentials')
    .option('--private', 'only members may pull')
    .option('--description <text>', 'what the namespace holds')
    .action(async (name: string, flags: CommonFlags & VisibilityFlags) =>
      run('namespaces set', flags, async (ctx) => {
        const visibility = visibilityOf(flags);
        if (visibility === undefined && flags.description === undefined)
          throw invalid('nothing to change: give --public, --private or --description');
        const ns = await ctx.admin.updateNamespace(ctx.actor, name, {
          ...(visibility !== undefined ? { visibility } : {}),
          ...(flags.description !== undefined ? { description: flags.description } : {}),
        });
        ctx.out(ctx.json ? toJson(ns) : namespaceFields(ns));
      }),
    );

  common(namespaces.command('delete <name>'))
    .description('delete a namespace with its members and rules (its repositories stay)')
    .action(async (name: string, flags: CommonFlags) =>
      run('namespaces delete', flags, async (ctx) => {
        await ctx.admin.deleteNamespace(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ deleted: name }) : `Deleted namespace ${name}.`);
      }),
    );
}

function registerMembers(program: Command): void {
  const members = program
    .command('members')
    .description('manage the roles of users, teams and robots on namespaces');

  common(members.command('set <namespace> <kind> <principal> <role>'))
    .description('grant ROLE (reader, developer, maintainer, admin) on NAMESPACE to a user, team or robot')
    .action(async (namespace: string, kind: string, principal: string, role: string, flags: CommonFlags) =>
      run('members set', flags, async (ctx) => {
        const m = await ctx.admin.setMember(ctx.actor, namespace, kind, principal, role);
        ctx.out(ctx.json ? toJson(m) : `${m.kind} ${m.principal} is ${m.role} of ${m.namespace}.`);
      }),
    );

  common(members.command('remove <namespace> <kind> <principal>'))
    .description('remove a member from a namespace')
    .action(async (namespace: string, kind: string, principal: string, flags: CommonFlags) =>
      run('members remove', flags, async (ctx) => {
        await ctx.admin.removeMember(ctx.actor, namespace, kind, principal);
        ctx.out(
          ctx.json
            ? toJson({ namespace, kind, removed: principal })
            : `Removed ${kind} ${principal} from ${namespace}.`,
        );
      }),
    );

  paging(common(members.command('list <namespace>')))
    .description('list the members of a namespace')
    .action(async (namespace: string, flags: CommonFlags & PageFlags) =>
      run('members list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listMembers(ctx.actor, namespace, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['KIND', 'PRINCIPAL', 'ROLE'],
            r.items.map((m) => [m.kind, m.principal, m.role]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );
}

function registerRules(program: Command): void {
  const rules = program
    .command('rules')
    .description('manage repository rules: roles on the repositories of a namespace matching a glob');

  common(rules.command('add <namespace> <pattern> <kind> <principal> <role>'))
    .description(
      'grant ROLE on the repositories NAMESPACE/<match> whose rest matches PATTERN (* within a component, ** across)',
    )
    .action(
      async (
        namespace: string,
        pattern: string,
        kind: string,
        principal: string,
        role: string,
        flags: CommonFlags,
      ) =>
        run('rules add', flags, async (ctx) => {
          const rule = await ctx.admin.addRule(ctx.actor, namespace, { pattern, kind, principal, role });
          ctx.out(
            ctx.json
              ? toJson(rule)
              : `Added rule ${rule.id}: ${rule.kind} ${rule.principal} is ${rule.role} of ${rule.namespace}/${rule.pattern}.`,
          );
        }),
    );

  paging(common(rules.command('list <namespace>')))
    .description('list the repository rules of a namespace')
    .action(async (namespace: string, flags: CommonFlags & PageFlags) =>
      run('rules list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listRules(ctx.actor, namespace, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'PATTERN', 'KIND', 'PRINCIPAL', 'ROLE'],
            r.items.map((x) => [x.id, x.pattern, x.kind, x.principal, x.role]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(rules.command('delete <id>'))
    .description('delete a repository rule by id')
    .action(async (id: string, flags: CommonFlags) =>
      run('rules delete', flags, async (ctx) => {
        let n: number;
        try {
          n = positiveInt(id);
        } catch {
          throw invalid(`the rule id must be a positive whole number, got ${JSON.stringify(id)}`, 'id');
        }
        const rule = await ctx.admin.deleteRule(ctx.actor, n);
        ctx.out(ctx.json ? toJson({ deleted: rule }) : `Deleted rule ${rule.id} of ${rule.namespace}.`);
      }),
    );
}

export function registerNamespaceCommands(program: Command): void {
  registerNamespaces(program);
  registerMembers(program);
  registerRules(program);
}
