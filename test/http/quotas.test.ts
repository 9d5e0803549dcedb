/**
 * Namespace storage quotas on the push path, on SQLite and PostgreSQL: a blob upload (monolithic, chunked,
 * mounted) or a manifest PUT that would exceed the quota gets 403 DENIED with the usage in the message and leaves
 * nothing linked or stored; re-linking a blob the namespace holds stays allowed; `quota.warning` and
 * `quota.exceeded` are recorded; and under 20 concurrent pushes near the limit exactly the writes that fit succeed,
 * the usage staying equal to what was stored.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import pg from 'pg';
import type { Database } from '../../src/metadata/schema.ts';
import { quotaExceededMessage } from '../../src/registry/quota.ts';
import { QuotaExceededError } from '../../src/metadata/usage.ts';
import { formatBytes } from '../../src/util/bytes.ts';
import {
  assertError,
  createTestRegistry,
  descriptorOf,
  imageManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  randomBlob,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

describe('quota messages', () => {
  it('show usage and quota in IEC units with one decimal', () => {
    assert.equal(
      quotaExceededMessage(new QuotaExceededError('team', Math.round(9.8 * 2 ** 30), 10 * 2 ** 30, 1)),
      'quota exceeded: namespace team uses 9.8 GiB of 10 GiB',
    );
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(1024 ** 2 - 1), '1 MiB');
    assert.equal(formatBytes(5 * 1024 ** 4), '5 TiB');
  });
});

function errorMessage(res: Response): string {
  return json<{ errors: { message: string }[] }>(res).errors[0]?.message ?? '';
}

/** The usage of `namespace` recomputed from the links and manifests (what the accounting must equal). */
async function recomputed(reg: TestRegistry, namespace: string): Promise<number> {
  const { metadata } = reg.services;
  const db = (metadata as unknown as { db: Kysely<Database> }).db;
  const blobs = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['b.digest', 'b.size'])
    .distinct()
    .where((eb) => eb.or([eb('r.name', '=', namespace), eb('r.name', 'like', `${namespace}/%`)]))
    .execute();
  const manifests = await db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select('m.size')
    .where((eb) => eb.or([eb('r.name', '=', namespace), eb('r.name', 'like', `${namespace}/%`)]))
    .execute();
  return [...blobs, ...manifests].reduce((sum, r) => sum + Number(r.size), 0);
}

interface Dialect {
  readonly name: string;
  readonly skip: string | false;
  overrides(): Record<string, unknown>;
  cleanup(overrides: Record<string, unknown>): Promise<void>;
}

const pgSkip = await postgresSkipReason();
const DIALECTS: Dialect[] = [
  { name: 'sqlite', skip: false, overrides: () => ({}), cleanup: async () => undefined },
  {
    name: 'postgres',
    skip: pgSkip,
    overrides: () => ({
      'metadata.driver': 'postgres',
      'metadata.postgres.url': POSTGRES_URL,
      'metadata.postgres.schema': `berth_test_${randomBytes(6).toString('hex')}`,
    }),
    async cleanup(overrides) {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(
          `drop schema if exists "${String(overrides['metadata.postgres.schema'])}" cascade`,
        );
      } finally {
        await client.end();
      }
    },
  },
];

for (const dialect of DIALECTS) {
  describe(`namespace quotas on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;
    let overrides: Record<string, unknown>;

    before(async () => {
      overrides = dialect.overrides();
      reg = await createTestRegistry(overrides);
    });
    after(async () => {
      await reg.dispose();
      await dialect.cleanup(overrides);
    });

    const usage = () => reg.services.usage;
    const eventsSince = async (n: number) =>
      (await reg.services.metadata.pendingEvents(100_000)).slice(n).map((e) => e.event);

    it('refuses blob uploads past the quota (monolithic, chunked, mount), keeps re-links free, records events', async () => {
      await usage().setQuota('team', 1024);
      const first = randomBlob(600);
      await reg.pushBlob('team/app', first);
      const seen = (await reg.services.metadata.pendingEvents(100_000)).length;

      // Monolithic: POST ?digest= with the body.
      const second = randomBlob(600);
      const whole = await reg.inject({
        method: 'POST',
        url: `/v2/team/app/blobs/uploads/?digest=${sha256(second)}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: second,
      });
      assertError(whole, 403, 'DENIED');
      assert.equal(errorMessage(whole), 'quota exceeded: namespace team uses 600 B of 1 KiB');
      const head = await reg.inject({ method: 'HEAD', url: `/v2/team/app/blobs/${sha256(second)}` });
      assert.equal(head.statusCode, 404, 'nothing was linked');

      // Chunked: POST, PATCH, PUT ?digest=.
      const started = await reg.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/' });
      assert.equal(started.statusCode, 202);
      const location = String(started.headers.location);
      const patched = await reg.inject({
        method: 'PATCH',
        url: location,
        headers: { 'content-type': 'application/octet-stream' },
        payload: second,
      });
      assert.equal(patched.statusCode, 202, patched.body);
      const done = await reg.inject({
        method: 'PUT',
        url: `${String(patched.headers.location)}${String(patched.headers.location).includes('?') ? '&' : '?'}digest=${sha256(second)}`,
      });
      assertError(done, 403, 'DENIED');
      assert.equal(errorMessage(done), 'quota exceeded: namespace team uses 600 B of 1 KiB');

      // Mount from a namespace without a quota: new to team, so it counts, and does not fit.
      await reg.pushBlob('other/src', second);
      const mount = await reg.inject({
        method: 'POST',
        url: `/v2/team/app/blobs/uploads/?mount=${sha256(second)}&from=other/src`,
      });
      assertError(mount, 403, 'DENIED');

      // Re-linking what team already holds costs nothing: allowed even with the quota below the usage.
      await usage().setQuota('team', 100);
      const relink = await reg.inject({
        method: 'POST',
        url: `/v2/team/copy/blobs/uploads/?mount=${sha256(first)}&from=team/app`,
      });
      assert.equal(relink.statusCode, 201, relink.body);
      assert.deepEqual(await usage().namespaceUsage('team'), { namespace: 'team', bytes: 600, quota: 100 });
      assert.equal(await recomputed(reg, 'team'), 600);

      // Crossing 85% stores quota.warning with the write; refusals stored quota.exceeded.
      await usage().setQuota('team', 1024);
      await reg.pushBlob('team/app', randomBlob(300)); // 900 B >= 870.4 B
      await reg.pushBlob('team/app', randomBlob(10)); // already above: no second warning
      const events = await eventsSince(seen);
      const quotaEvents = events.filter((e) => e.type.startsWith('quota.'));
      assert.deepEqual(
        quotaEvents.map((e) => [
          e.type,
          e.target.repository,
          e.target.namespace,
          e.target.usage,
          e.target.quota,
        ]),
        [
          ['quota.exceeded', 'team/app', 'team', 600, 1024],
          ['quota.exceeded', 'team/app', 'team', 600, 1024],
          ['quota.exceeded', 'team/app', 'team', 600, 1024],
          ['quota.warning', 'team/app', 'team', 900, 1024],
        ],
      );
      assert.equal(quotaEvents[0]?.target.size, 600);
    });

    it('refuses a manifest PUT past the quota and stores neither manifest nor tag', async () => {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
      const layer = randomBlob(200);
      await reg.pushBlob('quota/app', config);
      await reg.pushBlob('quota/app', layer);
      const used = config.length + layer.length;
      await usage().setQuota('quota', used + 10);
      const bytes = manifestBytes(
        imageManifest({
          mediaType: OCI_MANIFEST,
          config: descriptorOf(config, OCI_CONFIG),
          layers: [descriptorOf(layer, OCI_LAYER)],
        }),
      );
      const res = await reg.putManifest('quota/app', 'v1', bytes);
      assertError(res, 403, 'DENIED');
      assert.equal(
        errorMessage(res),
        `quota exceeded: namespace quota uses ${formatBytes(used)} of ${formatBytes(used + 10)}`,
      );
      const get = await reg.inject({ method: 'GET', url: '/v2/quota/app/manifests/v1' });
      assertError(get, 404, 'MANIFEST_UNKNOWN');
      const byDigest = await reg.inject({ method: 'GET', url: `/v2/quota/app/manifests/${sha256(bytes)}` });
      assertError(byDigest, 404, 'MANIFEST_UNKNOWN');
      assert.equal((await usage().namespaceUsage('quota')).bytes, used);

      await usage().setQuota('quota', used + bytes.length);
      const ok = await reg.putManifest('quota/app', 'v1', bytes);
      assert.equal(ok.statusCode, 201, ok.body);
      // A repeated push of the same manifest adds nothing: allowed at the limit, tags still move.
      const again = await reg.putManifest('quota/app', 'v2', bytes);
      assert.equal(again.statusCode, 201, again.body);
      assert.equal((await usage().namespaceUsage('quota')).bytes, used + bytes.length);
      assert.equal(await recomputed(reg, 'quota'), used + bytes.length);
    });

    it('20 concurrent pushes near the limit: exactly the writes that fit succeed, usage equals what was stored', async () => {
      const namespace = 'race';
      // Every push: a distinct 1000-byte layer and a manifest of a fixed size (digests have a fixed length).
      const pushes = Array.from({ length: 20 }, (_, i) => {
        const layer = randomBlob(1000);
        const config = Buffer.from(`{"architecture":"amd64","os":"linux","n":${String(i).padStart(2, '0')}}`);
        const manifest = manifestBytes(
          imageManifest({
            mediaType: OCI_MANIFEST,
            config: descriptorOf(config, OCI_CONFIG),
            layers: [descriptorOf(layer, OCI_LAYER)],
          }),
        );
        return { repo: `${namespace}/app${i % 4}`, tag: `t${i}`, layer, config, manifest };
      });
      const one = pushes[0];
      assert.ok(one);
      const perPush = one.layer.length + one.config.length + one.manifest.length;
      // Room for 7 whole pushes and a half: the race decides which writes get it.
      const quota = Math.floor(7.5 * perPush);
      await usage().setQuota(namespace, quota);

      const stored: number[] = [];
      const refused: number[] = [];
      const outcomes = await Promise.all(
        pushes.map(async (p) => {
          for (const [kind, bytes] of [
            ['blob', p.config],
            ['blob', p.layer],
            ['manifest', p.manifest],
          ] as const) {
            const res =
              kind === 'blob'
                ? await reg.inject({
                    method: 'POST',
                    url: `/v2/${p.repo}/blobs/uploads/?digest=${sha256(bytes)}`,
                    headers: { 'content-type': 'application/octet-stream' },
                    payload: bytes,
                  })
                : await reg.putManifest(p.repo, p.tag, bytes);
            if (res.statusCode === 403) {
              assertError(res, 403, 'DENIED');
              assert.match(errorMessage(res), /^quota exceeded: namespace race uses \S+ \S+ of \S+ \S+$/);
              refused.push(bytes.length);
              return 'refused';
            }
            assert.equal(res.statusCode, 201, `${kind} ${p.repo}: ${res.statusCode} ${res.body}`);
            stored.push(bytes.length);
          }
          return 'pushed';
        }),
      );
      const pushed = outcomes.filter((o) => o === 'pushed').length;
      // Which writes win is the race's: blobs of pushes refused later may take the room of whole pushes.
      assert.ok(pushed <= 7, `${pushed} whole pushes fit`);
      assert.ok(stored.length >= 7, 'writes were stored up to the limit');
      assert.ok(refused.length >= 1, 'some writes were refused');

      const final = await usage().namespaceUsage(namespace);
      assert.equal(
        final.bytes,
        stored.reduce((a, b) => a + b, 0),
        'usage is what was stored',
      );
      assert.equal(final.bytes, await recomputed(reg, namespace), 'and what the database holds');
      assert.ok(final.bytes <= quota, `usage ${final.bytes} within the quota ${quota}`);
      // Usage only grew during the race: every refused write would still not fit.
      for (const size of refused)
        assert.ok(final.bytes + size > quota, `a refused ${size} B write would fit`);
    });
  });
}
