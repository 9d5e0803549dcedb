/**
 * `berth webhooks`, run as the real CLI (`node --import tsx src/main.ts ...`) on a temporary data directory:
 * add (the secret printed once), list, show (header values masked), update, disable and enable, rotate-secret,
 * deliveries, remove; validation failures exit 1 with a message; `test` queues a delivery; `redeliver` refuses
 * an attempt whose job is not dead.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { WebhookStore } from '../../src/metadata/webhook-store.ts';
import { runBerth, succeeded, type Run } from '../helpers/cli.ts';

const HEADER_VALUE = 'Bearer cli-receiver-token';

const berth = runBerth;

const ok = succeeded;

function fails(r: Run, message: RegExp): void {
  assert.equal(r.status, 1, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^berth webhooks [a-z-]+: /);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

describe('berth webhooks', () => {
  let data: string;
  let services: Services;
  let store: WebhookStore;

  before(async () => {
    data = await mkdtemp(path.join(tmpdir(), 'berth-webhooks-cli-'));
    services = await createServices(loadConfig({ env: {}, overrides: { data } }));
    assert.ok(services.metadata instanceof KyselyMetadataStore);
    store = services.metadata.webhookStore();
  });
  after(async () => {
    await services.close();
    await rm(data, { recursive: true, force: true });
  });

  it('add, list, show, update, disable, enable, rotate-secret, deliveries and remove', async () => {
    const [globalRun, nsRun] = await Promise.all([
      berth(data, [
        'webhooks',
        'add',
        'ci',
        '--url',
        'https://hooks.example.com/berth',
        '--format',
        'cloudevents',
        '--event',
        'manifest.pushed',
        '--event',
        'tag.deleted',
        '--repository',
        'team/**',
        '--tag',
        'v*',
        '--header',
        `Authorization: ${HEADER_VALUE}`,
      ]),
      berth(data, [
        'webhooks',
        'add',
        'deploy',
        '--url',
        'https://deploy.example.com/',
        '--namespace',
        'team',
      ]),
    ]);
    const out = ok(globalRun, 'add ci');
    const secret = /Secret: (\S+)/.exec(out)?.[1] as string;
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(out.split(secret).length - 1, 1, 'the secret is printed once');
    const ci = await store.getByName(null, 'ci');
    assert.ok(ci);
    assert.equal(ci.secret, secret);
    assert.equal(ci.format, 'cloudevents');
    assert.deepEqual(ci.events, ['manifest.pushed', 'tag.deleted']);
    assert.equal(ci.repositoryGlob, 'team/**');
    assert.equal(ci.tagGlob, 'v*');
    assert.deepEqual(ci.headers, { Authorization: HEADER_VALUE });
    assert.equal(ci.createdBy, null);
    ok(nsRun, 'add deploy');
    const deploy = await store.getByName('team', 'deploy');
    assert.ok(deploy);

    const [listRun, jsonRun, nsListRun, showRun] = await Promise.all([
      berth(data, ['webhooks', 'list']),
      berth(data, ['webhooks', 'list', '--json']),
      berth(data, ['webhooks', 'list', '--namespace', 'team', '--json']),
      berth(data, ['webhooks', 'show', String(ci.id)]),
    ]);
    const lines = ok(listRun, 'list').trim().split('\n');
    assert.match(lines[0] as string, /^ID\s+NAME\s+NAMESPACE\s+FORMAT\s+ENABLED\s+URL$/);
    // The two were added at once: either may have the lower id (the list is by id).
    const byName = (name: string): string =>
      lines.find((l) => new RegExp(`^\\d+\\s+${name}\\s`).test(l)) ?? '';
    assert.match(
      byName('ci'),
      new RegExp(
        `^${ci.id}\\s+ci\\s+\\(global\\)\\s+cloudevents\\s+yes\\s+https://hooks\\.example\\.com/berth$`,
      ),
    );
    assert.match(byName('deploy'), new RegExp(`^${deploy.id}\\s+deploy\\s+team\\s+distribution\\s+yes\\s+`));
    assert.equal(lines.length, 3);
    const listed = ok(jsonRun, 'list --json');
    assert.ok(!listed.includes(secret) && !listed.includes(HEADER_VALUE), listed);
    const items = (JSON.parse(listed) as { items: Record<string, unknown>[] }).items;
    assert.deepEqual(items.find((w) => w.id === ci.id)?.headers, { Authorization: '********' });
    assert.deepEqual(
      (JSON.parse(ok(nsListRun, 'list --namespace')) as { items: { id: number }[] }).items.map((w) => w.id),
      [deploy.id],
    );
    const shown = ok(showRun, 'show');
    assert.match(shown, /^headers:\s+Authorization$/m);
    assert.match(shown, /^events:\s+manifest\.pushed, tag\.deleted$/m);
    assert.ok(!shown.includes(secret) && !shown.includes(HEADER_VALUE));

    ok(
      await berth(data, [
        'webhooks',
        'update',
        String(deploy.id),
        '--url',
        'https://deploy.example.com/v2',
        '--event',
        'tag.moved',
        '--header',
        'X-Env: prod',
      ]),
      'update',
    );
    const updated = await store.get(deploy.id);
    assert.equal(updated?.url, 'https://deploy.example.com/v2');
    assert.deepEqual(updated?.events, ['tag.moved']);
    assert.deepEqual(updated?.headers, { 'X-Env': 'prod' });
    assert.match(ok(await berth(data, ['webhooks', 'disable', String(deploy.id)]), 'disable'), /is disabled/);
    assert.equal((await store.get(deploy.id))?.enabled, false);
    ok(await berth(data, ['webhooks', 'enable', String(deploy.id)]), 'enable');
    assert.equal((await store.get(deploy.id))?.enabled, true);

    const rotated = ok(await berth(data, ['webhooks', 'rotate-secret', String(ci.id)]), 'rotate-secret');
    const next = /Secret: (\S+)/.exec(rotated)?.[1] as string;
    assert.notEqual(next, secret);
    assert.ok(!rotated.includes(secret));
    assert.match(rotated, /old secret still signs until \d{4}-/);
    const afterRotation = await store.get(ci.id);
    assert.equal(afterRotation?.secret, next);
    assert.equal(afterRotation?.previousSecret, secret);

    for (const [outcome, jobId] of [
      ['delivered', 1],
      ['dead', 2],
    ] as const) {
      await store.recordDelivery(
        {
          webhookId: ci.id,
          eventId: `ev-${jobId}`,
          eventType: 'manifest.pushed',
          jobId,
          attempt: 1,
          outcome,
          statusCode: outcome === 'dead' ? 500 : 200,
          durationMs: 5,
          error: outcome === 'dead' ? 'HTTP 500' : null,
          responseSnippet: null,
        },
        50,
      );
    }
    const [logRun, deadRun] = await Promise.all([
      berth(data, ['webhooks', 'deliveries', String(ci.id)]),
      berth(data, ['webhooks', 'deliveries', String(ci.id), '--outcome', 'dead', '--json']),
    ]);
    const log = ok(logRun, 'deliveries').trim().split('\n');
    assert.match(log[0] as string, /^ID\s+AT\s+EVENT\s+ATTEMPT\s+OUTCOME\s+STATUS\s+MS\s+ERROR$/);
    assert.match(log[1] as string, /manifest\.pushed\s+1\s+dead\s+500\s+5\s+HTTP 500$/);
    assert.match(log[2] as string, /manifest\.pushed\s+1\s+delivered\s+200\s+5\s+-$/);
    const dead = JSON.parse(ok(deadRun, 'deliveries --outcome')) as {
      items: { jobId: number; id: number }[];
    };
    assert.deepEqual(
      dead.items.map((d) => d.jobId),
      [2],
    );

    const [testRun, redeliverRun] = await Promise.all([
      berth(data, ['webhooks', 'test', String(ci.id)]),
      berth(data, ['webhooks', 'redeliver', String(ci.id), String(dead.items[0]?.id)]),
    ]);
    ok(testRun, 'test');
    const queued = await services.jobs.list({ queue: 'webhook-delivery', limit: 10 });
    assert.equal(queued.items.length, 1, 'the test event is queued for delivery');
    assert.equal((queued.items[0]?.payload as { webhookId: number }).webhookId, ci.id);
    // The dead attempt's job (inserted with the log, never run) is not in the queue: nothing to move back.
    fails(redeliverRun, /not dead|no longer|cannot/i);

    assert.match(
      ok(await berth(data, ['webhooks', 'remove', String(deploy.id)]), 'remove'),
      /Deleted webhook/,
    );
    assert.equal(await store.get(deploy.id), null);
    fails(await berth(data, ['webhooks', 'show', String(deploy.id)]), /does not exist/);

    const audit = await services.auth.store.queryAudit({ action: 'webhook.', limit: 100 });
    assert.deepEqual(audit.items.map((e) => e.action).sort(), [
      'webhook.create',
      'webhook.create',
      'webhook.delete',
      'webhook.rotate-secret',
      'webhook.test',
      'webhook.update',
      'webhook.update',
      'webhook.update',
    ]);
    assert.ok(audit.items.every((e) => e.actorKind === 'system'));
    assert.ok(!JSON.stringify(audit.items).includes(HEADER_VALUE));
  });

  it('refuses invalid input with exit 1 and a message', async () => {
    const runs = await Promise.all([
      berth(data, ['webhooks', 'add', 'bad', '--url', 'ftp://x.example.com/']),
      berth(data, ['webhooks', 'add', 'bad', '--url', 'https://x.example.com/', '--header', 'Host: x']),
      berth(data, ['webhooks', 'add', 'bad', '--url', 'https://x.example.com/', '--header', 'no-colon']),
      berth(data, ['webhooks', 'add', 'bad', '--url', 'https://x.example.com/', '--event', 'nope']),
      berth(data, ['webhooks', 'show', 'abc']),
      berth(data, ['webhooks', 'update', '1']),
    ]);
    fails(runs[0] as Run, /http or https/);
    fails(runs[1] as Run, /reserved/);
    fails(runs[2] as Run, /Name: value/);
    fails(runs[3] as Run, /unknown event type/);
    fails(runs[4] as Run, /positive whole number/);
    fails(runs[5] as Run, /nothing to change/);
    assert.equal(await store.getByName(null, 'bad'), null);
  });
});
