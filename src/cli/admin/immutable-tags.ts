/** `berth immutable-tags`: the immutable tag rules of a namespace (tags that may not move or be deleted). */
import type { Command } from 'commander';
import { ImmutableTagAdmin } from '../../admin/immutable-tag-admin.ts';
import { invalid } from '../../admin/errors.ts';
import {
  collect,
  common,
  paging,
  positiveInt,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
  type PageFlags,
} from './common.ts';

function service(ctx: Context): ImmutableTagAdmin {
  return new ImmutableTagAdmin(ctx.admin, ctx.services.auth.audit, ctx.services.immutableTags);
}

export function registerImmutableTagCommands(program: Command): void {
  const cmd = program
    .command('immutable-tags')
    .description(
      'manage immutable tags: tags of a namespace that may not move to another digest or be deleted',
    );

  common(cmd.command('add <namespace> <tag-glob>'))
    .description(
      'make the tags matching TAG-GLOB immutable in the repositories NAMESPACE/<match> whose rest matches --repository',
    )
    .option(
      '--repository <glob>',
      'glob on the repository name after the namespace (* within a component, ** across)',
      '**',
    )
    .action(async (namespace: string, tagGlob: string, flags: CommonFlags & { repository: string }) =>
      run('immutable-tags add', flags, async (ctx) => {
        const rule = await service(ctx).add(ctx.actor, namespace, {
          repositoryGlob: flags.repository,
          tagGlob,
        });
        ctx.out(
          ctx.json
            ? toJson(rule)
            : `Added immutable tag rule ${rule.id}: tags ${rule.tagGlob} of ${rule.namespace}/${rule.repositoryGlob}.`,
        );
      }),
    );

  paging(common(cmd.command('list <namespace>')))
    .description('list the immutable tag rules of a namespace')
    .action(async (namespace: string, flags: CommonFlags & PageFlags) =>
      run('immutable-tags list', flags, async (ctx) => {
        const r = await collect(flags, (page) => service(ctx).list(ctx.actor, namespace, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'REPOSITORY', 'TAG', 'CREATED BY', 'CREATED'],
            r.items.map((x) => [x.id, x.repositoryGlob, x.tagGlob, x.createdBy, x.createdAt]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(cmd.command('remove <namespace> <id>'))
    .description('remove an immutable tag rule by id (the tags it protected can move and be deleted again)')
    .action(async (namespace: string, id: string, flags: CommonFlags) =>
      run('immutable-tags remove', flags, async (ctx) => {
        let n: number;
        try {
          n = positiveInt(id);
        } catch {
          throw invalid(`the rule id must be a positive whole number, got ${JSON.stringify(id)}`, 'id');
        }
        const rule = await service(ctx).remove(ctx.actor, namespace, n);
        ctx.out(
          ctx.json
            ? toJson({ deleted: rule })
            : `Removed immutable tag rule ${rule.id} of ${rule.namespace}.`,
        );
      }),
    );
}
