/** `berth repos`: repositories as a whole (deleting one with its tags and manifests). */
import type { Command } from 'commander';
import { RepositoryAdmin } from '../../admin/repository-admin.ts';
import { common, run, toJson, type CommonFlags } from './common.ts';

export function registerRepositoryCommands(program: Command): void {
  const repos = program.command('repos').description('manage repositories');

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
