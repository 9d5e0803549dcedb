/** `berth keys` and `berth audit`. */
import type { Command } from 'commander';
import { parseTime } from '../../admin/validation.ts';
import {
  booleanArg,
  collect,
  common,
  paging,
  positiveInt,
  run,
  table,
  toJson,
  type CommonFlags,
  type PageFlags,
} from './common.ts';

function registerKeys(program: Command): void {
  const keys = program.command('keys').description('manage the token service signing keys');

  paging(common(keys.command('list')))
    .description('list signing keys, newest first')
    .action(async (flags: CommonFlags & PageFlags) =>
      run('keys list', flags, async (ctx) => {
        const r = await collect(flags, (page) => ctx.admin.listKeys(ctx.actor, page));
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['KID', 'ALGORITHM', 'STATE', 'CREATED', 'RETIRED'],
            r.items.map((k) => [
              k.kid,
              k.algorithm,
              k.active ? 'signing' : k.retiredAt ? 'retired' : 'standby',
              k.createdAt,
              k.retiredAt,
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(keys.command('rotate'))
    .description('create a new signing key and retire the others (they verify until their tokens expire)')
    .action(async (flags: CommonFlags) =>
      run('keys rotate', flags, async (ctx) => {
        const key = await ctx.admin.rotateKey(ctx.actor);
        ctx.out(
          ctx.json
            ? toJson(key)
            : `New signing key ${key.kid}. Other instances start signing with it within 30 seconds.`,
        );
      }),
    );

  common(keys.command('prune'))
    .description('delete retired keys that can no longer verify any token')
    .action(async (flags: CommonFlags) =>
      run('keys prune', flags, async (ctx) => {
        const pruned = await ctx.admin.pruneKeys(ctx.actor);
        if (ctx.json) return ctx.out(toJson({ pruned }));
        ctx.out(
          pruned.length === 0 ? 'No key to prune.' : `Deleted ${pruned.length} key(s): ${pruned.join(', ')}`,
        );
      }),
    );
}

interface AuditFlags extends CommonFlags {
  readonly actor?: string;
  readonly action?: string;
  readonly target?: string;
  readonly success?: boolean;
  readonly since?: string;
  readonly until?: string;
  readonly before?: string;
  readonly limit?: number;
}

function registerAudit(program: Command): void {
  common(program.command('audit'))
    .description('query the audit log, newest first')
    .option('--actor <name>', 'who acted (username or robot name)')
    .option('--action <action>', 'an action (user.create), or a prefix ending with a dot (user.)')
    .option('--target <target>', 'a target, or a prefix ending with * (team/app*)')
    .option('--success <bool>', 'only successes (true) or failures (false)', booleanArg)
    .option('--since <when>', 'from this date-time, or this long ago (24h, 7d)')
    .option('--until <when>', 'before this date-time, or this long ago')
    .option('--before <cursor>', 'events older than this id (the `next` of a previous page)')
    .option('--limit <n>', 'at most this many events (default 50)', positiveInt)
    .action(async (flags: AuditFlags) =>
      run('audit', flags, async (ctx) => {
        const r = await ctx.admin.queryAudit(ctx.actor, {
          actor: flags.actor,
          action: flags.action,
          target: flags.target,
          success: flags.success,
          since: flags.since === undefined ? undefined : parseTime(flags.since, 'since'),
          until: flags.until === undefined ? undefined : parseTime(flags.until, 'until'),
          before: flags.before,
          limit: flags.limit,
        });
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OK', 'SOURCE', 'DETAIL'],
            r.events.map((e) => [
              e.id,
              e.time,
              e.actor ?? `(${e.actorKind})`,
              e.action,
              e.target,
              e.success,
              e.sourceAddr,
              e.detail,
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`older events: --before ${r.next}`);
      }),
    );
}

export function registerSystemCommands(program: Command): void {
  registerKeys(program);
  registerAudit(program);
}
