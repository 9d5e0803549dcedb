/**
 * `berth webhooks`: endpoints (global or of a namespace), their secrets, their delivery log, redelivery and test
 * events, on the database directly as the system (see `admin/webhook-service.ts`).
 */
import type { Command } from 'commander';
import { invalid } from '../../admin/errors.ts';
import {
  WebhookService,
  type DeliveryView,
  type WebhookChanges,
  type WebhookView,
} from '../../admin/webhook-service.ts';
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
  type Context,
  type PageFlags,
} from './common.ts';

/** The use cases over the services' webhook store, job queue and SSRF guard (see `webhooks/setup.ts`). */
function service(ctx: Context): WebhookService {
  return new WebhookService(ctx.admin, ctx.services.auth.audit, ctx.services.webhookAdmin);
}

function idOf(value: string, what: string, field: string): number {
  try {
    return positiveInt(value);
  } catch {
    throw invalid(`the ${what} must be a positive whole number, got ${JSON.stringify(value)}`, field);
  }
}

function collectValues(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `Name: value` pairs to a header object. */
function headersOf(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const colon = v.indexOf(':');
    if (colon <= 0) throw invalid(`--header ${JSON.stringify(v)}: expected 'Name: value'`, 'headers');
    out[v.slice(0, colon).trim()] = v.slice(colon + 1).trim();
  }
  return out;
}

function scope(w: { namespace: string | null }): string {
  return w.namespace === null ? '(global)' : w.namespace;
}

function webhookFields(w: WebhookView): string {
  return fields([
    ['id', w.id],
    ['name', w.name],
    ['namespace', scope(w)],
    ['url', w.url],
    ['format', w.format],
    ['events', w.events.length === 0 ? 'all but pulls' : w.events.join(', ')],
    ['repository', w.repositoryGlob],
    ['tag', w.tagGlob],
    ['pulls', w.includePulls],
    ['headers', Object.keys(w.headers).join(', ')],
    ['enabled', w.enabled],
    ['disabled because', w.disabledReason],
    ['old secret until', w.previousSecretUntil],
    ['created by', w.createdBy],
    ['created', w.createdAt],
    ['updated', w.updatedAt],
  ]);
}

function secretText(w: WebhookView, secret: string, what: string): string {
  return [
    `${what} webhook ${w.id} (${w.name}, ${scope(w)}) -> ${w.url}`,
    `Secret: ${secret}`,
    '',
    'The secret is shown only now: give it to the receiver, which verifies the webhook-signature header with it.',
    '',
  ].join('\n');
}

type FilterFlags = {
  format?: string;
  event?: string[];
  repository?: string;
  tag?: string;
  includePulls?: boolean;
  header?: string[];
};

function filterOptions(cmd: Command): Command {
  return cmd
    .option('--format <format>', 'payload format: distribution or cloudevents')
    .option('--event <type>', 'send this event type (repeat for more; default: all but pulls)', collectValues)
    .option('--repository <glob>', 'only repositories matching (* within a component, ** across)')
    .option('--tag <glob>', 'only tags matching (events without a tag pass)')
    .option('--header <header>', "a static request header 'Name: value' (repeat for more)", collectValues);
}

export function registerWebhookCommands(program: Command): void {
  const webhooks = program
    .command('webhooks')
    .description('manage webhook endpoints: HTTP callbacks on pushes, deletes and other registry events');

  paging(common(webhooks.command('list')))
    .description('list webhook endpoints')
    .option('--namespace <name>', 'only the endpoints of this namespace')
    .action(async (flags: CommonFlags & PageFlags & { namespace?: string }) =>
      run('webhooks list', flags, async (ctx) => {
        const s = service(ctx);
        const r = await collect(flags, (page) =>
          s.list(ctx.actor, {
            ...page,
            ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
          }),
        );
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'NAME', 'NAMESPACE', 'FORMAT', 'ENABLED', 'URL'],
            r.items.map((w) => [w.id, w.name, scope(w), w.format, w.enabled, w.url]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  filterOptions(common(webhooks.command('add <name>')))
    .description('create an endpoint (global unless --namespace); its secret is printed once')
    .requiredOption('--url <url>', 'where events are POSTed (http or https)')
    .option('--namespace <name>', "hear about this namespace's repositories only")
    .option('--include-pulls', 'send pull events too')
    .action(async (name: string, flags: CommonFlags & FilterFlags & { url: string; namespace?: string }) =>
      run('webhooks add', flags, async (ctx) => {
        const r = await service(ctx).create(ctx.actor, flags.namespace ?? null, {
          name,
          url: flags.url,
          format: flags.format,
          events: flags.event,
          repositoryGlob: flags.repository,
          tagGlob: flags.tag,
          includePulls: flags.includePulls === true,
          headers: headersOf(flags.header ?? []),
        });
        ctx.out(ctx.json ? toJson(r) : secretText(r, r.secret, 'Created'));
      }),
    );

  common(webhooks.command('show <id>'))
    .description('show an endpoint (header values are masked)')
    .action(async (id: string, flags: CommonFlags) =>
      run('webhooks show', flags, async (ctx) => {
        const w = await service(ctx).get(ctx.actor, idOf(id, 'webhook id', 'id'));
        ctx.out(ctx.json ? toJson(w) : webhookFields(w));
      }),
    );

  filterOptions(common(webhooks.command('update <id>')))
    .description('change an endpoint (--event and --header replace the stored lists)')
    .option('--url <url>', 'where events are POSTed (http or https)')
    .option('--all-events', 'send every event type but pulls')
    .option('--include-pulls', 'send pull events too')
    .option('--no-include-pulls', 'stop sending pull events')
    .option('--clear-headers', 'remove every static header')
    .action(
      async (
        id: string,
        flags: CommonFlags & FilterFlags & { url?: string; allEvents?: boolean; clearHeaders?: boolean },
      ) =>
        run('webhooks update', flags, async (ctx) => {
          if (flags.allEvents && flags.event) throw invalid('--all-events and --event exclude each other');
          if (flags.clearHeaders && flags.header)
            throw invalid('--clear-headers and --header exclude each other');
          const changes: WebhookChanges = {
            url: flags.url,
            format: flags.format,
            events: flags.allEvents ? [] : flags.event,
            repositoryGlob: flags.repository,
            tagGlob: flags.tag,
            includePulls: flags.includePulls,
            headers: flags.clearHeaders ? {} : flags.header ? headersOf(flags.header) : undefined,
          };
          if (Object.values(changes).every((v) => v === undefined))
            throw invalid('nothing to change: give --url, --format, --event, --repository, --tag, ...');
          const w = await service(ctx).update(ctx.actor, idOf(id, 'webhook id', 'id'), changes);
          ctx.out(ctx.json ? toJson(w) : webhookFields(w));
        }),
    );

  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    common(webhooks.command(`${verb} <id>`))
      .description(
        enabled ? 'enable an endpoint (also one disabled by a 410 Gone)' : 'stop sending to an endpoint',
      )
      .action(async (id: string, flags: CommonFlags) =>
        run(`webhooks ${verb}`, flags, async (ctx) => {
          const w = await service(ctx).enable(ctx.actor, idOf(id, 'webhook id', 'id'), enabled);
          ctx.out(
            ctx.json ? toJson(w) : `Webhook ${w.id} (${w.name}) is ${w.enabled ? 'enabled' : 'disabled'}.`,
          );
        }),
      );
  }

  common(webhooks.command('remove <id>'))
    .description('delete an endpoint with its delivery log')
    .action(async (id: string, flags: CommonFlags) =>
      run('webhooks remove', flags, async (ctx) => {
        const n = idOf(id, 'webhook id', 'id');
        await service(ctx).delete(ctx.actor, n);
        ctx.out(ctx.json ? toJson({ deleted: n }) : `Deleted webhook ${n}.`);
      }),
    );

  common(webhooks.command('rotate-secret <id>'))
    .description('replace the secret (printed once); the old one still signs for webhooks.secretGracePeriod')
    .action(async (id: string, flags: CommonFlags) =>
      run('webhooks rotate-secret', flags, async (ctx) => {
        const r = await service(ctx).rotateSecret(ctx.actor, idOf(id, 'webhook id', 'id'));
        ctx.out(
          ctx.json
            ? toJson(r)
            : `${secretText(r, r.secret, 'Rotated the secret of')}The old secret still signs until ${r.previousSecretUntil.toISOString()}.`,
        );
      }),
    );

  paging(common(webhooks.command('deliveries <id>')))
    .description("list an endpoint's delivery attempts, newest first")
    .option('--outcome <outcome>', 'only delivered, failed, dead, gone or refused attempts')
    .action(async (id: string, flags: CommonFlags & PageFlags & { outcome?: string }) =>
      run('webhooks deliveries', flags, async (ctx) => {
        const s = service(ctx);
        const n = idOf(id, 'webhook id', 'id');
        const r = await collect(flags, (page) =>
          s.listDeliveries(ctx.actor, n, {
            ...page,
            ...(flags.outcome !== undefined ? { outcome: flags.outcome } : {}),
          }),
        );
        if (ctx.json) return ctx.out(toJson(r));
        ctx.out(
          table(
            ['ID', 'AT', 'EVENT', 'ATTEMPT', 'OUTCOME', 'STATUS', 'MS', 'ERROR'],
            r.items.map((d: DeliveryView) => [
              d.id,
              d.at,
              d.eventType,
              d.attempt,
              d.outcome,
              d.statusCode,
              d.durationMs,
              d.error,
            ]),
          ),
        );
        if (r.next !== null) ctx.out(`more: --after ${r.next}`);
      }),
    );

  common(webhooks.command('test <id>'))
    .description('queue a test event for an endpoint')
    .action(async (id: string, flags: CommonFlags) =>
      run('webhooks test', flags, async (ctx) => {
        const r = await service(ctx).sendTest(ctx.actor, idOf(id, 'webhook id', 'id'));
        ctx.out(ctx.json ? toJson(r) : `Queued a test event for webhook ${r.webhookId}.`);
      }),
    );

  common(webhooks.command('redeliver <id> <delivery>'))
    .description('queue a dead delivery again')
    .action(async (id: string, delivery: string, flags: CommonFlags) =>
      run('webhooks redeliver', flags, async (ctx) => {
        const r = await service(ctx).redeliver(
          ctx.actor,
          idOf(id, 'webhook id', 'id'),
          idOf(delivery, 'delivery id', 'deliveryId'),
        );
        ctx.out(ctx.json ? toJson(r) : `Queued delivery ${r.deliveryId} of webhook ${r.webhookId} again.`);
      }),
    );
}
