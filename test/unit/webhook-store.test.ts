/** The WebhookStore on SQLite and PostgreSQL: names unique per scope, updates, secret rotation, the delivery log. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConflictError } from '../../src/metadata/auth-store.ts';
import type { NewWebhook, WebhookStore } from '../../src/metadata/webhook-store.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function webhook(overrides: Partial<NewWebhook> = {}): NewWebhook {
  return {
    name: 'ci',
    namespace: 'team',
    url: 'https://hooks.example.com/berth',
    format: 'distribution',
    events: ['manifest.pushed'],
    repositoryGlob: '**',
    tagGlob: '*',
    includePulls: false,
    headers: { Authorization: 'Bearer x' },
    secret: 'whsec_c2VjcmV0',
    createdBy: 'user:alice',
    ...overrides,
  };
}

for (const kind of await testDatabases()) {
  describe(`KyselyWebhookStore on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: WebhookStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.webhookStore();
    });
    afterEach(() => db.cleanup());

    it('creates, reads back every field, and refuses a second name in the same scope only', async () => {
      const created = await store.create(webhook());
      assert.equal(created.name, 'ci');
      assert.deepEqual(created.events, ['manifest.pushed']);
      assert.deepEqual(created.headers, { Authorization: 'Bearer x' });
      assert.equal(created.enabled, true);
      assert.equal(created.includePulls, false);
      assert.deepEqual(await store.get(created.id), created);
      assert.deepEqual(await store.getByName('team', 'ci'), created);
      await assert.rejects(store.create(webhook()), ConflictError);
      const global = await store.create(webhook({ namespace: null }));
      await assert.rejects(store.create(webhook({ namespace: null })), ConflictError);
      assert.equal((await store.getByName(null, 'ci'))?.id, global.id);
      await store.create(webhook({ namespace: 'other' }));
      assert.equal((await store.list({ limit: 10 })).items.length, 3);
      assert.deepEqual(
        (await store.list({ namespace: null, limit: 10 })).items.map((w) => w.id),
        [global.id],
      );
      const page = await store.list({ namespace: 'team', limit: 1 });
      assert.deepEqual(
        page.items.map((w) => w.id),
        [created.id],
      );
      assert.equal(page.hasMore, false);
    });

    it('updates, disables with a reason and re-enables; pulls are wanted only by an enabled endpoint', async () => {
      const w = await store.create(webhook({ includePulls: true }));
      assert.equal(await store.wantsPulls(), true);
      const disabled = await store.update(w.id, {
        enabled: false,
        disabledReason: 'receiver answered 410 Gone',
      });
      assert.equal(disabled?.enabled, false);
      assert.equal(disabled?.disabledReason, 'receiver answered 410 Gone');
      assert.equal(await store.wantsPulls(), false);
      assert.deepEqual(await store.listEnabled(), []);
      const enabled = await store.update(w.id, { enabled: true, tagGlob: 'v*', events: [] });
      assert.equal(enabled?.enabled, true);
      assert.equal(enabled?.disabledReason, null);
      assert.equal(enabled?.tagGlob, 'v*');
      assert.deepEqual(enabled?.events, []);
      assert.equal(await store.update(w.id + 1000, { url: 'https://x.example' }), null);
    });

    it('rotating a secret keeps the old one with its deadline', async () => {
      const w = await store.create(webhook());
      const until = new Date(Date.now() + 60_000);
      const rotated = await store.rotateSecret(w.id, 'whsec_bmV3', until);
      assert.equal(rotated?.secret, 'whsec_bmV3');
      assert.equal(rotated?.previousSecret, 'whsec_c2VjcmV0');
      assert.equal(rotated?.previousSecretUntil?.getTime(), until.getTime());
    });

    it('keeps the newest attempts of the delivery log, newest first, and deletes it with the endpoint', async () => {
      const w = await store.create(webhook());
      // 40 attempts with `keep` 3: trimmed every 16 attempts, so between 3 and 3 + 16 remain, the newest.
      for (let i = 1; i <= 40; i++) {
        await store.recordDelivery(
          {
            webhookId: w.id,
            eventId: `event-${i}`,
            eventType: 'manifest.pushed',
            jobId: i,
            attempt: 1,
            outcome: i % 2 === 0 ? 'failed' : 'delivered',
            statusCode: i % 2 === 0 ? 500 : 204,
            durationMs: 12.4,
            error: null,
            responseSnippet: 'ok',
          },
          3,
        );
      }
      const log = await store.listDeliveries(w.id, { limit: 100 });
      assert.ok(log.items.length >= 3 && log.items.length <= 3 + 16, `${log.items.length} attempts kept`);
      assert.deepEqual(
        log.items.slice(0, 3).map((d) => d.eventId),
        ['event-40', 'event-39', 'event-38'],
      );
      assert.equal(log.items.at(-1)?.eventId, `event-${41 - log.items.length}`, 'the oldest ones went');
      assert.equal(log.items[0]?.durationMs, 12);
      assert.equal(log.items[0]?.jobId, 40);
      assert.equal(log.items[0]?.statusCode, 500);
      const failed = await store.listDeliveries(w.id, { limit: 2, outcome: 'failed' });
      assert.deepEqual(
        failed.items.map((d) => d.eventId),
        ['event-40', 'event-38'],
      );
      const older = await store.listDeliveries(w.id, { limit: 1, before: log.items[0]?.id ?? 0 });
      assert.deepEqual(
        older.items.map((d) => d.eventId),
        ['event-39'],
      );
      assert.equal(older.hasMore, true);
      assert.equal(await store.delete(w.id), true);
      assert.equal(await store.delete(w.id), false);
      assert.equal((await store.listDeliveries(w.id, { limit: 10 })).items.length, 0);
      // Recording for a deleted endpoint is a no-op, not an error.
      await store.recordDelivery(
        {
          webhookId: w.id,
          eventId: 'late',
          eventType: 'manifest.pushed',
          jobId: null,
          attempt: 1,
          outcome: 'delivered',
          statusCode: 200,
          durationMs: 1,
          error: null,
          responseSnippet: null,
        },
        3,
      );
    });
  });
}
