/**
 * Retention against a real metadata store, on SQLite and PostgreSQL: pull statistics batched into the store,
 * a dry run that agrees with the real run, only untagging (tag.deleted with the policy as the actor), equal push
 * times decided by name, the protection hook, untagged manifests removed after the delay but never a child of an
 * index or a referrer of a present subject, repository globs, and the retention.completed event with its counts.
 * Push times are set by moving `Date.now` while pushing; the service's clock is its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, mock } from 'node:test';
import { RetentionService } from '../../src/lifecycle/retention.ts';
import { PullStatsRecorder } from '../../src/lifecycle/pull-stats.ts';
import { silentLogger } from '../../src/logger.ts';
import type { KyselyLifecycleStore } from '../../src/metadata/kysely-lifecycle-store.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { type Digest, digestOf } from '../../src/oci/digest.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

let nonce = 0;

/** Pushes a manifest straight into the store at time `at`, pointing `tags` at it; returns its digest. */
async function push(
  store: KyselyMetadataStore,
  repository: string,
  tags: string[],
  at: number,
  options: { subject?: Digest; children?: Digest[] } = {},
): Promise<Digest> {
  const clock = mock.method(Date, 'now', () => at);
  try {
    const config = digestOf(Buffer.from(`config ${nonce++}`));
    const index = options.children !== undefined;
    if (!index) await store.linkBlob(repository, config, 10);
    const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, nonce: nonce++, index }));
    const digest = digestOf(payload);
    const result = await store.putManifest({
      repository,
      digest,
      mediaType: index ? INDEX : MANIFEST,
      payload,
      subject: options.subject ?? null,
      artifactType: null,
      annotations: null,
      blobs: index ? [] : [config],
      manifests: options.children ?? [],
      tags,
    });
    assert.deepEqual(result, { ok: true });
    return digest;
  } finally {
    clock.mock.restore();
  }
}

async function tagsOf(store: KyselyMetadataStore, repository: string): Promise<string[]> {
  return (await store.listTags(repository, { limit: 1000 })).items;
}

for (const kind of await testDatabases()) {
  describe(`retention on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: KyselyMetadataStore;
    let lifecycle: KyselyLifecycleStore;
    const now = T0 + 30 * DAY;
    const service = (protect?: (repository: string, tag: string) => Promise<boolean>): RetentionService =>
      new RetentionService(store, lifecycle, {
        logger: silentLogger,
        now: () => now,
        ...(protect ? { protect } : {}),
      });

    before(async () => {
      db = await kind.create();
      store = db.store;
      lifecycle = store.lifecycleStore();
    });
    after(() => db.cleanup());

    it('pull statistics: one batch adds counts and moves the latest pull forward, never back', async () => {
      const digest = await push(store, 'stats/app', ['v1'], T0);
      const writes: number[] = [];
      const recorder = new PullStatsRecorder(
        {
          addPulls: async (m, t) => {
            writes.push(m.length + t.length);
            await lifecycle.addPulls(m, t);
          },
        },
        { logger: silentLogger, now: () => T0 + DAY, flushMs: 3_600_000 },
      );
      for (let i = 0; i < 50; i++) recorder.record('stats/app', digest, i % 2 === 0 ? 'v1' : null);
      recorder.record('stats/gone', digest, 'x');
      assert.equal(recorder.pending, 4, 'one entry per manifest and per tag, however many pulls');
      await recorder.flush();
      assert.deepEqual(writes, [4], 'one batch for the flush (the gone repository is ignored by the store)');
      const [tag] = await lifecycle.tagStats('stats/app');
      assert.deepEqual(tag, {
        tag: 'v1',
        digest,
        pushedAt: T0,
        lastPulledAt: T0 + DAY,
        pullCount: 25,
        manifestLastPulledAt: T0 + DAY,
      });
      const [manifest] = await lifecycle.manifestStats('stats/app');
      assert.equal(manifest?.pullCount, 50);
      // An older batch (another instance's, say) adds its count but does not move the time back.
      await lifecycle.addPulls([{ repository: 'stats/app', digest, count: 2, at: T0 }], []);
      const [again] = await lifecycle.manifestStats('stats/app');
      assert.equal(again?.pullCount, 52);
      assert.equal(again?.lastPulledAt, T0 + DAY);
      await recorder.flush();
      assert.deepEqual(writes, [4], 'nothing pending: no write');
    });

    it('a dry run reports exactly what the real run then does; only tags go, with tag.deleted by the policy', async () => {
      for (let i = 1; i <= 5; i++) await push(store, 'team/app', [`v${i}`], T0 + i * DAY);
      await push(store, 'team/app', ['latest'], T0);
      const retention = service();
      await retention.setPolicy(
        'team',
        {
          repositories: { include: ['**'], exclude: [] },
          rules: [
            { kind: 'keepLastPushed', count: 2 },
            { kind: 'alwaysKeep', tags: ['latest'] },
          ],
          untagged: { action: 'keep', afterDays: 7 },
        },
        'root',
      );
      const dry = await retention.run('team', { dryRun: true });
      assert.ok(dry);
      assert.deepEqual(
        dry.repositories.map((r) => [r.repository, r.untag.map((u) => u.tag), r.deleteManifests]),
        [['team/app', ['v1', 'v2', 'v3'], []]],
      );
      assert.deepEqual(
        await tagsOf(store, 'team/app'),
        ['latest', 'v1', 'v2', 'v3', 'v4', 'v5'],
        'dry run: no change',
      );
      const before = (await store.pendingEvents(100_000)).length;

      const real = await retention.run('team', { dryRun: false });
      assert.ok(real);
      assert.deepEqual(
        real.repositories.map((r) => ({ ...r })),
        dry.repositories.map((r) => ({ ...r })),
        'the real run applies the dry run plan',
      );
      assert.equal(real.tagsUntagged, 3);
      assert.equal(real.manifestsDeleted, 0);
      assert.deepEqual(await tagsOf(store, 'team/app'), ['latest', 'v4', 'v5']);
      assert.equal(
        (await lifecycle.manifestStats('team/app')).length,
        6,
        'manifests stay: retention only untags',
      );
      const events = (await store.pendingEvents(100_000)).slice(before).map((e) => e.event);
      assert.deepEqual(
        events.map((e) => [e.type, e.target.tag ?? null, e.actor?.kind, e.actor?.name]),
        [
          ['tag.deleted', 'v1', 'system', 'retention:team'],
          ['tag.deleted', 'v2', 'system', 'retention:team'],
          ['tag.deleted', 'v3', 'system', 'retention:team'],
          ['retention.completed', null, 'system', 'retention:team'],
        ],
      );
      const done = events.at(-1);
      assert.deepEqual(done?.target, { repository: 'team', tagsUntagged: 3, manifestsDeleted: 0 });
      const rerun = await retention.run('team', { dryRun: true });
      assert.equal(rerun?.tagsUntagged, 0, 'a second run finds nothing more to do');
    });

    it('equal push times: keep-last-N keeps the first names in byte order (C before a), on every run', async () => {
      for (const t of ['b', 'a', 'C', 'c']) await push(store, 'tie/app', [t], T0);
      const retention = service();
      await retention.setPolicy(
        'tie',
        {
          repositories: { include: ['**'], exclude: [] },
          rules: [{ kind: 'keepLastPushed', count: 2 }],
          untagged: { action: 'keep', afterDays: 7 },
        },
        null,
      );
      for (let i = 0; i < 3; i++) {
        const dry = await retention.run('tie', { dryRun: true });
        assert.deepEqual(
          dry?.repositories[0]?.untag.map((u) => u.tag),
          ['b', 'c'],
        );
      }
      await retention.run('tie', { dryRun: false });
      assert.deepEqual(await tagsOf(store, 'tie/app'), ['C', 'a']);
    });

    it('a protected tag is never untagged; keep-last-pulled follows pulls by tag and by digest', async () => {
      const old = await push(store, 'prot/app', ['old'], T0);
      await push(store, 'prot/app', ['frozen'], T0);
      await push(store, 'prot/app', ['pulled'], T0);
      await push(store, 'prot/app', ['unused'], T0);
      await lifecycle.addPulls(
        [{ repository: 'prot/app', digest: old, count: 1, at: T0 + 20 * DAY }],
        [{ repository: 'prot/app', tag: 'pulled', count: 1, at: T0 + 10 * DAY }],
      );
      const asked: string[] = [];
      const retention = service(async (repository, tag) => {
        asked.push(`${repository}:${tag}`);
        return tag === 'frozen';
      });
      await retention.setPolicy(
        'prot',
        {
          repositories: { include: ['**'], exclude: [] },
          rules: [{ kind: 'keepLastPulled', count: 2 }],
          untagged: { action: 'keep', afterDays: 7 },
        },
        null,
      );
      const run = await retention.run('prot', { dryRun: false });
      assert.deepEqual(run?.repositories[0]?.protected, ['frozen']);
      assert.deepEqual(
        run?.repositories[0]?.untag.map((u) => u.tag),
        ['unused'],
      );
      assert.deepEqual(await tagsOf(store, 'prot/app'), ['frozen', 'old', 'pulled']);
      assert.deepEqual(asked, ['prot/app:frozen', 'prot/app:unused'], 'only tags to untag are asked about');
    });

    it('untagged manifests go after the delay, but never a child of an index or a referrer of a present subject', async () => {
      const repo = 'gc/app';
      const oldUntagged = await push(store, repo, [], T0);
      const young = await push(store, repo, [], now - 2 * DAY);
      const child = await push(store, repo, [], T0);
      const index = await push(store, repo, ['multi'], T0, { children: [child] });
      const subject = await push(store, repo, ['signed'], T0);
      const signature = await push(store, repo, [], T0, { subject });
      const orphanSubject = digestOf(Buffer.from('absent subject'));
      const orphanReferrer = await push(store, repo, [], T0, { subject: orphanSubject });
      const pulledByDigest = await push(store, repo, [], T0);
      await lifecycle.addPulls([{ repository: repo, digest: pulledByDigest, count: 1, at: now - DAY }], []);
      const retention = service();
      await retention.setPolicy(
        'gc',
        {
          repositories: { include: ['**'], exclude: [] },
          rules: [{ kind: 'alwaysKeep', tags: ['*'] }],
          untagged: { action: 'delete', afterDays: 7 },
        },
        null,
      );
      const dry = await retention.run('gc', { dryRun: true });
      const expected = [oldUntagged, orphanReferrer].sort();
      assert.deepEqual(dry?.repositories[0]?.deleteManifests, expected);
      const before = (await store.pendingEvents(100_000)).length;
      const real = await retention.run('gc', { dryRun: false });
      assert.deepEqual(real?.repositories[0]?.deleteManifests, expected);
      assert.equal(real?.manifestsDeleted, 2);
      const left = (await lifecycle.manifestStats(repo)).map((m) => m.digest).sort();
      assert.deepEqual(left, [young, child, index, subject, signature, pulledByDigest].sort());
      const events = (await store.pendingEvents(100_000)).slice(before).map((e) => e.event);
      assert.deepEqual(
        events.map((e) => `${e.type} ${e.target.digest ?? ''} ${e.actor?.name}`),
        [...expected.map((d) => `manifest.deleted ${d} retention:gc`), 'retention.completed  retention:gc'],
      );
      assert.deepEqual(events.at(-1)?.target, { repository: 'gc', tagsUntagged: 0, manifestsDeleted: 2 });
    });

    it('repository globs pick the repositories a policy touches; other namespaces are never touched', async () => {
      await push(store, 'sel/app', ['a'], T0);
      await push(store, 'sel/keep', ['a'], T0);
      await push(store, 'sel', ['a'], T0);
      await push(store, 'sel0', ['a'], T0);
      await push(store, 'selx/app', ['a'], T0);
      const retention = service();
      await retention.setPolicy(
        'sel',
        {
          repositories: { include: ['**'], exclude: ['keep'] },
          rules: [{ kind: 'pushedWithin', days: 1 }],
          untagged: { action: 'keep', afterDays: 7 },
        },
        null,
      );
      const run = await retention.run('sel', { dryRun: false });
      assert.deepEqual(
        run?.repositories.map((r) => r.repository),
        ['sel', 'sel/app'],
      );
      assert.deepEqual(await tagsOf(store, 'sel/app'), []);
      assert.deepEqual(await tagsOf(store, 'sel/keep'), ['a']);
      assert.deepEqual(await tagsOf(store, 'sel0'), ['a']);
      assert.deepEqual(await tagsOf(store, 'selx/app'), ['a']);
      assert.equal(await retention.run('nopolicy', { dryRun: true }), null);
      assert.deepEqual(
        (await retention.runAll()).map((r) => r.namespace),
        (await lifecycle.listRetentionPolicies()).map((p) => p.namespace),
        'the scheduled run runs every policy',
      );
    });
  });
}
