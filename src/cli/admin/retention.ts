/** `berth retention`: a namespace's retention policy (show, set, remove) and runs of it. */
import type { Command } from 'commander';
import { RetentionAdmin } from '../../admin/retention-admin.ts';
import type { RetentionRun } from '../../lifecycle/retention.ts';
import { common, fields, readDocument, run, table, toJson, type Context } from './common.ts';

function retentionAdmin(ctx: Context): RetentionAdmin {
  return new RetentionAdmin(ctx.admin, ctx.services.auth.audit, ctx.services.retention);
}

function describeRun(r: RetentionRun): string {
  const rows = r.repositories.flatMap((repo) => [
    ...repo.untag.map((u) => [repo.repository, 'untag', u.tag, u.digest]),
    ...repo.protected.map((tag) => [repo.repository, 'protected', tag, '']),
    ...repo.deleteManifests.map((d) => [repo.repository, 'delete', '', d]),
  ]);
  const verb = r.dryRun ? 'would untag' : 'untagged';
  const deleted = r.dryRun ? 'would delete' : 'deleted';
  const summary = `Retention of ${r.namespace}${r.dryRun ? ' (dry run)' : ''}: ${verb} ${r.tagsUntagged} tag(s), ${deleted} ${r.manifestsDeleted} untagged manifest(s), kept ${r.tagsKept} tag(s).\n`;
  return rows.length === 0 ? summary : `${table(['REPOSITORY', 'ACTION', 'TAG', 'DIGEST'], rows)}${summary}`;
}

export function registerRetentionCommands(program: Command): void {
  const retention = program.command('retention').description("manage namespaces' retention policies");

  common(retention.command('show'))
    .description("print a namespace's retention policy")
    .argument('<namespace>')
    .action(async (namespace: string, flags) =>
      run('retention show', flags, async (ctx) => {
        const view = await retentionAdmin(ctx).get(ctx.actor, namespace);
        ctx.out(
          ctx.json
            ? toJson(view)
            : `${fields([
                ['namespace', view.namespace],
                ['updated by', view.updatedBy],
                ['updated at', view.updatedAt],
              ])}${toJson(view.policy)}`,
        );
      }),
    );

  common(retention.command('set'))
    .description("create or replace a namespace's retention policy from a JSON or YAML file")
    .argument('<namespace>')
    .requiredOption('-f, --file <file>', 'the policy (JSON or YAML); `-` reads stdin')
    .action(async (namespace: string, flags: { file: string; json?: boolean }) =>
      run('retention set', flags, async (ctx) => {
        const view = await retentionAdmin(ctx).set(ctx.actor, namespace, await readDocument(flags.file));
        ctx.out(ctx.json ? toJson(view) : `Set the retention policy of ${namespace}.`);
      }),
    );

  common(retention.command('remove'))
    .description("remove a namespace's retention policy")
    .argument('<namespace>')
    .action(async (namespace: string, flags) =>
      run('retention remove', flags, async (ctx) => {
        await retentionAdmin(ctx).remove(ctx.actor, namespace);
        ctx.out(
          ctx.json ? toJson({ namespace, removed: true }) : `Removed the retention policy of ${namespace}.`,
        );
      }),
    );

  common(retention.command('run'))
    .description("apply a namespace's retention policy now (untags, and deletes expired untagged manifests)")
    .argument('<namespace>')
    .option('--dry-run', 'only print what the run would do')
    .action(async (namespace: string, flags: { dryRun?: boolean; json?: boolean }) =>
      run('retention run', flags, async (ctx) => {
        const result = await retentionAdmin(ctx).run(ctx.actor, namespace, flags.dryRun === true);
        ctx.out(ctx.json ? toJson(result) : describeRun(result));
      }),
    );
}
