/** `berth upstreams`: the upstream registries of the pull-through cache. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { invalid } from '../../admin/errors.ts';
import { UpstreamAdmin, type UpstreamView } from '../../admin/upstream-admin.ts';
import {
  common,
  fields,
  positiveInt,
  readStdin,
  run,
  table,
  toJson,
  type CommonFlags,
  type Context,
} from './common.ts';

function service(ctx: Context): UpstreamAdmin {
  const { proxy } = ctx.services;
  return new UpstreamAdmin({
    admin: ctx.admin,
    audit: ctx.services.auth.audit,
    store: proxy.store,
    directory: proxy.directory,
    secrets: proxy.secrets,
    retention: ctx.services.retention,
    clientFor: (upstream) => proxy.clients.get(upstream),
  });
}

interface SettingFlags {
  readonly url?: string[];
  readonly kind?: string;
  readonly host?: string[];
  readonly mirror?: boolean;
  readonly include?: string[];
  readonly exclude?: string[];
  readonly recheck?: string;
  readonly serveStale?: boolean;
  readonly maxFetches?: string;
  readonly evictAfterDays?: string;
  readonly caFile?: string;
  readonly insecure?: boolean;
  readonly timeout?: string;
  readonly username?: string;
  readonly passwordStdin?: boolean;
}

const repeat = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function settingOptions(cmd: Command, adding: boolean): Command {
  // Both forms only when changing: `--no-mirror` alone would make every new upstream default to the mirror.
  if (!adding) cmd.option('--no-mirror', 'stop being the mirror');
  return cmd
    .option('--url <url>', 'upstream URL (repeat: the first is the primary, the others fallbacks)', repeat)
    .option('--kind <kind>', 'registry, or dockerhub (reads `alpine` as `library/alpine`)')
    .option('--host <host>', 'a host name ?ns= may name for this upstream (repeat)', repeat)
    .option('--mirror', 'serve names outside every cached namespace from it (dockerd registry-mirrors)')
    .option('--include <glob>', 'cache only upstream repositories matching (repeat)', repeat)
    .option('--exclude <glob>', 'never cache upstream repositories matching (repeat)', repeat)
    .option('--recheck <duration>', 'how long a cached tag is served without asking the upstream (e.g. 5m)')
    .option('--no-serve-stale', 'answer 503 instead of serving cached content while the upstream fails')
    .option('--max-fetches <n>', 'most concurrent requests to the upstream per instance')
    .option('--evict-after-days <n>', 'untag what was neither pulled nor fetched for N days (0: never)')
    .option('--ca-file <file>', 'PEM certificates to trust for the upstream')
    .option('--insecure', 'skip TLS certificate verification (test setups only)')
    .option('--timeout <duration>', 'connection and response timeout (e.g. 30s)')
    .option('--username <name>', 'user name at the upstream')
    .option('--password-stdin', 'read the upstream password (or token) from standard input');
}

async function settingsOf(flags: SettingFlags): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  if (flags.url) out.urls = flags.url;
  if (flags.kind !== undefined) out.kind = flags.kind;
  if (flags.host) out.hosts = flags.host;
  if (flags.mirror !== undefined) out.mirror = flags.mirror;
  if (flags.include) out.include = flags.include;
  if (flags.exclude) out.exclude = flags.exclude;
  if (flags.recheck !== undefined) out.recheckInterval = flags.recheck;
  if (flags.serveStale === false) out.serveStale = false;
  if (flags.maxFetches !== undefined) out.maxConcurrentFetches = positiveInt(flags.maxFetches);
  if (flags.evictAfterDays !== undefined) {
    const days = Number(flags.evictAfterDays);
    if (!Number.isInteger(days) || days < 0)
      throw invalid('--evict-after-days: a whole number of days', 'evictAfterDays');
    out.evictAfterDays = days === 0 ? null : days;
  }
  if (flags.caFile !== undefined) out.caBundle = await readFile(flags.caFile, 'utf8');
  if (flags.insecure !== undefined) out.insecure = flags.insecure;
  if (flags.timeout !== undefined) out.timeout = flags.timeout;
  return out;
}

async function passwordOf(flags: SettingFlags): Promise<string | undefined> {
  if (!flags.passwordStdin) return undefined;
  const password = (await readStdin()).replace(/\r?\n$/, '');
  if (password === '') throw invalid('--password-stdin: standard input was empty', 'password');
  return password;
}

function describe(u: UpstreamView): string {
  const s = u.settings;
  return fields([
    ['Name', u.name],
    ['Namespace', u.namespace],
    ['Source', u.source],
    ['Kind', s.kind],
    ['URLs', (s.urls as string[]).join(', ')],
    ['Hosts (?ns=)', (s.hosts as string[]).join(', ') || '-'],
    ['Mirror', s.mirror],
    ['Include', (s.include as string[]).join(', ')],
    ['Exclude', (s.exclude as string[]).join(', ') || '-'],
    ['Re-check', s.recheckInterval],
    ['Serve stale', s.serveStale],
    ['Max fetches', s.maxConcurrentFetches],
    ['Evict after', s.evictAfterDays === null ? 'never' : `${String(s.evictAfterDays)} days`],
    ['Username', u.username ?? '-'],
    ['Password', u.hasPassword ? 'set' : '-'],
    ['TLS', s.insecure ? 'not verified' : s.caBundle ? 'custom CA' : 'system CAs'],
    ['Timeout', s.timeout],
  ]);
}

export function registerUpstreamCommands(program: Command): void {
  const cmd = program
    .command('upstreams')
    .description('manage the upstream registries the pull-through cache serves (see docs/mirroring.md)');

  common(cmd.command('list'))
    .description("list upstreams (the configuration file's and those added here)")
    .action(async (flags: CommonFlags) =>
      run('upstreams list', flags, async (ctx) => {
        const items = await service(ctx).list(ctx.actor);
        if (ctx.json) return ctx.out(toJson({ items }));
        ctx.out(
          table(
            ['NAME', 'NAMESPACE', 'URL', 'KIND', 'MIRROR', 'SOURCE'],
            items.map((u) => [
              u.name,
              u.namespace,
              (u.settings.urls as string[])[0],
              u.settings.kind,
              u.settings.mirror ? 'yes' : '',
              u.source,
            ]),
          ),
        );
      }),
    );

  common(cmd.command('show <name>'))
    .description('show an upstream (never its password)')
    .action(async (name: string, flags: CommonFlags) =>
      run('upstreams show', flags, async (ctx) => {
        const u = await service(ctx).get(ctx.actor, name);
        ctx.out(ctx.json ? toJson(u) : describe(u));
      }),
    );

  settingOptions(common(cmd.command('add <name>')), true)
    .description('add an upstream registry, cached under --namespace')
    .requiredOption('--namespace <namespace>', 'the local namespace it is cached under, e.g. hub')
    .action(async (name: string, flags: CommonFlags & SettingFlags & { namespace: string }) =>
      run('upstreams add', flags, async (ctx) => {
        const u = await service(ctx).create(ctx.actor, {
          name,
          namespace: flags.namespace,
          username: flags.username ?? null,
          password: (await passwordOf(flags)) ?? null,
          settings: await settingsOf(flags),
        });
        ctx.out(
          ctx.json
            ? toJson(u)
            : `Added upstream ${u.name}: ${String((u.settings.urls as string[])[0])} as ${u.namespace}/.`,
        );
      }),
    );

  settingOptions(common(cmd.command('update <name>')), false)
    .description('change an upstream added here (options given replace the stored values)')
    .option('--no-password', 'remove the stored password')
    .action(async (name: string, flags: CommonFlags & SettingFlags & { password?: boolean }) =>
      run('upstreams update', flags, async (ctx) => {
        const settings = await settingsOf(flags);
        const password = flags.password === false ? null : await passwordOf(flags);
        const u = await service(ctx).update(ctx.actor, name, {
          ...(flags.username !== undefined ? { username: flags.username } : {}),
          ...(password !== undefined ? { password } : {}),
          ...(Object.keys(settings).length > 0 ? { settings } : {}),
        });
        ctx.out(ctx.json ? toJson(u) : `Updated upstream ${u.name}.`);
      }),
    );

  common(cmd.command('remove <name>'))
    .description('remove an upstream added here (what it cached stays, as ordinary repositories)')
    .action(async (name: string, flags: CommonFlags) =>
      run('upstreams remove', flags, async (ctx) => {
        await service(ctx).delete(ctx.actor, name);
        ctx.out(ctx.json ? toJson({ removed: name }) : `Removed upstream ${name}.`);
      }),
    );

  common(cmd.command('check <name>'))
    .description('ask the upstream for /v2/ with its credentials')
    .action(async (name: string, flags: CommonFlags) =>
      run('upstreams check', flags, async (ctx) => {
        const r = await service(ctx).check(ctx.actor, name);
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(r.ok ? `${name}: answers (${r.ms} ms)` : `${name}: FAILED after ${r.ms} ms: ${r.error}`);
        if (!r.ok) process.exitCode = 1;
      }),
    );
}
