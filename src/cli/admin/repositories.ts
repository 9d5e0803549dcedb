/** `berth repos`: repositories as a whole (listing them with their sizes, deleting one with its tags and manifests). */
import type { Command } from 'commander';
import { RepositoryAdmin } from '../../admin/repository-admin.ts';
import { formatBytes } from '../../util/bytes.ts';
import { collect, common, paging, run, table, toJson, type CommonFlags, type PageFlags } from './common.ts';

type ListFlags = CommonFlags & PageFlags & { namespace?: string };

export function registerRepositoryCommands(program: Command): void {
  const repos = program.command('repos').description('manage repositories');

  paging(common(repos.command('list')))
    .description('list repositories with their tags, manifests, size and last push')
    .option('--namespace <namespace>', 'only the repositories of this namespace')
    .action(async (flags: ListFlags) =>
      run('repos list', flags, async (ctx) => {
        const admin = new RepositoryAdmin(ctx.admin, ctx.services.registry, ctx.services.usage);
        const r = await collect(flags, (page) =>
          admin.list(ctx.actor, { ...page, namespace: flags.namespace }),
        );
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['REPOSITORY', 'TAGS', 'MANIFESTS', 'SIZE', 'LAST PUSH', 'LAST PULL', 'PULLS'],
            r.items.map((x) => [
              x.name,
              x.tags,
              x.manifests,
              formatBytes(x.size),
              x.lastPush,
              x.lastPull,
              x.pulls,
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(repos.command('delete'))
    .description('delete a repository with its tags and manifests (the bytes wait for garbage collection)')
    .argument('<name>', 'repository name, e.g. team/app')
    .action(async (name: string, flags: CommonFlags) =>
      run('repos delete', flags, async (ctx) => {
        const removed = await new RepositoryAdmin(ctx.admin, ctx.services.registry).delete(ctx.actor, name);
        ctx.out(
          ctx.json
            ? toJson(removed)
            : `Deleted repository ${name}: ${removed.manifests} manifest(s), ${removed.tags} tag(s), ${removed.blobs} blob link(s).`,
        );
      }),
    );
}
