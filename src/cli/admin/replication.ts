/**
 * `berth replication registries|policies` (remote registries and policies) and `berth replicate run|executions|
 * show` (executions). Like the other administration commands they work on the database as the system.
 *
 * `berth replicate run POLICY` queues an execution for the instances running background jobs; with `--wait` this
 * process also takes executions from the queue (only those: the `replication` queue is the one it registers) and
 * follows the execution to its end, with a progress bar on a terminal. Either way the execution runs under a job
 * lease, so it never runs twice at once.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ReplicationAdmin, type ExecutionView, type PolicyInput } from '../../admin/replication-admin.ts';
import { formatBytes } from '../../util/bytes.ts';
import {
  common,
  paging,
  positiveInt,
  readStdin,
  run,
  table,
  toJson,
  collect,
  type CommonFlags,
  type Context,
  type PageFlags,
} from './common.ts';

function adminOf(ctx: Context): ReplicationAdmin {
  return new ReplicationAdmin(
    ctx.admin,
    ctx.services.replication,
    ctx.services.auth.audit,
    ctx.config.replication.concurrency,
  );
}

const collectList = (value: string, previous: string[] = []): string[] => [...previous, value];

interface RegistryFlags extends CommonFlags {
  url: string;
  username?: string;
  passwordStdin?: boolean;
  caFile?: string;
  insecure?: boolean;
  concurrency?: number;
}

interface PolicyFlags extends CommonFlags {
  registry: string;
  direction?: string;
  repository?: string[];
  excludeRepository?: string[];
  tag?: string[];
  excludeTag?: string[];
  stripPrefix?: string;
  addPrefix?: string;
  trigger?: string;
  schedule?: string;
  replicateDeletions?: boolean;
  bandwidthLimit?: number;
  disabled?: boolean;
}

export function registerReplicationCommands(program: Command): void {
  const replication = program
    .command('replication')
    .description('remote registries and replication policies (see docs/replication.md)');

  const registries = replication.command('registries').description('remote registries');
  common(registries.command('add'))
    .description('add a remote registry (the password is read from stdin with --password-stdin)')
    .argument('<name>', 'registry name')
    .requiredOption('--url <url>', 'base URL, e.g. https://registry.example.com')
    .option('--username <name>', 'user name on the remote')
    .option('--password-stdin', 'read the password (or token) from stdin')
    .option('--ca-file <file>', 'PEM certificates to trust besides the system ones')
    .option('--insecure', 'skip TLS certificate verification')
    .option('--concurrency <n>', 'tasks at once against this registry per instance', positiveInt)
    .action(async (name: string, flags: RegistryFlags) =>
      run('replication registries add', flags, async (ctx) => {
        const password = flags.passwordStdin ? await readStdin() : undefined;
        const r = await adminOf(ctx).createRegistry(ctx.actor, {
          name,
          url: flags.url,
          username: flags.username,
          password,
          caBundle: flags.caFile ? await readFile(flags.caFile, 'utf8') : undefined,
          insecure: flags.insecure === true,
          concurrency: flags.concurrency,
        });
        ctx.out(ctx.json ? toJson(r) : `Remote registry ${r.name} added (id ${r.id}).`);
      }),
    );
  common(registries.command('list'))
    .description('list remote registries')
    .action(async (flags: CommonFlags) =>
      run('replication registries list', flags, async (ctx) => {
        const list = await adminOf(ctx).listRegistries(ctx.actor);
        ctx.out(
          ctx.json
            ? toJson(list)
            : table(
                ['ID', 'NAME', 'URL', 'USERNAME', 'CREDENTIALS', 'INSECURE', 'CONCURRENCY'],
                list.items.map((r) => [
                  r.id,
                  r.name,
                  r.url,
                  r.username,
                  r.hasCredentials,
                  r.insecure,
                  r.concurrency,
                ]),
              ),
        );
      }),
    );
  common(registries.command('remove'))
    .description('remove a remote registry no policy uses')
    .argument('<name>', 'registry name or id')
    .action(async (name: string, flags: CommonFlags) =>
      run('replication registries remove', flags, async (ctx) => {
        await adminOf(ctx).deleteRegistry(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ removed: name }) : `Remote registry ${name} removed.`);
      }),
    );

  const policies = replication.command('policies').description('replication policies');
  common(policies.command('add'))
    .description('add a replication policy')
    .argument('<name>', 'policy name')
    .requiredOption('--registry <name>', 'the remote registry')
    .option('--direction <push|pull>', 'push: local to remote; pull: remote to local', 'push')
    .option('--repository <glob>', 'repositories to copy (repeatable; default all)', collectList)
    .option('--exclude-repository <glob>', 'repositories not to copy (repeatable)', collectList)
    .option('--tag <glob>', 'tags to copy (repeatable; default all)', collectList)
    .option('--exclude-tag <glob>', 'tags not to copy (repeatable)', collectList)
    .option('--strip-prefix <prefix>', 'remove this leading namespace from destination names')
    .option('--add-prefix <prefix>', 'prepend this namespace to destination names')
    .option('--trigger <manual|schedule|event>', 'when it runs', 'manual')
    .option('--schedule <cron>', 'cron expression (UTC) for --trigger schedule')
    .option('--replicate-deletions', 'with --trigger event: replicate tag and manifest deletions')
    .option('--bandwidth-limit <bytes>', 'bytes per second', positiveInt)
    .option('--disabled', 'create it disabled')
    .action(async (name: string, flags: PolicyFlags) =>
      run('replication policies add', flags, async (ctx) => {
        const input: PolicyInput = {
          name,
          registry: flags.registry,
          direction: flags.direction,
          repositories: flags.repository ?? [],
          excludeRepositories: flags.excludeRepository ?? [],
          tags: flags.tag ?? [],
          excludeTags: flags.excludeTag ?? [],
          rewrite: { stripPrefix: flags.stripPrefix ?? '', addPrefix: flags.addPrefix ?? '' },
          trigger: flags.trigger,
          schedule: flags.schedule ?? null,
          replicateDeletions: flags.replicateDeletions === true,
          bandwidthLimit: flags.bandwidthLimit ?? null,
          enabled: flags.disabled !== true,
        };
        const p = await adminOf(ctx).createPolicy(ctx.actor, input);
        ctx.out(ctx.json ? toJson(p) : `Replication policy ${p.name} added (id ${p.id}).`);
      }),
    );
  common(policies.command('list'))
    .description('list replication policies')
    .action(async (flags: CommonFlags) =>
      run('replication policies list', flags, async (ctx) => {
        const list = await adminOf(ctx).listPolicies(ctx.actor);
        ctx.out(
          ctx.json
            ? toJson(list)
            : table(
                ['ID', 'NAME', 'REGISTRY', 'DIRECTION', 'REPOSITORIES', 'TRIGGER', 'ENABLED'],
                list.items.map((p) => [
                  p.id,
                  p.name,
                  p.registry.name,
                  p.direction,
                  p.repositories.length > 0 ? p.repositories.join(',') : '**',
                  p.trigger === 'schedule' ? `schedule ${p.schedule ?? ''}` : p.trigger,
                  p.enabled,
                ]),
              ),
        );
      }),
    );
  common(policies.command('remove'))
    .description('remove a replication policy (its executions stay in the history)')
    .argument('<name>', 'policy name or id')
    .action(async (name: string, flags: CommonFlags) =>
      run('replication policies remove', flags, async (ctx) => {
        await adminOf(ctx).deletePolicy(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ removed: name }) : `Replication policy ${name} removed.`);
      }),
    );

  const replicate = program
    .command('replicate')
    .description('run replication policies and follow executions');
  common(replicate.command('run'))
    .description('start an execution of a policy (with --wait, run it here and follow it)')
    .argument('<policy>', 'policy name or id')
    .option('--wait', 'take the execution in this process and wait for its end, showing progress')
    .action(async (policy: string, flags: CommonFlags & { wait?: boolean }) =>
      run('replicate run', flags, async (ctx) => {
        const admin = adminOf(ctx);
        const queued = await admin.run(ctx.actor, policy);
        if (!flags.wait) {
          ctx.out(ctx.json ? toJson(queued) : `Execution ${queued.id} of ${queued.policyName} queued.`);
          return;
        }
        const final = await follow(ctx, queued.id);
        ctx.out(ctx.json ? toJson(final) : summary(final));
        if (final.state !== 'succeeded') process.exitCode = 1;
      }),
    );
  paging(common(replicate.command('executions')))
    .description('list executions, newest first')
    .option('--policy <name>', 'only this policy')
    .action(async (flags: CommonFlags & PageFlags & { policy?: string }) =>
      run('replicate executions', flags, async (ctx) => {
        const admin = adminOf(ctx);
        const list = await collect(flags, (page) =>
          admin.listExecutions(ctx.actor, { ...page, ...(flags.policy ? { policy: flags.policy } : {}) }),
        );
        ctx.out(
          ctx.json
            ? toJson(list)
            : table(
                ['ID', 'POLICY', 'STATE', 'TRIGGER', 'TASKS', 'FAILED', 'COPIED', 'STARTED'],
                list.items.map((e) => [
                  e.id,
                  e.policyName,
                  e.state,
                  e.trigger,
                  `${e.progress.succeeded}/${e.progress.total}`,
                  e.progress.failed,
                  formatBytes(e.progress.bytes),
                  e.startedAt,
                ]),
              ),
        );
      }),
    );
  common(replicate.command('show'))
    .description('show an execution and its tasks')
    .argument('<id>', 'execution id')
    .action(async (id: string, flags: CommonFlags) =>
      run('replicate show', flags, async (ctx) => {
        const e = await adminOf(ctx).getExecution(ctx.actor, Number(id), { limit: 1000 });
        if (ctx.json) {
          ctx.out(toJson(e));
          return;
        }
        ctx.out(
          summary(e) +
            table(
              ['TASK', 'KIND', 'SOURCE', 'DESTINATION', 'STATE', 'ATTEMPTS', 'COPIED', 'ERROR'],
              e.tasks.items.map((t) => [
                t.id,
                t.kind,
                `${t.sourceRepository}:${t.sourceReference}`,
                t.destinationRepository,
                t.state,
                t.attempts,
                formatBytes(t.bytes),
                t.error,
              ]),
            ),
        );
      }),
    );
}

/** Runs the replication queue in this process until execution `id` is finished; returns it. */
async function follow(ctx: Context, id: number): Promise<ExecutionView> {
  const { replication, jobs } = ctx.services;
  const bar = !ctx.json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  replication.registerExecutions();
  jobs.start();
  try {
    for (;;) {
      const e = await replication.store.getExecution(id);
      if (e === null) throw new Error(`execution ${id} disappeared`);
      bar?.update(e);
      if (['succeeded', 'failed', 'canceled'].includes(e.state)) return e;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    bar?.done();
    await jobs.stop();
  }
}

function summary(e: ExecutionView): string {
  const p = e.progress;
  return (
    `Execution ${e.id} of ${e.policyName}: ${e.state}${e.error ? ` (${e.error})` : ''}\n` +
    `${p.succeeded} of ${p.total} artifact(s) replicated, ${p.failed} failed, ${formatBytes(p.bytes)} copied.\n`
  );
}

/** A one-line progress bar redrawn in place on a terminal. */
class ProgressBar {
  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(e: ExecutionView): void {
    const p = e.progress;
    const done = p.succeeded + p.failed;
    const ratio = p.total > 0 ? done / p.total : e.state === 'succeeded' ? 1 : 0;
    const width = 30;
    const filled = Math.round(ratio * width);
    this.stream.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}% ` +
        `${e.state.padEnd(9)} ${done}/${p.total} artifacts, ${formatBytes(p.bytes)} copied\x1b[K`,
    );
  }

  done(): void {
    this.stream.write('\n');
  }
}
